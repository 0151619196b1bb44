//! Backups: one encrypted, integrity-protected file holding a cluster's users and objects
//! (their secrets stay sealed under the token master key, which stays wrapped under the
//! users' passwords), restored into a new cluster. The file itself is AES-256-GCM under a
//! key derived from a backup password, so a tampered file or a wrong password is refused
//! before anything is written.

use super::hsm::Health;
use crate::error::{Error, Result};
use crate::store::{self, seal, ClusterRow, HsmRow, ObjectRow, Store, UserRow};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use serde::{Deserialize, Serialize};

const MAGIC: &[u8] = b"CLUSTERHSM-BACKUP-1\n";
const SALT_LEN: usize = 16;
/// PBKDF2 iterations for the backup password.
const BACKUP_KDF_ITERATIONS: u32 = 200_000;

#[derive(Serialize, Deserialize)]
struct Payload {
    label: String,
    profile: String,
    kdf_iterations: u32,
    settings: String,
    hsms: Vec<(String, String)>,
    users: Vec<(String, String, String, String)>,
    objects: Vec<StoredObject>,
}

#[derive(Serialize, Deserialize)]
struct StoredObject {
    uid: String,
    owner: Option<String>,
    shared: Vec<String>,
    attrs: String,
    sealed: Option<String>,
}

fn hex(b: &[u8]) -> String {
    super::to_hex(b)
}

fn unhex(s: &str) -> Result<Vec<u8>> {
    if s.len() % 2 != 0 {
        return Err(Error::GeneralError("backup: bad hex".into()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(s.get(i..i + 2).unwrap_or("zz"), 16)
                .map_err(|_| Error::GeneralError("backup: bad hex".into()))
        })
        .collect()
}

fn backup_key(password: &[u8], salt: &[u8]) -> Result<LessSafeKey> {
    if password.len() < 8 {
        return Err(Error::ArgumentsBad(
            "a backup password has at least 8 characters",
        ));
    }
    let mut k = crate::secure_mem::SecretBytes::zeroed(32);
    let iters = std::num::NonZeroU32::new(BACKUP_KDF_ITERATIONS)
        .ok_or(Error::GeneralError("iterations".into()))?;
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        iters,
        salt,
        password,
        k.expose_mut(),
    );
    let unbound = UnboundKey::new(&AES_256_GCM, k.expose())
        .map_err(|_| Error::GeneralError("backup key".into()))?;
    Ok(LessSafeKey::new(unbound))
}

/// Writes a backup of cluster `cluster_id` and returns the file bytes.
pub fn create(store: &Store, cluster_id: i64, password: &[u8]) -> Result<Vec<u8>> {
    let row = store
        .clusters()?
        .into_iter()
        .find(|c| c.id == cluster_id)
        .ok_or(Error::ArgumentsBad("no such cluster"))?;
    let hsms = store
        .hsms(cluster_id)?
        .into_iter()
        .map(|h| (h.hsm_id, h.az))
        .collect();
    let users = store
        .users(cluster_id)?
        .into_iter()
        .map(|u| (u.name, u.role, hex(&u.salt), hex(&u.wrapped_mk)))
        .collect();
    let (rows, _, _) = store.objects_since(cluster_id, 0)?;
    let objects = rows
        .into_iter()
        .map(|r| StoredObject {
            uid: r.uid,
            owner: r.owner,
            shared: r.shared,
            attrs: hex(&r.attrs),
            sealed: r.sealed.as_deref().map(hex),
        })
        .collect();
    let payload = Payload {
        label: row.label,
        profile: row.profile,
        kdf_iterations: row.kdf_iterations,
        settings: row.settings,
        hsms,
        users,
        objects,
    };
    let mut plain =
        serde_json::to_vec(&payload).map_err(|e| Error::GeneralError(format!("backup: {e}")))?;
    let salt = seal::random_bytes(SALT_LEN)?;
    let nonce_bytes = seal::random_bytes(NONCE_LEN)?;
    let key = backup_key(password, &salt)?;
    let nonce = Nonce::try_assume_unique_for_key(&nonce_bytes)
        .map_err(|_| Error::GeneralError("nonce".into()))?;
    key.seal_in_place_append_tag(nonce, Aad::from(MAGIC), &mut plain)
        .map_err(|_| Error::GeneralError("backup seal".into()))?;
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&plain);
    Ok(out)
}

fn decode(bytes: &[u8], password: &[u8]) -> Result<Payload> {
    let refused = || {
        Error::GeneralError(
            "backup refused: wrong password, or the file was modified or truncated".into(),
        )
    };
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| Error::GeneralError("not a clusterhsm backup file".into()))?;
    if rest.len() < SALT_LEN + NONCE_LEN + 16 {
        return Err(refused());
    }
    let (salt, rest) = rest.split_at(SALT_LEN);
    let (nonce_bytes, ct) = rest.split_at(NONCE_LEN);
    let key = backup_key(password, salt)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce_bytes).map_err(|_| refused())?;
    let mut buf = ct.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(MAGIC), &mut buf)
        .map_err(|_| refused())?;
    serde_json::from_slice(plain).map_err(|_| refused())
}

/// Restores a backup into a new cluster (all its instances Active) and returns its slot id.
pub fn restore(store: &Store, bytes: &[u8], password: &[u8]) -> Result<i64> {
    let p = decode(bytes, password)?;
    let id = store.next_cluster_id()?;
    let row = ClusterRow {
        id,
        label: p.label,
        serial: super::random_hex(8)?,
        profile: p.profile,
        kdf_iterations: p.kdf_iterations,
        created: super::audit::now_utc(),
        settings: p.settings,
    };
    let hsms: Vec<HsmRow> = p
        .hsms
        .iter()
        .map(|(h, az)| HsmRow {
            hsm_id: h.clone(),
            az: az.clone(),
            health: Health::Active.name().into(),
        })
        .collect();
    let replicas: Vec<String> = hsms.iter().map(|h| h.hsm_id.clone()).collect();
    let mut users = Vec::new();
    for (name, role, salt, wrapped) in p.users {
        users.push(UserRow {
            name,
            role,
            salt: unhex(&salt)?,
            wrapped_mk: unhex(&wrapped)?,
        });
    }
    let mut objects = Vec::new();
    for o in p.objects {
        let attrs = unhex(&o.attrs)?;
        store::record::decode(&attrs)?;
        let sealed = o.sealed.as_deref().map(unhex).transpose()?;
        objects.push(ObjectRow {
            uid: o.uid,
            seq: 0,
            owner: o.owner,
            shared: o.shared,
            attrs,
            sealed,
            replicas: replicas.clone(),
        });
    }
    let count = objects.len();
    store.write(|tx| {
        store::insert_cluster(tx, &row, &hsms)?;
        for u in &users {
            store::put_user(tx, id, u)?;
        }
        for o in &objects {
            store::put_object(tx, id, o)?;
        }
        let detail = format!("restored {} users and {count} objects", users.len());
        let mut ev = super::audit::Event::new("CN_RESTORE_BACKUP");
        ev.detail = Some(&detail);
        super::audit::record(tx, id, &replicas, &ev)
    })?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampering_and_wrong_passwords_are_refused() {
        let dir = std::env::temp_dir().join(format!("chsm-backup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let cfg = crate::config::Config {
            kdf_iterations: 10,
            ..Default::default()
        };
        super::super::create_cluster(
            &store,
            &cfg,
            1,
            "b",
            "standard",
            &["az-a".into(), "az-b".into()],
        )
        .unwrap();
        let file = create(&store, 1, b"backup-pass").unwrap();
        assert!(decode(&file, b"wrong-pass").is_err());
        let mut bad = file.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(decode(&bad, b"backup-pass").is_err());
        assert!(decode(&file[..file.len() - 5], b"backup-pass").is_err());
        assert!(decode(b"garbage", b"backup-pass").is_err());
        let before = store.clusters().unwrap().len();
        assert!(restore(&store, &bad, b"backup-pass").is_err());
        assert_eq!(
            store.clusters().unwrap().len(),
            before,
            "nothing written on refusal"
        );
        let id = restore(&store, &file, b"backup-pass").unwrap();
        assert_eq!(id, 2);
        assert_eq!(store.hsms(2).unwrap().len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
