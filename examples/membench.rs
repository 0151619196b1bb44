//! What the locked arena costs: sign (and a few other) rates with AWS-LC routed into the
//! arena against the same build with the arena bypassed.
//!
//! ```text
//! cargo run --release --features test-hooks --target-dir target/test-hooks \
//!     --example membench [-- SECONDS ROUNDS]
//! ```
//!
//! Each measurement runs in a fresh child process (the hook is installed when the program
//! starts and cannot be taken out): "arena" is the normal build, "libc" sets the
//! test-only `CLUSTERHSM_TEST_DISABLE_ARENA`, so AWS-LC and `SecretBytes` use libc malloc.
//! The two alternate for ROUNDS rounds and the median of each is compared. Without the
//! `test-hooks` feature both columns are the arena (the child says so).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use clusterhsm::crypto::digest::HashAlg;
use clusterhsm::crypto::ec::{Curve, EcPrivateKey};
use clusterhsm::crypto::gcm::GcmKey;
use clusterhsm::crypto::rsa::RsaPrivateKey;
use clusterhsm::secure_mem::{stats, SecretBytes};

const CHILD: &str = "MEMBENCH_CHILD";
const DISABLE: &str = "CLUSTERHSM_TEST_DISABLE_ARENA";

/// Runs `f` on `threads` threads for `secs` and returns operations per second (total).
fn rate(secs: f64, threads: usize, f: impl Fn() + Sync) -> f64 {
    let dur = Duration::from_secs_f64(secs);
    let f = &f;
    let total: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    let start = Instant::now();
                    let mut n = 0u64;
                    while start.elapsed() < dur {
                        for _ in 0..16 {
                            f();
                        }
                        n += 16;
                    }
                    n
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    total as f64 / secs
}

fn child(secs: f64) {
    let digest = [0x5Au8; 32];
    let rsa = RsaPrivateKey::generate(2048, &[1, 0, 1]).expect("RSA keygen");
    let p256 = EcPrivateKey::generate(Curve::P256).expect("P-256 keygen");
    let p384 = EcPrivateKey::generate(Curve::P384).expect("P-384 keygen");
    let gcm = GcmKey::new(&[7u8; 32]).expect("GCM key");
    let data = vec![1u8; 1024];
    let iv = [9u8; 12];
    let m = stats();
    println!("routed {}", m.aws_lc_routed);
    let cases: Vec<(&str, f64)> = vec![
        (
            "rsa2048-sign",
            rate(secs, 1, || {
                rsa.sign_pkcs1v15_digest(HashAlg::Sha256, &digest)
                    .expect("sign");
            }),
        ),
        (
            "p256-sign",
            rate(secs, 1, || {
                p256.sign_prehashed(&digest).expect("sign");
            }),
        ),
        (
            "p256-sign-2threads",
            rate(secs, 2, || {
                p256.sign_prehashed(&digest).expect("sign");
            }),
        ),
        (
            "p384-sign",
            rate(secs, 1, || {
                p384.sign_prehashed(&digest[..32]).expect("sign");
            }),
        ),
        (
            "aes256gcm-seal-1KiB",
            rate(secs, 1, || {
                gcm.seal(&iv, b"", &data, 16).expect("seal");
            }),
        ),
        (
            "secretbytes-32B",
            rate(secs, 1, || {
                std::hint::black_box(SecretBytes::from_slice(&digest));
            }),
        ),
    ];
    for (name, r) in cases {
        println!("case {name} {r:.0}");
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    if std::env::var_os(CHILD).is_some() {
        child(secs);
        return;
    }
    let exe = std::env::current_exe().expect("current_exe");
    // mode -> case -> rates
    let mut results: BTreeMap<&str, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            ["arena", "libc"]
        } else {
            ["libc", "arena"]
        };
        for mode in order {
            let mut cmd = Command::new(&exe);
            cmd.args([secs.to_string(), "1".into()]).env(CHILD, "1");
            if mode == "libc" {
                cmd.env(DISABLE, "1");
            } else {
                cmd.env_remove(DISABLE);
            }
            let out = cmd.output().expect("run the benchmark child");
            let text = String::from_utf8_lossy(&out.stdout);
            for line in text.lines() {
                let parts: Vec<&str> = line.split_whitespace().collect();
                match parts.as_slice() {
                    ["routed", r] if round == 0 => {
                        println!("{mode}: AWS-LC routed into the arena: {r}");
                    }
                    ["case", name, r] => {
                        if let Ok(r) = r.parse::<f64>() {
                            results
                                .entry(mode)
                                .or_default()
                                .entry(name.to_string())
                                .or_default()
                                .push(r);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    println!(
        "{:<22} {:>12} {:>12} {:>7}",
        "case (ops/s, median)", "arena", "libc", "ratio"
    );
    let empty = BTreeMap::new();
    let libc = results.get("libc").unwrap_or(&empty);
    if let Some(arena) = results.get("arena") {
        for (name, a) in arena {
            let mut a = a.clone();
            let am = median(&mut a);
            let lm = libc
                .get(name)
                .map(|v| median(&mut v.clone()))
                .unwrap_or(f64::NAN);
            println!("{name:<22} {am:>12.0} {lm:>12.0} {:>7.3}", am / lm);
        }
    }
}
