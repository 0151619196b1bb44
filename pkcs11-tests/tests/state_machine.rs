//! Library, slot and session/login state machine (PKCS#11 v2.40 §5.4–§5.6), driven
//! through the cryptoki crate as an application would. Each test is one process.

// `ck!` (tests/common/raw.rs) evaluates its arguments inside its unsafe block on purpose:
// every use is a raw FFI call.
#![allow(clippy::macro_metavars_in_unsafe)]

#[macro_use]
mod common;

use common::raw::Raw;
use common::*;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::{SessionState, UserType};
use cryptoki::slot::Slot;

fn states_of(sessions: &[&cryptoki::session::Session]) -> Vec<SessionState> {
    sessions
        .iter()
        .map(|s| {
            s.get_session_info()
                .expect("C_GetSessionInfo")
                .session_state()
        })
        .collect()
}

#[test]
fn initialize_twice_and_slots() {
    isolated("initialize_twice_and_slots", || {
        let p = Pkcs11::new(module_path()).expect("load");
        p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .expect("first C_Initialize");
        expect_rv(
            p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)),
            RvError::CryptokiAlreadyInitialized,
        );
        // A raw second caller in the same process sees the same library state.
        let raw = Raw::load();
        assert_eq!(
            raw.initialize(),
            cryptoki_sys::CKR_CRYPTOKI_ALREADY_INITIALIZED
        );

        // A new store shows one free slot whose token is not initialized.
        let all = p.get_all_slots().unwrap();
        assert_eq!(all.len(), 1);
        let info = p.get_token_info(all[0]).unwrap();
        assert!(!info.token_initialized());
        assert!(p.get_slots_with_initialized_token().unwrap().is_empty());
        // A session on the uninitialized token is refused.
        expect_rv(p.open_rw_session(all[0]), RvError::TokenNotRecognized);

        let slot = setup_token(&p);
        let with_token = p.get_slots_with_token().unwrap();
        assert_eq!(with_token, vec![slot], "exactly one slot with a token");
        assert_eq!(p.get_all_slots().unwrap(), vec![slot]);
        let info = p.get_token_info(slot).unwrap();
        assert!(info.token_initialized());
        assert!(info.user_pin_initialized());
        assert_eq!(info.label(), TOKEN_LABEL);
        // An unknown slot.
        expect_rv(
            p.get_token_info(Slot::try_from(0xdead_u64).unwrap()),
            RvError::SlotIdInvalid,
        );
        p.finalize().expect("C_Finalize");
    });
}

#[test]
fn login_state_machine() {
    isolated("login_state_machine", || {
        let p = load();
        let slot = setup_token(&p);
        let ro = p.open_ro_session(slot).unwrap();
        let rw = p.open_rw_session(slot).unwrap();
        assert!(!ro.get_session_info().unwrap().read_write());
        assert!(rw.get_session_info().unwrap().read_write());
        assert_eq!(
            states_of(&[&ro, &rw]),
            [SessionState::RoPublic, SessionState::RwPublic]
        );

        // Logout when nobody is logged in.
        expect_rv(rw.logout(), RvError::UserNotLoggedIn);
        // Wrong PIN.
        expect_rv(
            rw.login(UserType::User, Some(&pin("9999"))),
            RvError::PinIncorrect,
        );
        expect_rv(
            rw.login(UserType::So, Some(&pin("87654321"))),
            RvError::SessionReadOnlyExists,
        );

        // USER login is token-wide: every session of the application changes state.
        rw.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
        assert_eq!(
            states_of(&[&ro, &rw]),
            [SessionState::RoUser, SessionState::RwUser]
        );
        expect_rv(
            ro.login(UserType::User, Some(&pin(USER_PIN))),
            RvError::UserAlreadyLoggedIn,
        );
        expect_rv(
            rw.login(UserType::So, Some(&pin(SO_PIN))),
            RvError::UserAnotherAlreadyLoggedIn,
        );
        ro.logout().unwrap();
        assert_eq!(
            states_of(&[&ro, &rw]),
            [SessionState::RoPublic, SessionState::RwPublic]
        );

        // SO login while a R/O session exists.
        expect_rv(
            rw.login(UserType::So, Some(&pin(SO_PIN))),
            RvError::SessionReadOnlyExists,
        );
        drop(ro);
        rw.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
        assert_eq!(states_of(&[&rw]), [SessionState::RwSecurityOfficer]);
        // No R/O session while the SO is logged in.
        expect_rv(p.open_ro_session(slot), RvError::SessionReadWriteSoExists);
        expect_rv(
            rw.login(UserType::User, Some(&pin(USER_PIN))),
            RvError::UserAnotherAlreadyLoggedIn,
        );
        expect_rv(
            rw.login(UserType::So, Some(&pin(SO_PIN))),
            RvError::UserAlreadyLoggedIn,
        );
        rw.logout().unwrap();
        expect_rv(rw.logout(), RvError::UserNotLoggedIn);
        // Wrong SO PIN.
        expect_rv(
            rw.login(UserType::So, Some(&pin("00000000"))),
            RvError::PinIncorrect,
        );
        assert_eq!(states_of(&[&rw]), [SessionState::RwPublic]);
    });
}

#[test]
fn logout_on_last_session_close() {
    isolated("logout_on_last_session_close", || {
        let p = load();
        let slot = setup_token(&p);
        let raw = Raw::load();

        // Closing the last session (C_CloseSession) logs the application out.
        let s = user_session(&p, slot);
        assert_eq!(states_of(&[&s]), [SessionState::RwUser]);
        drop(s);
        let s = p.open_rw_session(slot).unwrap();
        assert_eq!(states_of(&[&s]), [SessionState::RwPublic]);

        // So does C_CloseAllSessions.
        s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
        let ro = p.open_ro_session(slot).unwrap();
        assert_eq!(
            states_of(&[&s, &ro]),
            [SessionState::RwUser, SessionState::RoUser]
        );
        let rv = ck!(raw, C_CloseAllSessions(slot.id()));
        assert_eq!(rv, cryptoki_sys::CKR_OK);
        expect_rv(s.get_session_info(), RvError::SessionHandleInvalid);
        expect_rv(ro.get_session_info(), RvError::SessionHandleInvalid);
        drop((s, ro)); // their C_CloseSession fails quietly in Drop
        let s = p.open_ro_session(slot).unwrap();
        assert_eq!(states_of(&[&s]), [SessionState::RoPublic]);

        // Closing one of two sessions keeps the login.
        let a = user_session(&p, slot);
        let b = p.open_ro_session(slot).unwrap();
        drop(s);
        drop(a);
        assert_eq!(states_of(&[&b]), [SessionState::RoUser]);
    });
}

#[test]
fn invalid_session_handle() {
    isolated("invalid_session_handle", || {
        let p = load();
        let slot = setup_token(&p);
        let raw = Raw::load();
        let s = p.open_rw_session(slot).unwrap();
        let h = s.handle();
        assert_eq!(ck!(raw, C_CloseSession(h)), cryptoki_sys::CKR_OK);
        // Every session function on the closed handle.
        expect_rv(s.get_session_info(), RvError::SessionHandleInvalid);
        expect_rv(
            s.login(UserType::User, Some(&pin(USER_PIN))),
            RvError::SessionHandleInvalid,
        );
        expect_rv(s.logout(), RvError::SessionHandleInvalid);
        expect_rv(
            s.find_objects(&[Attribute::Class(ObjectClass::DATA)]),
            RvError::SessionHandleInvalid,
        );
        expect_rv(s.generate_random_vec(8), RvError::SessionHandleInvalid);
        assert_eq!(
            ck!(raw, C_CloseSession(h)),
            cryptoki_sys::CKR_SESSION_HANDLE_INVALID
        );
        // A handle that never existed.
        let mut info = cryptoki_sys::CK_SESSION_INFO::default();
        assert_eq!(
            ck!(raw, C_GetSessionInfo(0x7fff_ffff, &mut info)),
            cryptoki_sys::CKR_SESSION_HANDLE_INVALID
        );
    });
}

#[test]
fn login_with_user_name_prefix() {
    isolated("login_with_user_name_prefix", || {
        let p = load();
        let slot = setup_token(&p);
        // A private token object made by the default user ("1234")...
        let s = user_session(&p, slot);
        let label = "private-of-cu";
        s.create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Label(label.into()),
            Attribute::Value(b"secret".to_vec()),
        ])
        .unwrap();
        s.logout().unwrap();
        let find = || {
            s.find_objects(&[Attribute::Label(label.into())])
                .unwrap()
                .len()
        };
        assert_eq!(find(), 0, "private objects are hidden after logout");
        // ...is seen when logging in as "cu:1234": the same user, named.
        s.login(UserType::User, Some(&pin(&format!("cu:{USER_PIN}"))))
            .unwrap();
        assert_eq!(
            s.get_session_info().unwrap().session_state(),
            SessionState::RwUser
        );
        assert_eq!(find(), 1);
        s.logout().unwrap();
        expect_rv(
            s.login(UserType::User, Some(&pin("cu:0000"))),
            RvError::PinIncorrect,
        );
    });
}

#[test]
fn set_pin_changes_pin() {
    isolated("set_pin_changes_pin", || {
        let p = load();
        let slot = setup_token(&p);
        let s = user_session(&p, slot);
        expect_rv(s.set_pin(&pin("0000"), &pin("5678")), RvError::PinIncorrect);
        s.set_pin(&pin(USER_PIN), &pin("5678")).unwrap();
        s.logout().unwrap();
        expect_rv(
            s.login(UserType::User, Some(&pin(USER_PIN))),
            RvError::PinIncorrect,
        );
        s.login(UserType::User, Some(&pin("5678"))).unwrap();
        s.logout().unwrap();

        // Also from a new process view: a fresh C_Initialize after C_Finalize.
        drop(s);
        p.finalize().unwrap();
        let p = load();
        let slot = token_slot(&p);
        let s = p.open_rw_session(slot).unwrap();
        expect_rv(
            s.login(UserType::User, Some(&pin(USER_PIN))),
            RvError::PinIncorrect,
        );
        s.login(UserType::User, Some(&pin("5678"))).unwrap();
    });
}

#[test]
fn unload_then_thread_exit() {
    // An application that loads the module, uses it on a worker thread, finalizes and
    // unloads it (as cryptoki does when `Pkcs11` is dropped, or p11-kit on module
    // release) must not crash when that thread later exits, e.g. through a pthread TSD
    // destructor left pointing into the unmapped library (an earlier build of the module
    // crashed this way at thread exit).
    isolated("unload_then_thread_exit", || {
        let path = locate_module();
        std::thread::spawn(move || {
            let p = Pkcs11::new(&path).expect("load");
            p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
                .unwrap();
            let slot = setup_token(&p);
            let s = user_session(&p, slot);
            s.generate_random_vec(16).unwrap();
            drop(s);
            p.finalize().unwrap(); // drops the last handle: dlclose
        })
        .join()
        .expect("worker thread");
    });
}

/// A session remembers the key it used last (to skip the cluster's lock on the next
/// operation): every change to that key, or to the login, must still reach it.
#[test]
fn a_used_key_changes_reach_the_session() {
    isolated("a_used_key_changes_reach_the_session", || {
        use cryptoki::mechanism::Mechanism;
        use cryptoki::object::KeyType;
        let p = load();
        let slot = setup_token(&p);
        let a = user_session(&p, slot);
        let b = p.open_rw_session(slot).unwrap();
        let key = |label: &str, token: bool| {
            a.create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Token(token),
                Attribute::Private(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Encrypt(true),
                Attribute::Value(vec![7; 32]),
            ])
            .unwrap()
        };
        let block = [0u8; 16];
        // A usage attribute turned off after use is enforced at the next init.
        let k = key("k", true);
        a.encrypt(&Mechanism::AesEcb, k, &block).unwrap();
        b.update_attributes(k, &[Attribute::Encrypt(false)])
            .unwrap();
        expect_rv(
            a.encrypt(&Mechanism::AesEcb, k, &block),
            RvError::KeyFunctionNotPermitted,
        );
        // A key destroyed by another session is gone for this one.
        let k2 = key("k2", false);
        a.encrypt(&Mechanism::AesEcb, k2, &block).unwrap();
        b.destroy_object(k2).unwrap();
        expect_rv(
            a.encrypt(&Mechanism::AesEcb, k2, &block),
            RvError::KeyHandleInvalid,
        );
        // After logout a private key is out of reach.
        let k3 = key("k3", true);
        a.encrypt(&Mechanism::AesEcb, k3, &block).unwrap();
        b.logout().unwrap();
        expect_rv(
            a.encrypt(&Mechanism::AesEcb, k3, &block),
            RvError::KeyHandleInvalid,
        );
        // Logged in again, the key works again.
        a.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
        a.encrypt(&Mechanism::AesEcb, k3, &block).unwrap();
    });
}
