//! Configuration: embedded defaults, then a TOML file (`$CLUSTERHSM_CONF`, else
//! `/etc/clusterhsm/clusterhsm.toml` when it exists), then environment overrides.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::PathBuf;

pub const SYSTEM_CONFIG: &str = "/etc/clusterhsm/clusterhsm.toml";

/// When the free, uninitialized slot is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FreeSlot {
    /// Only while no cluster exists (CloudHSM programs expect exactly one slot).
    #[default]
    Auto,
    /// Always one extra free slot (the SoftHSMv2 habit).
    Always,
    Never,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Store directory; default `$CLUSTERHSM_DIR`, `$XDG_DATA_HOME/clusterhsm`, `~/.local/share/clusterhsm`.
    pub store_dir: Option<PathBuf>,
    pub free_slot: FreeSlot,
    /// Profile for clusters created by C_InitToken: "standard" or "cloudhsm".
    pub default_profile: String,
    /// Topology for clusters created by C_InitToken: one entry per HSM instance, its AZ.
    pub default_azs: Vec<String>,
    /// CloudHSM SDK 5's key availability check: a new token key needs 2 copies before use.
    pub key_availability_check: bool,
    /// Failed logins on one instance before the user is locked there.
    pub max_login_failures: u32,
    /// PBKDF2 iterations for new users' password wrapping (tests may lower it).
    pub kdf_iterations: u32,
    /// Log level: off, error, warn, info, debug.
    pub log_level: String,
    /// Log destination: "stderr", "syslog", or a file path.
    pub log_target: String,
    /// Audit crypto operations (not only management events).
    pub audit_crypto: bool,
    /// Send audit lines to syslog as well.
    pub audit_syslog: bool,
    /// Refuse C_WrapKey of a sensitive key under a key that can also decrypt.
    pub strict_wrap_policy: bool,
    /// A key derived from a secret key is at least as protected as its base.
    pub strict_derive_policy: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            store_dir: None,
            free_slot: FreeSlot::Auto,
            default_profile: "standard".into(),
            default_azs: vec!["az-a".into(), "az-b".into(), "az-c".into()],
            key_availability_check: true,
            max_login_failures: 5,
            kdf_iterations: crate::store::seal::DEFAULT_KDF_ITERATIONS,
            log_level: "warn".into(),
            log_target: "stderr".into(),
            audit_crypto: false,
            audit_syslog: false,
            strict_wrap_policy: true,
            strict_derive_policy: true,
        }
    }
}

impl Config {
    /// Loads the configuration the module and the CLI use.
    pub fn load() -> Result<Config> {
        let path = match std::env::var_os("CLUSTERHSM_CONF") {
            Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
            _ => {
                let sys = PathBuf::from(SYSTEM_CONFIG);
                sys.exists().then_some(sys)
            }
        };
        let mut cfg = match path {
            Some(p) => {
                let text = std::fs::read_to_string(&p).map_err(|e| {
                    Error::GeneralError(format!("cannot read config {}: {e}", p.display()))
                })?;
                Self::parse(&text)
                    .map_err(|e| Error::GeneralError(format!("bad config {}: {e}", p.display())))?
            }
            None => Config::default(),
        };
        if let Ok(dir) = std::env::var("CLUSTERHSM_DIR") {
            if !dir.is_empty() {
                cfg.store_dir = Some(PathBuf::from(dir));
            }
        }
        if let Ok(level) = std::env::var("CLUSTERHSM_LOG") {
            cfg.apply_log_env(&level);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn parse(text: &str) -> std::result::Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// `CLUSTERHSM_LOG=level` or `level:target` (target: stderr, syslog, or a path).
    fn apply_log_env(&mut self, value: &str) {
        match value.split_once(':') {
            Some((level, target)) => {
                self.log_level = level.to_string();
                self.log_target = target.to_string();
            }
            None => self.log_level = value.to_string(),
        }
    }

    fn validate(&self) -> Result<()> {
        if !matches!(self.default_profile.as_str(), "standard" | "cloudhsm") {
            return Err(Error::GeneralError(format!(
                "unknown profile {:?} (standard or cloudhsm)",
                self.default_profile
            )));
        }
        if self.default_azs.is_empty() || self.default_azs.len() > 28 {
            return Err(Error::GeneralError(
                "default_azs must list 1 to 28 instances".into(),
            ));
        }
        Ok(())
    }

    /// The store directory after applying the default search order.
    pub fn store_dir(&self) -> Result<PathBuf> {
        if let Some(d) = &self.store_dir {
            return Ok(d.clone());
        }
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
            return Ok(PathBuf::from(x).join("clusterhsm"));
        }
        if let Some(h) = std::env::var_os("HOME").filter(|x| !x.is_empty()) {
            return Ok(PathBuf::from(h).join(".local/share/clusterhsm"));
        }
        Err(Error::GeneralError(
            "no store directory: set CLUSTERHSM_DIR or store_dir in the config".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_unknown_keys() {
        let c = Config::parse("free_slot = \"always\"\nkdf_iterations = 10\n").unwrap();
        assert_eq!(c.free_slot, FreeSlot::Always);
        assert_eq!(c.kdf_iterations, 10);
        assert!(Config::parse("no_such_key = 1").is_err());
    }
}
