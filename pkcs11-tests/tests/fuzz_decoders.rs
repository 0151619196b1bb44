//! Fuzzing on stable Rust (issue 8), the internal decoders: the stored record decoder
//! (`clusterhsm::store::record::decode`) and backup restore
//! (`clusterhsm::cluster::backup::restore`) on random and mutated bytes.
//!
//! Seeds: `fuzz-corpus/record/*.bin` and `fuzz-corpus/backup/*.json` (a backup payload,
//! sealed here the way `backup create` seals it so mutations get past the integrity check);
//! proptest's failure seeds are kept in `fuzz-corpus/<target>.proptest-regressions` and
//! replayed first. Cases per target: `PROPTEST_CASES` (default 500); the backup targets run
//! `FUZZ_BACKUP_CASES` (default 48), because every input that looks like a backup costs a
//! 200,000-iteration PBKDF2. Hours-long run: see README "Reliability".

#![allow(clippy::macro_metavars_in_unsafe)]

mod common;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use clusterhsm::cluster::backup;
use clusterhsm::store::{record, Store};
use common::Scratch;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"CLUSTERHSM-BACKUP-1\n";
const PASSWORD: &[u8] = b"fuzz-backup-password";

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus")
}

fn cases(var: &str, default: u32) -> u32 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn runner(target: &str, cases: u32) -> TestRunner {
    let file = corpus().join(format!("{target}.proptest-regressions"));
    let file: &'static str = Box::leak(file.to_string_lossy().into_owned().into_boxed_str());
    TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(file))),
        ..Config::default()
    })
}

fn seeds(dir: &str) -> Vec<Vec<u8>> {
    let mut v: Vec<_> = std::fs::read_dir(corpus().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// A mutation of a seed: bit flips, overwritten bytes, insertions, truncation.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    (
        0..n,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 0..8),
        any::<Option<prop::sample::Index>>(),
    )
        .prop_map(move |(i, edits, cut)| {
            let mut b = seeds[i].clone();
            for (at, byte, kind) in edits {
                if b.is_empty() {
                    b.push(byte);
                    continue;
                }
                let j = at.index(b.len());
                match kind {
                    0 => b[j] ^= 1 << (byte % 8),
                    1 => b[j] = byte,
                    2 => b.insert(j, byte),
                    _ => {
                        b.remove(j);
                    }
                }
            }
            if let Some(c) = cut {
                let l = c.index(b.len() + 1);
                b.truncate(l);
            }
            b
        })
}

fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..512)
}

#[test]
fn fuzz_record_decode() {
    let entries = prop::collection::vec(
        (any::<u64>(), prop::collection::vec(any::<u8>(), 0..64)),
        0..8,
    );
    let mut seeds = seeds("record");
    seeds.push(record::encode([(3u64 as _, &b"label"[..])]));
    let mut r = runner("fuzz_record_decode", cases("PROPTEST_CASES", 500));
    let ran = std::cell::Cell::new(0u64);
    r.run(
        &prop_oneof![
            any_bytes().prop_map(|b| (b, None)),
            mutated(seeds).prop_map(|b| (b, None)),
            entries.prop_map(|e| {
                let e: Vec<(u64, Vec<u8>)> = e;
                let enc = record::encode(e.iter().map(|(t, v)| (*t as _, &v[..])));
                (enc, Some(e))
            }),
        ],
        |(bytes, original)| {
            ran.set(ran.get() + 1);
            let got = record::decode(&bytes);
            if let Some(orig) = original {
                // Valid encodings round-trip exactly.
                let got = got.expect("decode of a valid encoding");
                let got: Vec<(u64, Vec<u8>)> = got.into_iter().collect();
                prop_assert_eq!(got, orig);
            } else if let Ok(entries) = got {
                // Anything accepted re-encodes to the same bytes.
                prop_assert_eq!(
                    record::encode(entries.iter().map(|(t, v)| (*t, &v[..]))),
                    bytes
                );
            }
            Ok(())
        },
    )
    .unwrap();
    println!("fuzz_record_decode: {} executions, no panic", ran.get());
}

/// Seals a payload as `backup create` does (MAGIC, salt, nonce, AES-256-GCM under
/// PBKDF2-HMAC-SHA256(200,000) of the password, MAGIC as AAD).
fn seal_backup(plain: &[u8]) -> Vec<u8> {
    let salt = [0x5au8; 16];
    let nonce = [0xa5u8; 12];
    let mut k = [0u8; 32];
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(200_000).unwrap(),
        &salt,
        PASSWORD,
        &mut k,
    );
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &k).unwrap());
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::try_assume_unique_for_key(&nonce).unwrap(),
        Aad::from(MAGIC),
        &mut buf,
    )
    .unwrap();
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buf);
    out
}

fn cluster_count(store: &Store) -> usize {
    store.clusters().expect("list clusters").len()
}

/// Random and mutated backup files (the integrity check must refuse them): restore
/// returns Err, never panics, never adds a cluster.
#[test]
fn fuzz_backup_restore_tampered() {
    let scratch = Scratch::new();
    let store = Store::open(&scratch.store_dir()).expect("open a temp store");
    let valid: Vec<Vec<u8>> = seeds("backup").iter().map(|p| seal_backup(p)).collect();
    // The seeds themselves restore (so the mutations start from real backups).
    for v in &valid {
        let before = cluster_count(&store);
        backup::restore(&store, v, PASSWORD).expect("restore of a seed backup");
        assert_eq!(cluster_count(&store), before + 1);
    }
    let mut r = runner(
        "fuzz_backup_restore_tampered",
        cases("FUZZ_BACKUP_CASES", 48),
    );
    let ran = std::cell::Cell::new(0u64);
    r.run(
        &prop_oneof![
            any_bytes(),
            any_bytes().prop_map(|b| [MAGIC, &b].concat()),
            mutated(valid.clone()).prop_filter("changed", move |b| !valid.contains(b)),
        ],
        |bytes| {
            ran.set(ran.get() + 1);
            let before = cluster_count(&store);
            let res = backup::restore(&store, &bytes, PASSWORD);
            prop_assert!(res.is_err(), "a tampered backup was restored");
            prop_assert_eq!(cluster_count(&store), before, "a cluster was added");
            Ok(())
        },
    )
    .unwrap();
    println!(
        "fuzz_backup_restore_tampered: {} executions, all refused, no cluster added",
        ran.get()
    );
}

/// Validly sealed backups with a mutated payload (past the integrity check, into the
/// JSON, hex and record decoders): restore never panics, and adds exactly one cluster when
/// it returns Ok and none when it returns Err.
#[test]
fn fuzz_backup_restore_payload() {
    let scratch = Scratch::new();
    let store = Store::open(&scratch.store_dir()).expect("open a temp store");
    let mut r = runner(
        "fuzz_backup_restore_payload",
        cases("FUZZ_BACKUP_CASES", 48),
    );
    let (ran, ok) = (std::cell::Cell::new(0u64), std::cell::Cell::new(0u64));
    r.run(&mutated(seeds("backup")), |plain| {
        ran.set(ran.get() + 1);
        let before = cluster_count(&store);
        let res = backup::restore(&store, &seal_backup(&plain), PASSWORD);
        let after = cluster_count(&store);
        match res {
            Ok(_) => {
                ok.set(ok.get() + 1);
                prop_assert_eq!(after, before + 1)
            }
            Err(_) => prop_assert_eq!(after, before, "a failed restore left a cluster"),
        }
        Ok(())
    })
    .unwrap();
    println!(
        "fuzz_backup_restore_payload: {} executions ({} restored), no panic",
        ran.get(),
        ok.get()
    );
}
