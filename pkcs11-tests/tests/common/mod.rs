//! Shared harness for the integration tests: where the module is, a fresh store per
//! scenario, one process per scenario, and the token setup a user would do.
//!
//! The module keeps global state per process and cryptoki's `Pkcs11` initializes it once,
//! so every scenario runs in a child process: the `#[test]` function re-executes the test
//! binary with `--exact <name>` and `PKCS11_TESTS_CHILD=<name>`, and the child runs the
//! body against a new store directory (`CLUSTERHSM_DIR`) and a test config
//! (`CLUSTERHSM_CONF` with `kdf_iterations = 1000`, the documented test setting).
#![allow(dead_code)]

#[macro_use]
pub mod raw;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub const SO_PIN: &str = "12345678";
pub const USER_PIN: &str = "1234";
pub const TOKEN_LABEL: &str = "test";

const CHILD_ENV: &str = "PKCS11_TESTS_CHILD";

/// The module's path; see [`locate_module`].
pub fn module_path() -> PathBuf {
    locate_module()
}

/// `CLUSTERHSM_MODULE` if set, else the workspace's release build. Panics with a clear
/// message when the file is missing.
pub fn locate_module() -> PathBuf {
    let path = match std::env::var_os("CLUSTERHSM_MODULE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/libclusterhsm.so"),
    };
    assert!(
        path.is_file(),
        "PKCS#11 module not found at {}: run `cargo build --release -p clusterhsm` first \
         or point CLUSTERHSM_MODULE at libclusterhsm.so",
        path.display()
    );
    path
}

/// A new temporary directory holding the store (`store/`) and the config file; removed on
/// drop. No external crate: the name is unique per process, call and time.
pub struct Scratch {
    pub root: PathBuf,
}

impl Scratch {
    pub fn new() -> Scratch {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let root = std::env::temp_dir().join(format!(
            "clusterhsm-it-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(root.join("store")).expect("create temp store dir");
        std::fs::write(root.join("clusterhsm.toml"), "kdf_iterations = 1000\n")
            .expect("write test config");
        Scratch { root }
    }

    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }

    pub fn conf_path(&self) -> PathBuf {
        self.root.join("clusterhsm.toml")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn is_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(name)
}

/// Runs the test binary's test `name` in a new process with `env`, and checks it ran
/// exactly that test and passed.
fn run_child(name: &str, env: &[(&str, &Path)]) {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([
        name,
        "--exact",
        "--nocapture",
        "--include-ignored",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, name);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("spawn the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(
        out.status.success(),
        "scenario `{name}` failed in its own process ({})",
        out.status
    );
    assert!(
        stdout.contains("1 passed"),
        "scenario `{name}` did not run in the child process (wrong test name?)"
    );
}

/// One scenario in its own process with a fresh store. The `#[test]` function calls this
/// with its own name.
pub fn isolated(name: &str, body: impl FnOnce()) {
    if is_child(name) {
        body();
        return;
    }
    let scratch = Scratch::new();
    run_child(
        name,
        &[
            ("CLUSTERHSM_DIR", &scratch.store_dir()),
            ("CLUSTERHSM_CONF", &scratch.conf_path()),
        ],
    );
}

/// A helper process's body: runs only when a scenario spawned it with
/// [`spawn_helper`], and is a no-op as an ordinary test.
pub fn helper_process(name: &str, body: impl FnOnce()) {
    if is_child(name) {
        body();
    }
}

/// From inside a scenario: runs the helper test `name` in another process on the same
/// store (the `CLUSTERHSM_*` variables are inherited) and waits for it.
pub fn spawn_helper(name: &str) {
    run_child(name, &[]);
}

/// Loads the module through cryptoki and initializes it (OS locking).
pub fn load() -> Pkcs11 {
    let p = Pkcs11::new(module_path()).expect("load the PKCS#11 module");
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    p
}

pub fn pin(s: &str) -> AuthPin {
    AuthPin::new(s.into())
}

/// The only slot with a token, which must be initialized.
pub fn token_slot(p: &Pkcs11) -> Slot {
    let slots = p.get_slots_with_initialized_token().expect("C_GetSlotList");
    assert_eq!(slots.len(), 1, "expected exactly one initialized token");
    slots[0]
}

/// What a user does first: C_InitToken on the free slot (SO PIN, label "test"), SO login,
/// C_InitPIN "1234", logout. Returns the token's slot.
pub fn setup_token(p: &Pkcs11) -> Slot {
    let free = p.get_slots_with_token().expect("C_GetSlotList");
    assert_eq!(free.len(), 1, "a new store shows one free slot");
    p.init_token(free[0], &pin(SO_PIN), TOKEN_LABEL)
        .expect("C_InitToken");
    let slot = token_slot(p);
    let so = p.open_rw_session(slot).expect("C_OpenSession");
    so.login(UserType::So, Some(&pin(SO_PIN)))
        .expect("C_Login SO");
    so.init_pin(&pin(USER_PIN)).expect("C_InitPIN");
    so.logout().expect("C_Logout");
    drop(so);
    slot
}

/// A R/W session logged in as the user.
pub fn user_session(p: &Pkcs11, slot: Slot) -> Session {
    let s = p.open_rw_session(slot).expect("C_OpenSession");
    s.login(UserType::User, Some(&pin(USER_PIN)))
        .expect("C_Login USER");
    s
}

/// Asserts a cryptoki result failed with exactly this CKR_ code.
#[track_caller]
pub fn expect_rv<T: std::fmt::Debug>(r: cryptoki::error::Result<T>, want: RvError) {
    match r {
        Err(Error::Pkcs11(got, f)) => assert_eq!(got, want, "{f:?} returned {got:?}"),
        other => panic!("expected {want:?}, got {other:?}"),
    }
}
