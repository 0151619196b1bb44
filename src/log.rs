//! Logging: quiet by default (inside nginx or a JVM), `CLUSTERHSM_LOG` or the config sets
//! the level and the destination. Callers never pass secrets or PINs here.

use parking_lot::Mutex;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Off = 0,
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

enum Target {
    Stderr,
    Syslog,
    File(std::fs::File),
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Warn as u8);
static TARGET: Mutex<Option<Target>> = Mutex::new(None);

pub fn parse_level(s: &str) -> Level {
    match s.to_ascii_lowercase().as_str() {
        "off" | "none" | "quiet" => Level::Off,
        "error" => Level::Error,
        "info" => Level::Info,
        "debug" | "trace" => Level::Debug,
        _ => Level::Warn,
    }
}

pub fn init(level: &str, target: &str) {
    LEVEL.store(parse_level(level) as u8, Ordering::Relaxed);
    let t = match target {
        "" | "stderr" => Target::Stderr,
        "syslog" => Target::Syslog,
        path => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(f) => Target::File(f),
            Err(_) => Target::Stderr,
        },
    };
    *TARGET.lock() = Some(t);
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

pub fn write(level: Level, msg: std::fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let line = format!("clusterhsm[{}] {:?}: {}", std::process::id(), level, msg);
    let mut guard = TARGET.lock();
    match guard.as_mut() {
        Some(Target::File(f)) => {
            let _ = writeln!(f, "{line}");
        }
        Some(Target::Syslog) => syslog(level, &line),
        _ => {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
}

#[allow(unsafe_code)]
pub fn syslog(level: Level, line: &str) {
    let prio = match level {
        Level::Error => libc::LOG_ERR,
        Level::Warn => libc::LOG_WARNING,
        Level::Info => libc::LOG_INFO,
        _ => libc::LOG_DEBUG,
    };
    let Ok(c) = std::ffi::CString::new(line.replace('\0', " ")) else {
        return;
    };
    // SAFETY: "%s" with one valid NUL-terminated string argument.
    unsafe { libc::syslog(prio | libc::LOG_USER, c"%s".as_ptr(), c.as_ptr()) };
}

#[macro_export]
macro_rules! log_error { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_warn { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_info { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_debug { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Debug, format_args!($($t)*)) } }
