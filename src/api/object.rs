//! Object management (PKCS#11 v2.40 §5.7): create, copy, destroy, size, attributes, find.

use super::session;
use crate::cluster::objects::{new_uid, Access};
use crate::cluster::LoginState;
use crate::error::{Error, Result};
use crate::mechanism::keys;
use crate::object::{self, Actor, Origin, Reveal, Template};
use crate::session::{FindCursor, Session};
use cryptoki_sys::*;

/// One attribute's answer for C_GetAttributeValue.
pub enum AttrAnswer {
    Value(Vec<u8>),
    Sensitive,
    Invalid,
}

pub fn actor(s: &Session) -> Actor {
    match s.cluster.login_state() {
        LoginState::SecurityOfficer(_) => Actor::SecurityOfficer,
        LoginState::User(_) => Actor::User,
        LoginState::Public => Actor::Public,
    }
}

/// Session rules for making an object with these attributes (§5.7 and §6.7.x).
pub fn check_may_create(s: &Session, token: bool, private: bool) -> Result<()> {
    if token {
        s.require_rw()?;
    }
    if private && !s.cluster.user_logged_in() {
        return Err(Error::UserNotLoggedIn);
    }
    Ok(())
}

/// C_CreateObject (§5.7).
pub fn create_object(handle: CK_SESSION_HANDLE, template: &Template) -> Result<CK_OBJECT_HANDLE> {
    let (_lib, s) = session(handle)?;
    let profile = s.cluster.profile();
    let mut obj = object::build_object(
        template,
        Origin::Create,
        actor(&s),
        profile.defaults(),
        new_uid()?,
    )?;
    keys::complete_new_object(&mut obj)?;
    check_may_create(&s, obj.is_token(), obj.is_private())?;
    s.cluster.insert_object(obj, s.handle, &s.hsm)
}

/// C_CopyObject (§5.7).
pub fn copy_object(
    handle: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: &Template,
) -> Result<CK_OBJECT_HANDLE> {
    let (_lib, s) = session(handle)?;
    if s.cluster.profile() == crate::cluster::Profile::CloudHsm {
        return Err(Error::FunctionNotSupported(
            "C_CopyObject is not offered by CloudHSM SDK 5",
        ));
    }
    let entry = s.cluster.entry(object, Access::Own)?;
    if !entry.object.bool_attr(CKA_COPYABLE) && entry.object.attrs.contains_key(&CKA_COPYABLE) {
        return Err(Error::ActionProhibited("CKA_COPYABLE is false".into()));
    }
    let copy = object::apply_changes(&entry.object, template, actor(&s), true, new_uid()?)?;
    check_may_create(&s, copy.is_token(), copy.is_private())?;
    s.cluster.insert_object(copy, s.handle, &s.hsm)
}

/// C_DestroyObject (§5.7).
pub fn destroy_object(handle: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> Result<()> {
    let (lib, s) = session(handle)?;
    let entry = s.cluster.entry(object, Access::Own)?;
    if entry.object.is_token() {
        s.require_rw()?;
    }
    if !entry.object.bool_attr(CKA_DESTROYABLE) && entry.object.attrs.contains_key(&CKA_DESTROYABLE)
    {
        return Err(Error::ActionProhibited("CKA_DESTROYABLE is false".into()));
    }
    s.cluster.destroy_object(object)?;
    // No session keeps the destroyed key's material in its memo.
    let slot = s.slot_id();
    lib.sessions.for_each(|other| {
        if other.slot_id() == slot {
            other.forget_key(object);
        }
    });
    Ok(())
}

/// C_GetObjectSize (§5.7).
pub fn object_size(handle: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> Result<usize> {
    let (_lib, s) = session(handle)?;
    Ok(s.cluster.entry(object, Access::Read)?.object.size())
}

/// C_GetAttributeValue (§5.7): one answer per requested type.
pub fn get_attributes(
    handle: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    types: &[CK_ATTRIBUTE_TYPE],
) -> Result<Vec<AttrAnswer>> {
    let (_lib, s) = session(handle)?;
    let entry = s.cluster.entry(object, Access::Read)?;
    // Only the owner may export a key's secret value; users it is shared with may not.
    let shared_only = match s.cluster.login_state() {
        LoginState::User(me) => entry.object.owner.as_deref().is_some_and(|o| o != me),
        _ => false,
    };
    Ok(types
        .iter()
        .map(|ty| match entry.object.reveal(*ty) {
            Reveal::Value(_) if shared_only && entry.object.secret(*ty).is_some() => {
                AttrAnswer::Sensitive
            }
            Reveal::Value(v) => AttrAnswer::Value(v.to_vec()),
            Reveal::Sensitive => AttrAnswer::Sensitive,
            Reveal::Invalid => AttrAnswer::Invalid,
        })
        .collect())
}

/// C_SetAttributeValue (§5.7).
pub fn set_attributes(
    handle: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: &Template,
) -> Result<()> {
    let (_lib, s) = session(handle)?;
    if s.cluster.profile() == crate::cluster::Profile::CloudHsm {
        return Err(Error::FunctionNotSupported(
            "C_SetAttributeValue is not offered by CloudHSM SDK 5; use the CLI",
        ));
    }
    let entry = s.cluster.entry(object, Access::Own)?;
    if entry.object.is_token() {
        s.require_rw()?;
    }
    if !entry.object.bool_attr(CKA_MODIFIABLE) {
        return Err(Error::ActionProhibited("CKA_MODIFIABLE is false".into()));
    }
    let next = object::apply_changes(
        &entry.object,
        template,
        actor(&s),
        false,
        entry.object.uid.clone(),
    )?;
    s.cluster.update_object(object, next)
}

/// C_FindObjectsInit (§5.7).
pub fn find_init(handle: CK_SESSION_HANDLE, template: &Template) -> Result<()> {
    let (_lib, s) = session(handle)?;
    let mut ops = s.ops.lock();
    if ops.find.is_some() {
        return Err(Error::OperationActive);
    }
    let handles = s.cluster.find(template)?;
    ops.find = Some(FindCursor {
        handles,
        position: 0,
    });
    Ok(())
}

/// C_FindObjects (§5.7): up to `max` more handles.
pub fn find_next(handle: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>> {
    let (_lib, s) = session(handle)?;
    let mut ops = s.ops.lock();
    let cursor = ops.find.as_mut().ok_or(Error::OperationNotInitialized)?;
    let end = cursor
        .handles
        .len()
        .min(cursor.position.saturating_add(max));
    let out = cursor.handles[cursor.position..end].to_vec();
    cursor.position = end;
    Ok(out)
}

/// C_FindObjectsFinal (§5.7).
pub fn find_final(handle: CK_SESSION_HANDLE) -> Result<()> {
    let (_lib, s) = session(handle)?;
    let taken = s.ops.lock().find.take();
    taken.map(|_| ()).ok_or(Error::OperationNotInitialized)
}
