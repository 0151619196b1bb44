//! Users of a cluster: Crypto Officers (CKU_SO) manage users, Crypto Users (CKU_USER) own
//! and use keys. PIN format `<user>:<password>` selects the user (CloudHSM); a plain PIN
//! means `admin` for the SO and the default Crypto User `cu` otherwise.

use super::{audit, Cluster, LoginState};
use crate::error::{Error, Result};
use crate::secure_mem::SecretBytes;
use crate::store::seal::{self, MasterKey};
use crate::store::{self, UserRow};
use std::sync::Arc;

pub const DEFAULT_CO: &str = "admin";
pub const DEFAULT_CU: &str = "cu";
/// CloudHSM's limits on users.
pub const MAX_USERS: usize = 1024;
pub const MAX_NAME_LEN: usize = 31;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    CryptoOfficer,
    CryptoUser,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::CryptoOfficer => "co",
            Role::CryptoUser => "cu",
        }
    }

    pub fn parse(s: &str) -> Result<Role> {
        match s {
            "co" | "admin" | "crypto-officer" => Ok(Role::CryptoOfficer),
            "cu" | "crypto-user" => Ok(Role::CryptoUser),
            _ => Err(Error::ArgumentsBad("role must be co or cu")),
        }
    }
}

/// Splits a PIN into (user, password); a plain PIN names the role's default user.
pub fn split_pin(pin: &[u8], role: Role) -> (String, SecretBytes) {
    if let Some(pos) = pin.iter().position(|b| *b == b':') {
        let name = String::from_utf8_lossy(&pin[..pos]).into_owned();
        if !name.is_empty() && name.len() <= MAX_NAME_LEN {
            return (name, SecretBytes::from_slice(&pin[pos + 1..]));
        }
    }
    let default = match role {
        Role::CryptoOfficer => DEFAULT_CO,
        Role::CryptoUser => DEFAULT_CU,
    };
    (default.to_string(), SecretBytes::from_slice(pin))
}

fn wrap_aad(token_id: &str, name: &str) -> Vec<u8> {
    format!("clusterhsm-mk:{token_id}:{name}").into_bytes()
}

pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::ArgumentsBad(
            "user names are 1-31 characters of letters, digits, '-' and '_'",
        ));
    }
    Ok(())
}

/// Builds a user row whose wrapped master key opens with `password`.
pub fn make_user(
    token_id: &str,
    name: &str,
    role: Role,
    password: &[u8],
    mk: &MasterKey,
    iterations: u32,
) -> Result<UserRow> {
    let salt = seal::random_bytes(seal::SALT_LEN)?;
    let wrapped =
        seal::wrap_master_key(mk, password, &salt, iterations, &wrap_aad(token_id, name))?;
    Ok(UserRow {
        name: name.to_string(),
        role: role.name().to_string(),
        salt,
        wrapped_mk: wrapped,
    })
}

impl Cluster {
    pub fn pin_len_ok(&self, password_len: usize, whole_len: usize) -> bool {
        match self.profile() {
            // CloudHSM: passwords of 8 to 32 characters.
            super::Profile::CloudHsm => (8..=32).contains(&password_len),
            super::Profile::Standard => (4..=64).contains(&whole_len) && password_len >= 1,
        }
    }

    pub fn user(&self, name: &str) -> Option<UserRow> {
        self.inner
            .read()
            .users
            .iter()
            .find(|u| u.name == name)
            .cloned()
    }

    pub fn has_crypto_user(&self, name: &str) -> bool {
        self.inner
            .read()
            .users
            .iter()
            .any(|u| u.name == name && u.role == Role::CryptoUser.name())
    }

    /// Failed logins recorded for `user` on each instance.
    pub fn failures_of(&self, user: &str) -> Vec<(String, u32)> {
        let inner = self.inner.read();
        inner
            .hsms
            .iter()
            .map(|h| {
                (
                    h.id.clone(),
                    inner
                        .failures
                        .get(&(user.to_string(), h.id.clone()))
                        .copied()
                        .unwrap_or(0),
                )
            })
            .collect()
    }

    /// Verifies a password on one serving instance, counting failures there as CloudHSM
    /// does, and returns the unwrapped master key.
    pub fn verify_password(
        &self,
        name: &str,
        role: Role,
        password: &[u8],
    ) -> Result<Arc<MasterKey>> {
        self.refresh()?;
        let (user, hsm_id, failures, iterations, token) = {
            let turn = super::next_turn();
            let inner = self.inner.read();
            let hsm_id = super::hsm::route(&inner.hsms, None, turn)?.id.clone();
            let user = inner
                .users
                .iter()
                .find(|u| u.name == name && u.role == role.name())
                .cloned();
            let failures = inner
                .failures
                .get(&(name.to_string(), hsm_id.clone()))
                .copied()
                .unwrap_or(0);
            (
                user,
                hsm_id,
                failures,
                inner.row.kdf_iterations,
                inner.token_id.clone(),
            )
        };
        let user = match user {
            Some(u) => u,
            None if role == Role::CryptoUser && name == DEFAULT_CU => {
                return Err(Error::UserPinNotInitialized)
            }
            None => return Err(Error::PinIncorrect),
        };
        if failures >= self.config.max_login_failures {
            return Err(Error::PinLocked);
        }
        if let Some(mk) = self.pin_cache.lookup(name, &user, password) {
            return Ok(mk);
        }
        match seal::unwrap_master_key(
            &user.wrapped_mk,
            password,
            &user.salt,
            iterations,
            &wrap_aad(&token, name),
        ) {
            Ok(mk) => {
                if failures > 0 {
                    if let Err(e) =
                        self.write(|tx| store::set_login_failures(tx, self.id, name, &hsm_id, 0))
                    {
                        crate::log_warn!("cannot reset the failed-login count of {name}: {e}");
                    }
                }
                let mk = Arc::new(mk);
                self.pin_cache.remember(name, &user, password, mk.clone());
                Ok(mk)
            }
            Err(Error::PinIncorrect) => {
                let now = failures + 1;
                let recorded = self.write(|tx| {
                    store::set_login_failures(tx, self.id, name, &hsm_id, now)?;
                    let mut ev = audit::Event::new("CN_LOGIN");
                    ev.user = Some(name);
                    ev.result = "CKR_PIN_INCORRECT";
                    audit::record(tx, self.id, std::slice::from_ref(&hsm_id), &ev)
                });
                if let Err(e) = recorded {
                    // A read-only store cannot count: the caller still learns the PIN was wrong.
                    crate::log_warn!("cannot record a failed login of {name}: {e}");
                }
                Err(if now >= self.config.max_login_failures {
                    Error::PinLocked
                } else {
                    Error::PinIncorrect
                })
            }
            Err(e) => Err(e),
        }
    }

    /// C_Login's token half: verify, then record the login state and the master key.
    pub fn login(&self, role: Role, pin: &[u8]) -> Result<()> {
        let (name, password) = split_pin(pin, role);
        let mk = self.verify_password(&name, role, password.expose())?;
        let mut inner = self.write_inner();
        inner.login = match role {
            Role::CryptoOfficer => LoginState::SecurityOfficer(name),
            Role::CryptoUser => LoginState::User(name),
        };
        inner.master_key = Some(mk);
        Ok(())
    }

    /// Checks a PIN against the logged-in user (CKU_CONTEXT_SPECIFIC).
    pub fn reauthenticate(&self, pin: &[u8]) -> Result<()> {
        let (name, role) = match self.login_state() {
            LoginState::User(n) => (n, Role::CryptoUser),
            LoginState::SecurityOfficer(n) => (n, Role::CryptoOfficer),
            LoginState::Public => return Err(Error::UserNotLoggedIn),
        };
        let (pin_name, password) = split_pin(pin, role);
        let password = if pin_name == name {
            password
        } else {
            SecretBytes::from_slice(pin)
        };
        self.verify_password(&name, role, password.expose())
            .map(|_| ())
    }

    pub fn logout(&self) {
        let mut inner = self.write_inner();
        inner.login = LoginState::Public;
        inner.master_key = None;
    }

    fn master_key(&self) -> Result<Arc<MasterKey>> {
        self.inner
            .read()
            .master_key
            .clone()
            .ok_or(Error::UserNotLoggedIn)
    }

    /// Creates or replaces a user (C_InitPIN for `cu`, the CLI and the vendor interface).
    pub fn put_user(&self, name: &str, role: Role, password: &[u8], actor: &str) -> Result<()> {
        validate_name(name)?;
        if !self.pin_len_ok(password.len(), name.len() + 1 + password.len()) {
            return Err(Error::PinLenRange);
        }
        let mk = self.master_key()?;
        let exists = self.user(name).is_some();
        if !exists && self.inner.read().users.len() >= MAX_USERS {
            return Err(Error::FunctionFailed(format!(
                "a cluster holds at most {MAX_USERS} users"
            )));
        }
        let iterations = self.inner.read().row.kdf_iterations;
        let token = self.inner.read().token_id.clone();
        let row = make_user(&token, name, role, password, &mk, iterations)?;
        let instances = self.serving_instances();
        self.write(|tx| {
            store::put_user(tx, self.id, &row)?;
            for h in &instances {
                store::set_login_failures(tx, self.id, name, h, 0)?;
            }
            let mut ev = audit::Event::new(if exists {
                "CN_CHANGE_PSWD"
            } else {
                "CN_CREATE_USER"
            });
            ev.user = Some(actor);
            ev.detail = Some(name);
            audit::record(tx, self.id, &instances, &ev)
        })
    }

    pub fn delete_user(&self, name: &str, actor: &str) -> Result<()> {
        let instances = self.serving_instances();
        let found = self.write(|tx| {
            let found = store::delete_user(tx, self.id, name)?;
            let mut ev = audit::Event::new("CN_DELETE_USER");
            ev.user = Some(actor);
            ev.detail = Some(name);
            audit::record(tx, self.id, &instances, &ev)?;
            Ok(found)
        })?;
        if found {
            Ok(())
        } else {
            Err(Error::ArgumentsBad("no such user"))
        }
    }

    /// Resets a user's lockout counters on every instance (the CO's unlock).
    pub fn unlock_user(&self, name: &str) -> Result<()> {
        let ids: Vec<String> = self
            .inner
            .read()
            .hsms
            .iter()
            .map(|h| h.id.clone())
            .collect();
        self.write(|tx| {
            for h in &ids {
                store::set_login_failures(tx, self.id, name, h, 0)?;
            }
            Ok(())
        })
    }

    /// Lock status as CloudHSM's `user list` shows it: locked on every instance,
    /// unlocked on every instance, or inconsistent.
    pub fn lock_status(&self, name: &str) -> &'static str {
        let max = self.config.max_login_failures;
        let per = self.failures_of(name);
        let locked = per.iter().filter(|(_, n)| *n >= max).count();
        if locked == 0 {
            "unlocked"
        } else if locked == per.len() {
            "locked"
        } else {
            "inconsistent"
        }
    }

    pub fn serving_instances(&self) -> Vec<String> {
        self.inner
            .read()
            .hsms
            .iter()
            .filter(|h| h.health.serving())
            .map(|h| h.id.clone())
            .collect()
    }
}

/// The verified-PIN cache: after one successful login with the full KDF, the same user and
/// password open the master key again by one HMAC (keyed with a per-process random key)
/// instead of another PBKDF2 run. Entries are bound to the user's stored salt and wrapped
/// master key, so a password change or a deleted user invalidates them; the cached master
/// keys live in SecretBytes like every other key. Wrong PINs miss the cache, run the KDF
/// and are counted toward lockout as before.
pub struct PinCache {
    key: SecretBytes,
    entries: parking_lot::Mutex<std::collections::HashMap<String, (SecretBytes, Arc<MasterKey>)>>,
}

impl PinCache {
    pub fn new() -> PinCache {
        let key = crate::crypto::rng::random_secret(32).unwrap_or_else(|_| SecretBytes::zeroed(32));
        PinCache {
            key,
            entries: Default::default(),
        }
    }

    fn tag(&self, name: &str, user: &UserRow, password: &[u8]) -> SecretBytes {
        let mut mac = crate::crypto::mac::Hmac::new(
            crate::crypto::digest::HashAlg::Sha256,
            self.key.expose(),
        );
        for part in [
            name.as_bytes(),
            &[0],
            &user.salt,
            &user.wrapped_mk,
            &[0],
            password,
        ] {
            mac.update(part);
        }
        SecretBytes::new(mac.finish())
    }

    pub fn lookup(&self, name: &str, user: &UserRow, password: &[u8]) -> Option<Arc<MasterKey>> {
        let tag = self.tag(name, user, password);
        let entries = self.entries.lock();
        let (stored, mk) = entries.get(name)?;
        // SecretBytes compares in constant time.
        (*stored == tag).then(|| mk.clone())
    }

    pub fn remember(&self, name: &str, user: &UserRow, password: &[u8], mk: Arc<MasterKey>) {
        let tag = self.tag(name, user, password);
        self.entries.lock().insert(name.to_string(), (tag, mk));
    }
}

impl Default for PinCache {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_select_users() {
        let (n, p) = split_pin(b"alice:secret", Role::CryptoUser);
        assert_eq!((n.as_str(), p.expose()), ("alice", &b"secret"[..]));
        let (n, p) = split_pin(b"1234", Role::CryptoUser);
        assert_eq!((n.as_str(), p.expose()), ("cu", &b"1234"[..]));
        let (n, _) = split_pin(b"1234", Role::CryptoOfficer);
        assert_eq!(n, "admin");
        let (n, p) = split_pin(b":x", Role::CryptoUser);
        assert_eq!((n.as_str(), p.expose()), ("cu", &b":x"[..]));
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("alice_1").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name(&"x".repeat(32)).is_err());
        assert!(validate_name("a b").is_err());
    }
}
