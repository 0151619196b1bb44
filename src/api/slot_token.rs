//! Slot and token management (PKCS#11 v2.40 §5.5): slots, token info, mechanisms,
//! C_InitToken, C_InitPIN, C_SetPIN.

use super::{library, Library};
use crate::cluster::users::{self, Role};
use crate::cluster::{self, Cluster, LoginState, Profile};
use crate::error::{Error, Result};
use crate::mechanism;
use crate::store;
use cryptoki_sys::*;
use std::sync::Arc;

pub struct SlotInfo {
    pub description: String,
    pub token_present: bool,
}

pub struct TokenInfo {
    pub label: String,
    pub serial: String,
    pub model: String,
    pub flags: CK_FLAGS,
    pub session_count: usize,
    pub rw_session_count: usize,
    pub max_sessions: CK_ULONG,
    pub min_pin: CK_ULONG,
    pub max_pin: CK_ULONG,
    pub initialized: bool,
}

/// C_GetSlotList (§5.5): every slot has a token (the free slot's is uninitialized).
pub fn slot_list(_token_present: bool) -> Result<Vec<CK_SLOT_ID>> {
    library()?.slot_ids()
}

enum SlotKind {
    Cluster(Arc<Cluster>),
    Free,
}

fn slot_kind(lib: &Library, slot: CK_SLOT_ID) -> Result<SlotKind> {
    match lib.cluster(slot) {
        Ok(c) => Ok(SlotKind::Cluster(c)),
        Err(Error::SlotIdInvalid(_)) if lib.free_slot()? == Some(slot) => Ok(SlotKind::Free),
        Err(e) => Err(e),
    }
}

/// C_GetSlotInfo (§5.5).
pub fn slot_info(slot: CK_SLOT_ID) -> Result<SlotInfo> {
    let lib = library()?;
    let description = match slot_kind(&lib, slot)? {
        SlotKind::Cluster(c) => format!("clusterhsm cluster {} ({})", c.id, c.label()),
        SlotKind::Free => "clusterhsm free slot".to_string(),
    };
    Ok(SlotInfo {
        description,
        token_present: true,
    })
}

/// Max sessions per application: CloudHSM allows 1,024; the standard profile sets none.
pub fn max_sessions(profile: Profile) -> CK_ULONG {
    match profile {
        Profile::CloudHsm => 1024,
        Profile::Standard => CK_EFFECTIVELY_INFINITE,
    }
}

/// C_GetTokenInfo (§5.5).
pub fn token_info(slot: CK_SLOT_ID) -> Result<TokenInfo> {
    let lib = library()?;
    let cluster = match slot_kind(&lib, slot)? {
        SlotKind::Free => {
            return Ok(TokenInfo {
                label: String::new(),
                serial: format!("{:016x}", slot),
                model: "cluster".into(),
                flags: CKF_RNG | CKF_LOGIN_REQUIRED,
                session_count: 0,
                rw_session_count: 0,
                max_sessions: CK_EFFECTIVELY_INFINITE,
                min_pin: 4,
                max_pin: 64,
                initialized: false,
            })
        }
        SlotKind::Cluster(c) => c,
    };
    cluster.refresh()?;
    let sessions = lib.sessions_of(slot);
    let profile = cluster.profile();
    let mut flags = CKF_RNG | CKF_LOGIN_REQUIRED | CKF_TOKEN_INITIALIZED;
    if cluster.has_crypto_user(users::DEFAULT_CU)
        || cluster
            .inner
            .read()
            .users
            .iter()
            .any(|u| u.role == Role::CryptoUser.name())
    {
        flags |= CKF_USER_PIN_INITIALIZED;
    }
    // The default CU's lockout state, counted on its worst instance.
    let max = cluster.config.max_login_failures;
    let worst = cluster
        .failures_of(users::DEFAULT_CU)
        .into_iter()
        .map(|(_, n)| n)
        .max()
        .unwrap_or(0);
    if worst >= max {
        flags |= CKF_USER_PIN_LOCKED;
    } else if worst + 1 == max {
        flags |= CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_COUNT_LOW;
    } else if worst > 0 {
        flags |= CKF_USER_PIN_COUNT_LOW;
    }
    let worst_so = cluster
        .failures_of(users::DEFAULT_CO)
        .into_iter()
        .map(|(_, n)| n)
        .max()
        .unwrap_or(0);
    if worst_so >= max {
        flags |= CKF_SO_PIN_LOCKED;
    } else if worst_so + 1 == max {
        flags |= CKF_SO_PIN_FINAL_TRY | CKF_SO_PIN_COUNT_LOW;
    } else if worst_so > 0 {
        flags |= CKF_SO_PIN_COUNT_LOW;
    }
    let (min_pin, max_pin) = match profile {
        Profile::CloudHsm => (8, 32 + 32),
        Profile::Standard => (4, 64),
    };
    let row = cluster.inner.read().row.clone();
    let has_officer = cluster
        .inner
        .read()
        .users
        .iter()
        .any(|u| u.role == Role::CryptoOfficer.name());
    Ok(TokenInfo {
        label: row.label,
        serial: row.serial,
        model: match profile {
            Profile::CloudHsm => "cluster/cloudhsm".into(),
            Profile::Standard => "cluster".into(),
        },
        flags,
        session_count: sessions.len(),
        rw_session_count: sessions.iter().filter(|s| s.read_write).count(),
        max_sessions: max_sessions(profile),
        min_pin,
        max_pin,
        initialized: has_officer,
    })
}

/// Checks a slot exists (for the mechanism functions).
pub fn check_slot(slot: CK_SLOT_ID) -> Result<Option<Profile>> {
    let lib = library()?;
    Ok(match slot_kind(&lib, slot)? {
        SlotKind::Cluster(c) => Some(c.profile()),
        SlotKind::Free => None,
    })
}

/// C_GetMechanismList (§5.5).
pub fn mechanism_list(slot: CK_SLOT_ID) -> Result<Vec<CK_MECHANISM_TYPE>> {
    let profile = check_slot(slot)?.unwrap_or(Profile::Standard);
    Ok(mechanism::registry::list(profile))
}

/// C_GetMechanismInfo (§5.5).
pub fn mechanism_info(slot: CK_SLOT_ID, mech: CK_MECHANISM_TYPE) -> Result<CK_MECHANISM_INFO> {
    let profile = check_slot(slot)?.unwrap_or(Profile::Standard);
    mechanism::registry::info(profile, mech).ok_or(Error::MechanismInvalid(mech))
}

fn pin_text_ok(pin: &[u8]) -> bool {
    !pin.is_empty() && pin.iter().all(|b| *b != 0)
}

/// C_InitToken (§5.5): on the free slot creates a new cluster whose Crypto Officer is
/// `admin` with the SO PIN; on an existing cluster checks the SO PIN and wipes it.
pub fn init_token(slot: CK_SLOT_ID, so_pin: &[u8], label: &[u8]) -> Result<()> {
    let lib = library()?;
    if !pin_text_ok(so_pin) {
        return Err(Error::PinInvalid);
    }
    let label = String::from_utf8_lossy(label)
        .trim_end_matches([' ', '\0'])
        .to_string();
    match slot_kind(&lib, slot)? {
        SlotKind::Free => {
            let (name, password) = users::split_pin(so_pin, Role::CryptoOfficer);
            let profile = Profile::parse(&lib.config.default_profile)?;
            check_new_password(profile, password.len(), so_pin.len())?;
            users::validate_name(&name)?;
            let id = slot as i64;
            let row = cluster::create_cluster(
                &lib.store,
                &lib.config,
                id,
                &label,
                profile.name(),
                &lib.config.default_azs,
            )?;
            let mk = store::seal::MasterKey::generate()?;
            let so = users::make_user(
                &cluster::token_id(&row),
                &name,
                Role::CryptoOfficer,
                password.expose(),
                &mk,
                row.kdf_iterations,
            )?;
            let instances: Vec<String> =
                lib.store.hsms(id)?.into_iter().map(|h| h.hsm_id).collect();
            lib.store.write(|tx| {
                store::put_user(tx, id, &so)?;
                let mut ev = cluster::audit::Event::new("CN_INIT_TOKEN");
                ev.user = Some(&name);
                ev.label = Some(label.as_bytes());
                cluster::audit::record(tx, id, &instances, &ev)
            })?;
            lib.refresh_clusters()?;
            crate::log_info!(
                "C_InitToken: created cluster {id} with {} HSM instances",
                instances.len()
            );
            Ok(())
        }
        SlotKind::Cluster(c) => {
            if !lib.sessions_of(slot).is_empty() {
                return Err(Error::SessionExists);
            }
            let (name, password) = users::split_pin(so_pin, Role::CryptoOfficer);
            let has_officer = c
                .inner
                .read()
                .users
                .iter()
                .any(|u| u.role == Role::CryptoOfficer.name());
            if has_officer {
                c.verify_password(&name, Role::CryptoOfficer, password.expose())?;
            } else {
                // A cluster made by `clusterhsm cluster create` has no Crypto Officer yet:
                // this C_InitToken is its first initialization.
                check_new_password(c.profile(), password.len(), so_pin.len())?;
                users::validate_name(&name)?;
            }
            let mk = store::seal::MasterKey::generate()?;
            let iterations = c.inner.read().row.kdf_iterations;
            let token = c.inner.read().token_id.clone();
            let so = users::make_user(
                &token,
                &name,
                Role::CryptoOfficer,
                password.expose(),
                &mk,
                iterations,
            )?;
            let mut row = c.inner.read().row.clone();
            row.label = label.clone();
            let instances = c.serving_instances();
            c.write(|tx| {
                store::wipe_cluster_contents(tx, c.id)?;
                store::put_user(tx, c.id, &so)?;
                store::update_cluster(tx, &row)?;
                let mut ev = cluster::audit::Event::new("CN_INIT_TOKEN");
                ev.user = Some(&name);
                ev.label = Some(label.as_bytes());
                cluster::audit::record(tx, c.id, &instances, &ev)
            })?;
            c.logout();
            Ok(())
        }
    }
}

fn check_new_password(profile: Profile, password_len: usize, whole_len: usize) -> Result<()> {
    let ok = match profile {
        Profile::CloudHsm => (8..=32).contains(&password_len),
        Profile::Standard => (4..=64).contains(&whole_len) && password_len >= 1,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::PinLenRange)
    }
}

/// C_InitPIN (§5.5): the SO creates or resets the default Crypto User `cu` (or the user a
/// `name:password` PIN names).
pub fn init_pin(session: CK_SESSION_HANDLE, pin: &[u8]) -> Result<()> {
    let (_lib, s) = super::session(session)?;
    let c = &s.cluster;
    if c.profile() == Profile::CloudHsm {
        return Err(Error::FunctionNotSupported(
            "C_InitPIN: CloudHSM manages users with the CLI",
        ));
    }
    let so_name = match c.login_state() {
        LoginState::SecurityOfficer(n) => n,
        _ => return Err(Error::UserNotLoggedIn),
    };
    s.require_rw()?;
    if !pin_text_ok(pin) {
        return Err(Error::PinInvalid);
    }
    let (name, password) = users::split_pin(pin, Role::CryptoUser);
    check_new_password(c.profile(), password.len(), pin.len())?;
    if let Some(existing) = c.user(&name) {
        if existing.role != Role::CryptoUser.name() {
            return Err(Error::PinInvalid);
        }
    }
    c.put_user(&name, Role::CryptoUser, password.expose(), &so_name)
}

/// C_SetPIN (§5.5): changes the logged-in user's password (the default CU's in a public
/// session), re-wrapping only the master key.
pub fn set_pin(session: CK_SESSION_HANDLE, old_pin: &[u8], new_pin: &[u8]) -> Result<()> {
    let (_lib, s) = super::session(session)?;
    let c = &s.cluster;
    if c.profile() == Profile::CloudHsm {
        return Err(Error::FunctionNotSupported(
            "C_SetPIN: CloudHSM changes passwords with the CLI",
        ));
    }
    s.require_rw()?;
    if !pin_text_ok(new_pin) {
        return Err(Error::PinInvalid);
    }
    let (role, name) = match c.login_state() {
        LoginState::User(n) => (Role::CryptoUser, n),
        LoginState::SecurityOfficer(n) => (Role::CryptoOfficer, n),
        LoginState::Public => (
            Role::CryptoUser,
            users::split_pin(old_pin, Role::CryptoUser).0,
        ),
    };
    let (old_name, old_password) = users::split_pin(old_pin, role);
    let old_password = if old_name == name {
        old_password
    } else {
        crate::secure_mem::SecretBytes::from_slice(old_pin)
    };
    let (new_name, new_password) = users::split_pin(new_pin, role);
    let new_password = if new_name == name {
        new_password
    } else {
        crate::secure_mem::SecretBytes::from_slice(new_pin)
    };
    check_new_password(c.profile(), new_password.len(), new_pin.len())?;
    let mk = c.verify_password(&name, role, old_password.expose())?;
    let iterations = c.inner.read().row.kdf_iterations;
    let token = c.inner.read().token_id.clone();
    let row = users::make_user(&token, &name, role, new_password.expose(), &mk, iterations)?;
    let instances = c.serving_instances();
    c.write(|tx| {
        store::put_user(tx, c.id, &row)?;
        let mut ev = cluster::audit::Event::new("CN_CHANGE_PSWD");
        ev.user = Some(&name);
        cluster::audit::record(tx, c.id, &instances, &ev)
    })
}
