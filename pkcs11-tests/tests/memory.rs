//! Keys in memory (DESIGN §4, issue 6): what a core dump of a process using the module
//! holds, whether the arena is mlock'ed (VmLck), whether freed key memory is wiped, and
//! the RLIMIT_MEMLOCK-too-small path. Each scenario runs in its own process.
//!
//! The gcore scenarios need `gcore` (gdb) and ptrace rights over a child (root, as in CI).
//! The negative control builds a second module with `--features test-hooks` into
//! `target/test-hooks` (or uses `CLUSTERHSM_TEST_HOOKS_MODULE`), where
//! `CLUSTERHSM_TEST_DISABLE_ARENA` bypasses the arena, and shows the same check then
//! finds the keys.
#![allow(clippy::macro_metavars_in_unsafe)]

mod common;

use common::*;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "PKCS11_TESTS_CHILD";
const KEYS_ENV: &str = "MEMORY_TEST_KEYS";
const DISABLE_ENV: &str = "CLUSTERHSM_TEST_DISABLE_ARENA";
const AES_LABEL: &str = "mem-aes";
const RSA_LABEL: &str = "mem-rsa";

fn is_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(name)
}

/// This test binary running only test `name`, as a child process (no output capture).
fn self_command(name: &str, wrapper: &[&str]) -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    cmd.args([
        name,
        "--exact",
        "--nocapture",
        "--include-ignored",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, name);
    cmd
}

#[track_caller]
fn check_child(name: &str, out: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "`{name}` failed ({})", out.status);
    assert!(stdout.contains("1 passed"), "`{name}` did not run");
}

// ---------------------------------------------------------------------------------------
// Known key material

/// An AES-256 key and an RSA-2048 key, random per run, with every private component.
struct KnownKeys {
    aes: Vec<u8>,
    /// (name, big-endian value): n, e, then the secrets d, p, q, dP, dQ, qInv.
    rsa: Vec<(String, Vec<u8>)>,
}

impl KnownKeys {
    fn generate() -> KnownKeys {
        use rand::RngCore;
        let mut rng = rand::thread_rng();
        let mut aes = vec![0u8; 32];
        rng.fill_bytes(&mut aes);
        let k = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("RSA keygen");
        let p = &k.primes()[0];
        let q = &k.primes()[1];
        let rsa = vec![
            ("n".to_string(), k.n().to_bytes_be()),
            ("e".to_string(), k.e().to_bytes_be()),
            ("d".to_string(), k.d().to_bytes_be()),
            ("p".to_string(), p.to_bytes_be()),
            ("q".to_string(), q.to_bytes_be()),
            ("dP".to_string(), k.dp().expect("dP").to_bytes_be()),
            ("dQ".to_string(), k.dq().expect("dQ").to_bytes_be()),
            (
                "qInv".to_string(),
                k.crt_coefficient().expect("qInv").to_bytes_be(),
            ),
        ];
        KnownKeys { aes, rsa }
    }

    fn save(&self, path: &Path) {
        let mut text = format!("aes {}\n", hex::encode(&self.aes));
        for (n, v) in &self.rsa {
            text.push_str(&format!("{n} {}\n", hex::encode(v)));
        }
        std::fs::write(path, text).expect("write key file");
    }

    fn load(path: &Path) -> KnownKeys {
        let text = std::fs::read_to_string(path).expect("read key file");
        let mut aes = Vec::new();
        let mut rsa = Vec::new();
        for line in text.lines() {
            let (n, v) = line.split_once(' ').expect("key line");
            let v = hex::decode(v).expect("hex");
            if n == "aes" {
                aes = v;
            } else {
                rsa.push((n.to_string(), v));
            }
        }
        KnownKeys { aes, rsa }
    }

    fn get(&self, name: &str) -> Vec<u8> {
        self.rsa
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .expect("component")
    }

    /// The secrets to look for: the AES key and RSA d, p, q, dP, dQ, qInv.
    fn secrets(&self) -> Vec<(String, Vec<u8>)> {
        let mut v = vec![("aes".to_string(), self.aes.clone())];
        v.extend(
            self.rsa
                .iter()
                .filter(|(n, _)| n != "n" && n != "e")
                .cloned(),
        );
        v
    }

    fn aes_template(&self, token: bool) -> Vec<Attribute> {
        vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(token),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Label(AES_LABEL.into()),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Value(self.aes.clone()),
        ]
    }

    fn rsa_private_template(&self, token: bool) -> Vec<Attribute> {
        vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(token),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Label(RSA_LABEL.into()),
            Attribute::Sign(true),
            Attribute::Decrypt(true),
            Attribute::Modulus(self.get("n")),
            Attribute::PublicExponent(self.get("e")),
            Attribute::PrivateExponent(self.get("d")),
            Attribute::Prime1(self.get("p")),
            Attribute::Prime2(self.get("q")),
            Attribute::Exponent1(self.get("dP")),
            Attribute::Exponent2(self.get("dQ")),
            Attribute::Coefficient(self.get("qInv")),
        ]
    }

    fn rsa_public_template(&self, token: bool) -> Vec<Attribute> {
        vec![
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(token),
            Attribute::Label(RSA_LABEL.into()),
            Attribute::Verify(true),
            Attribute::Encrypt(true),
            Attribute::Modulus(self.get("n")),
            Attribute::PublicExponent(self.get("e")),
        ]
    }
}

/// Needles for one secret: 16-byte windows from its start, middle and end, in big-endian
/// order and reversed (a little-endian BIGNUM). A partial copy is found too.
fn needles(value: &[u8]) -> Vec<Vec<u8>> {
    let w = 16.min(value.len());
    let mut v = Vec::new();
    for start in [0, (value.len() - w) / 2, value.len() - w] {
        let be = value[start..start + w].to_vec();
        let mut le = be.clone();
        le.reverse();
        v.push(be);
        v.push(le);
    }
    v
}

/// Which secrets appear anywhere in `haystack`.
fn secrets_in(haystack: &[u8], keys: &KnownKeys) -> Vec<String> {
    keys.secrets()
        .into_iter()
        .filter(|(_, value)| {
            needles(value)
                .iter()
                .any(|n| memchr::memmem::find(haystack, n).is_some())
        })
        .map(|(name, _)| name)
        .collect()
}

// ---------------------------------------------------------------------------------------
// The module's vendor interface, for CHSM_GetMemoryStats

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct MemoryStats {
    locked_bytes: CK_ULONG,
    mapped_bytes: CK_ULONG,
    in_use_bytes: CK_ULONG,
    locking_complete: CK_BBOOL,
    aws_lc_routed: CK_BBOOL,
}

/// The head of CK_CLUSTERHSM_FUNCTION_LIST as clusterhsm.h declares it.
#[repr(C)]
struct VendorList {
    version: CK_VERSION,
    earlier: [usize; 5],
    get_memory_stats: unsafe extern "C" fn(*mut MemoryStats) -> CK_RV,
}

/// CHSM_GetMemoryStats of the module at `module_path()` in this process.
fn memory_stats() -> MemoryStats {
    // SAFETY: the module under test; loading it again only bumps its reference count.
    let lib = unsafe { libloading::Library::new(module_path()) }.expect("dlopen");
    // SAFETY: C_GetInterface has this signature (PKCS#11 3.0).
    let get: libloading::Symbol<
        unsafe extern "C" fn(
            *mut CK_UTF8CHAR,
            *mut CK_VERSION,
            *mut *mut CK_INTERFACE,
            CK_FLAGS,
        ) -> CK_RV,
    > = unsafe { lib.get(b"C_GetInterface\0") }.expect("C_GetInterface");
    let mut iface: *mut CK_INTERFACE = std::ptr::null_mut();
    let mut name = *b"clusterhsm\0";
    // SAFETY: NUL-terminated name, valid out-pointer.
    let rv = unsafe { get(name.as_mut_ptr(), std::ptr::null_mut(), &mut iface, 0) };
    assert_eq!(rv, CKR_OK, "C_GetInterface(clusterhsm)");
    // SAFETY: the module returned a valid interface whose list is the vendor table.
    let list = unsafe { &*((*iface).pFunctionList as *const VendorList) };
    assert!(
        list.version.major == 1,
        "vendor interface version {}.{}",
        list.version.major,
        list.version.minor
    );
    let mut s = MemoryStats::default();
    // SAFETY: valid out-pointer; the function needs no C_Initialize.
    let rv = unsafe { (list.get_memory_stats)(&mut s) };
    assert_eq!(rv, CKR_OK, "CHSM_GetMemoryStats");
    // SAFETY: NULL output is rejected, not dereferenced.
    let rv = unsafe { (list.get_memory_stats)(std::ptr::null_mut()) };
    assert_eq!(rv, CKR_ARGUMENTS_BAD);
    s
}

// ---------------------------------------------------------------------------------------
// Process helpers

fn find_one(s: &Session, class: ObjectClass, label: &str) -> ObjectHandle {
    let found = s
        .find_objects(&[Attribute::Class(class), Attribute::Label(label.into())])
        .expect("C_FindObjects");
    assert_eq!(found.len(), 1, "one {class:?} labelled {label}");
    found[0]
}

/// Signs, encrypts and decrypts with the RSA and AES keys, so that each is parsed into
/// AWS-LC and used.
fn use_keys(s: &Session, aes: ObjectHandle, rsa_priv: ObjectHandle, rsa_pub: ObjectHandle) {
    let data = b"the quick brown fox jumps over the lazy dog";
    let sig = s
        .sign(&Mechanism::Sha256RsaPkcs, rsa_priv, data)
        .expect("RSA sign");
    s.verify(&Mechanism::Sha256RsaPkcs, rsa_pub, data, &sig)
        .expect("RSA verify");
    let ct = s
        .encrypt(&Mechanism::RsaPkcs, rsa_pub, data)
        .expect("RSA encrypt");
    let pt = s
        .decrypt(&Mechanism::RsaPkcs, rsa_priv, &ct)
        .expect("RSA decrypt");
    assert_eq!(pt, data);
    let iv = [3u8; 16];
    let ct = s
        .encrypt(&Mechanism::AesCbcPad(iv), aes, data)
        .expect("AES encrypt");
    let pt = s
        .decrypt(&Mechanism::AesCbcPad(iv), aes, &ct)
        .expect("AES decrypt");
    assert_eq!(pt, data);
}

fn keys_path() -> PathBuf {
    PathBuf::from(std::env::var_os(KEYS_ENV).expect("MEMORY_TEST_KEYS"))
}

fn scratch_root() -> PathBuf {
    PathBuf::from(std::env::var_os("CLUSTERHSM_DIR").expect("CLUSTERHSM_DIR"))
        .parent()
        .expect("scratch root")
        .to_path_buf()
}

/// Helper process A: a token with the known keys as token objects.
#[test]
fn import_known_keys() {
    helper_process("import_known_keys", || {
        let keys = KnownKeys::load(&keys_path());
        let p = load();
        let slot = setup_token(&p);
        let s = user_session(&p, slot);
        s.create_object(&keys.aes_template(true)).expect("AES key");
        s.create_object(&keys.rsa_private_template(true))
            .expect("RSA private key");
        s.create_object(&keys.rsa_public_template(true))
            .expect("RSA public key");
    });
}

/// Helper process B: loads the token's keys, uses them, says READY and waits on stdin.
#[test]
fn use_keys_and_wait() {
    helper_process("use_keys_and_wait", || {
        let p = load();
        let slot = token_slot(&p);
        let s = user_session(&p, slot);
        let aes = find_one(&s, ObjectClass::SECRET_KEY, AES_LABEL);
        let rsa_priv = find_one(&s, ObjectClass::PRIVATE_KEY, RSA_LABEL);
        let rsa_pub = find_one(&s, ObjectClass::PUBLIC_KEY, RSA_LABEL);
        use_keys(&s, aes, rsa_priv, rsa_pub);
        let m = memory_stats();
        println!("STATS {m:?}");
        println!("READY {}", std::process::id());
        std::io::stdout().flush().expect("flush");
        let mut sink = Vec::new();
        std::io::stdin()
            .read_to_end(&mut sink)
            .expect("wait on stdin");
    });
}

/// From a scenario: imports the known keys in one process, uses them in a second one
/// loaded from `module` (with `extra_env`), cores that second process while it waits, and
/// returns which secrets the core holds.
fn core_of_a_process_using_the_keys(module: &Path, extra_env: &[(&str, &str)]) -> Vec<String> {
    let root = scratch_root();
    let keys = KnownKeys::generate();
    let key_file = root.join("keys.txt");
    keys.save(&key_file);
    let out = self_command("import_known_keys", &[])
        .env(KEYS_ENV, &key_file)
        .output()
        .expect("spawn importer");
    check_child("import_known_keys", &out);
    // The user process never sees the key file.
    let mut cmd = self_command("use_keys_and_wait", &[]);
    cmd.env("CLUSTERHSM_MODULE", module)
        .env_remove(KEYS_ENV)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn user process");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let pid = loop {
        let line = match lines.next() {
            Some(Ok(l)) => l,
            _ => {
                let status = child.wait().expect("wait");
                panic!("user process ended before READY ({status})");
            }
        };
        println!("user process: {line}");
        if let Some(pid) = line.strip_prefix("READY ") {
            break pid.trim().to_string();
        }
    };
    let core_base = root.join("core");
    let gcore = Command::new("gcore")
        .arg("-o")
        .arg(&core_base)
        .arg(&pid)
        .output()
        .expect("run gcore (gdb must be installed)");
    drop(child.stdin.take());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("wait for the user process");
    assert!(
        status.success(),
        "user process failed: {status}\n{}",
        rest.join("\n")
    );
    assert!(
        gcore.status.success(),
        "gcore failed: {}",
        String::from_utf8_lossy(&gcore.stderr)
    );
    let core_path = PathBuf::from(format!("{}.{pid}", core_base.display()));
    let core = std::fs::read(&core_path).expect("read the core file");
    let _ = std::fs::remove_file(&core_path);
    println!("core: {} bytes", core.len());
    // The core must be a real dump of that process: it holds the public modulus (public
    // objects are not sealed, and are parsed from plain memory).
    let n = keys.get("n");
    assert!(
        needles(&n)
            .iter()
            .any(|x| memchr::memmem::find(&core, x).is_some()),
        "the core does not even hold the public modulus: is it the right process?"
    );
    secrets_in(&core, &keys)
}

/// (1) With the arena, a core of a process that loaded and used an AES and an RSA key
/// holds none of their bytes in either byte order.
#[test]
fn core_dump_holds_no_key_bytes() {
    isolated("core_dump_holds_no_key_bytes", || {
        let found = core_of_a_process_using_the_keys(&module_path(), &[]);
        assert!(
            found.is_empty(),
            "key bytes in the core of a process using the module: {found:?}"
        );
    });
}

/// The module built with `--features test-hooks` (or CLUSTERHSM_TEST_HOOKS_MODULE).
fn test_hooks_module() -> PathBuf {
    if let Some(p) = std::env::var_os("CLUSTERHSM_TEST_HOOKS_MODULE") {
        return PathBuf::from(p);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = std::time::Instant::now();
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "--release",
            "-p",
            "clusterhsm",
            "--lib",
            "--features",
            "test-hooks",
            "--target-dir",
            "target/test-hooks",
        ])
        .status()
        .expect("run cargo");
    assert!(status.success(), "building the test-hooks module failed");
    println!(
        "test-hooks module built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    workspace.join("target/test-hooks/release/libclusterhsm.so")
}

/// (1, negative control) The same check finds the keys when the arena is bypassed, so
/// the check above can fail. Also: the switch exists only in the test-hooks build.
#[test]
fn core_dump_check_finds_keys_without_the_arena() {
    isolated("core_dump_check_finds_keys_without_the_arena", || {
        let module = test_hooks_module();
        let bytes = std::fs::read(&module).expect("read the test-hooks module");
        assert!(
            memchr::memmem::find(&bytes, DISABLE_ENV.as_bytes()).is_some(),
            "the test-hooks module should carry the switch"
        );
        let found = core_of_a_process_using_the_keys(&module, &[(DISABLE_ENV, "1")]);
        println!("found without the arena: {found:?}");
        assert!(
            found.contains(&"aes".to_string()) && found.contains(&"d".to_string()),
            "without the arena the AES key and RSA d should be in the core: {found:?}"
        );
        assert!(found.len() >= 4, "most secrets should be found: {found:?}");
    });
}

/// The release module carries no trace of the test-only switch.
#[test]
fn release_module_has_no_test_switch() {
    let bytes = std::fs::read(module_path()).expect("read the module");
    for needle in [DISABLE_ENV, "disable_for_tests"] {
        assert!(
            memchr::memmem::find(&bytes, needle.as_bytes()).is_none(),
            "{needle} found in {}",
            module_path().display()
        );
    }
    let nm = Command::new("nm").arg("-D").arg(module_path()).output();
    if let Ok(out) = nm {
        let syms = String::from_utf8_lossy(&out.stdout);
        assert!(!syms.contains("test_hook") && !syms.contains("disable_for_tests"));
    }
}

// ---------------------------------------------------------------------------------------
// (2) VmLck

fn status_field_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

fn memlock_limit() -> u64 {
    let s = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let line = s
        .lines()
        .find(|l| l.starts_with("Max locked memory"))
        .expect("Max locked memory");
    let soft = line.split_whitespace().nth(3).unwrap_or("0");
    if soft == "unlimited" {
        u64::MAX
    } else {
        soft.parse().unwrap_or(0)
    }
}

fn has_ipc_lock() -> bool {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let eff = s
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    eff & (1 << 14) != 0 // CAP_IPC_LOCK
}

#[test]
fn locked_memory_grows_when_keys_are_loaded() {
    isolated("locked_memory_grows_when_keys_are_loaded", || {
        if !has_ipc_lock() && memlock_limit() < 16 << 20 {
            println!("SKIP: neither CAP_IPC_LOCK nor RLIMIT_MEMLOCK >= 16 MiB here");
            return;
        }
        let before = status_field_kb("VmLck:");
        let keys = KnownKeys::generate();
        let p = load();
        let slot = setup_token(&p);
        let s = user_session(&p, slot);
        let aes = s.create_object(&keys.aes_template(false)).expect("AES");
        let rsa_priv = s
            .create_object(&keys.rsa_private_template(false))
            .expect("RSA");
        let rsa_pub = s
            .create_object(&keys.rsa_public_template(false))
            .expect("RSA public");
        use_keys(&s, aes, rsa_priv, rsa_pub);
        let after = status_field_kb("VmLck:");
        let m = memory_stats();
        println!("VmLck {before} kB -> {after} kB; {m:?}");
        assert!(after >= before + 1024, "VmLck did not grow by a chunk");
        assert_eq!(m.locking_complete, CK_TRUE);
        assert_eq!(m.aws_lc_routed, CK_TRUE);
        assert!(m.locked_bytes >= 1 << 20 && m.locked_bytes == m.mapped_bytes);
        assert!(m.in_use_bytes > 0 && m.in_use_bytes < m.mapped_bytes);
        assert!(after - before >= m.locked_bytes / 1024);
    });
}

// ---------------------------------------------------------------------------------------
// (3) wiped after C_DestroyObject and C_Finalize

/// The arena's chunks as this process sees them: read-write mappings marked
/// MADV_DONTDUMP ("dd" in smaps' VmFlags), read through /proc/self/mem.
fn dontdump_memory() -> Vec<(usize, Vec<u8>)> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("/proc/self/smaps");
    let mem = std::fs::File::open("/proc/self/mem").expect("/proc/self/mem");
    let mut out = Vec::new();
    let mut current: Option<(usize, usize, bool)> = None;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                let perms = line.split_whitespace().nth(1).unwrap_or("");
                current = Some((a, b, perms.starts_with("rw")));
                continue;
            }
        }
        if let Some(flags) = line.strip_prefix("VmFlags:") {
            if let Some((a, b, rw)) = current.take() {
                if rw && flags.split_whitespace().any(|f| f == "dd") {
                    let mut buf = vec![0u8; b - a];
                    mem.read_exact_at(&mut buf, a as u64)
                        .expect("read arena chunk");
                    out.push((a, buf));
                }
            }
        }
    }
    out
}

#[test]
fn key_memory_is_wiped_after_destroy_and_finalize() {
    isolated("key_memory_is_wiped_after_destroy_and_finalize", || {
        let keys = KnownKeys::generate();
        let p = load();
        let slot = setup_token(&p);
        let s = user_session(&p, slot);
        let aes = s.create_object(&keys.aes_template(true)).expect("AES");
        let rsa_priv = s
            .create_object(&keys.rsa_private_template(true))
            .expect("RSA");
        let rsa_pub = s
            .create_object(&keys.rsa_public_template(true))
            .expect("RSA public");
        use_keys(&s, aes, rsa_priv, rsa_pub);

        // Positive control: while the keys are loaded, the scan finds them in the arena.
        let chunks = dontdump_memory();
        assert!(!chunks.is_empty(), "no MADV_DONTDUMP mapping: no arena?");
        let held: Vec<String> = {
            let mut v: Vec<String> = chunks
                .iter()
                .flat_map(|(_, c)| secrets_in(c, &keys))
                .collect();
            v.sort();
            v.dedup();
            v
        };
        println!("in the arena while loaded: {held:?}");
        assert!(
            held.contains(&"aes".to_string()) && held.contains(&"d".to_string()),
            "the loaded keys should be in the arena: {held:?}"
        );

        s.destroy_object(aes).expect("destroy AES");
        s.destroy_object(rsa_priv).expect("destroy RSA");
        s.destroy_object(rsa_pub).expect("destroy RSA public");
        drop(s);
        p.finalize().expect("C_Finalize");

        let chunks = dontdump_memory();
        let mapped: usize = chunks.iter().map(|(_, c)| c.len()).sum();
        let nonzero: usize = chunks
            .iter()
            .map(|(_, c)| c.iter().filter(|&&b| b != 0).count())
            .sum();
        let left: Vec<String> = chunks
            .iter()
            .flat_map(|(_, c)| secrets_in(c, &keys))
            .collect();
        let m = memory_stats();
        println!(
            "after C_Finalize: {mapped} bytes of chunks, {nonzero} non-zero, {} in live blocks",
            m.in_use_bytes
        );
        assert!(left.is_empty(), "key bytes left in the arena: {left:?}");
        // Everything else is zero but live blocks (AWS-LC's per-thread state) and the
        // allocator's own free-list words.
        assert!(
            (nonzero as u64) <= m.in_use_bytes + 16 * 1024,
            "{nonzero} non-zero bytes with {} bytes in live blocks",
            m.in_use_bytes
        );
    });
}

// ---------------------------------------------------------------------------------------
// (4) RLIMIT_MEMLOCK too small, CAP_IPC_LOCK dropped

const SMALL_LIMIT: u64 = 65536;

#[test]
fn works_when_memory_cannot_be_locked() {
    const NAME: &str = "works_when_memory_cannot_be_locked";
    if is_child(NAME) {
        assert_eq!(memlock_limit(), SMALL_LIMIT, "prlimit applied");
        assert!(!has_ipc_lock(), "CAP_IPC_LOCK dropped");
        let p = load();
        let slot = setup_token(&p);
        let s = user_session(&p, slot);
        let (rsa_pub, rsa_priv) = s
            .generate_key_pair(
                &Mechanism::RsaPkcsKeyPairGen,
                &[
                    Attribute::Token(true),
                    Attribute::ModulusBits(2048.into()),
                    Attribute::Verify(true),
                ],
                &[Attribute::Token(true), Attribute::Sign(true)],
            )
            .expect("RSA keygen");
        let (ec_pub, ec_priv) = s
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &[
                    Attribute::Token(true),
                    // P-256
                    Attribute::EcParams(vec![
                        0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
                    ]),
                    Attribute::Verify(true),
                ],
                &[Attribute::Token(true), Attribute::Sign(true)],
            )
            .expect("EC keygen");
        let data = b"signed with unlockable memory";
        for _ in 0..20 {
            let sig = s
                .sign(&Mechanism::Sha256RsaPkcs, rsa_priv, data)
                .expect("RSA sign");
            s.verify(&Mechanism::Sha256RsaPkcs, rsa_pub, data, &sig)
                .expect("RSA verify");
            let sig = s
                .sign(&Mechanism::EcdsaSha256, ec_priv, data)
                .expect("ECDSA sign");
            s.verify(&Mechanism::EcdsaSha256, ec_pub, data, &sig)
                .expect("ECDSA verify");
        }
        let m = memory_stats();
        println!("{m:?}");
        assert_eq!(m.locking_complete, CK_FALSE);
        assert_eq!(m.aws_lc_routed, CK_TRUE);
        assert!(m.mapped_bytes >= 1 << 20);
        assert!(m.locked_bytes < SMALL_LIMIT);
        assert!(m.in_use_bytes > 0);
        // Still out of core dumps: the chunks carry MADV_DONTDUMP.
        assert!(!dontdump_memory().is_empty());
        return;
    }
    let scratch = Scratch::new();
    let mut wrapper = vec!["prlimit", "--memlock=65536"];
    if has_ipc_lock() {
        wrapper.extend([
            "setpriv",
            "--inh-caps=-ipc_lock",
            "--bounding-set=-ipc_lock",
        ]);
    }
    let out = self_command(NAME, &wrapper)
        .env("CLUSTERHSM_DIR", scratch.store_dir())
        .env("CLUSTERHSM_CONF", scratch.conf_path())
        .output()
        .expect("run prlimit/setpriv (util-linux)");
    check_child(NAME, &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("mlock failed").count(),
        1,
        "exactly one warning about locking"
    );

    // `clusterhsm status` reports the same.
    let cli = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/clusterhsm");
    if cli.is_file() {
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..])
            .arg(&cli)
            .arg("status")
            .env("CLUSTERHSM_DIR", scratch.store_dir())
            .env("CLUSTERHSM_CONF", scratch.conf_path());
        let out = cmd.output().expect("clusterhsm status");
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        assert!(out.status.success());
        assert!(
            text.contains("bytes locked, locking incomplete (RLIMIT_MEMLOCK)"),
            "status shows the incomplete locking"
        );
    }
}
