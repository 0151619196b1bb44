//! `clusterhsm key ...` and `clusterhsm backup ...`: key listing, sharing and deletion as
//! the owning Crypto User, and encrypted backups restored into a new cluster.

use super::{cluster_of, flag, open, positional, Ctx};
use clusterhsm::cluster::users::{split_pin, Role};
use clusterhsm::cluster::Cluster;
use cryptoki_sys::*;
use std::sync::Arc;

/// Logs in as the Crypto User named by `--user name:password` (or CLUSTERHSM_CU).
fn login_cu(c: &Cluster, args: &[String]) -> Result<String, String> {
    let creds = flag(args, "--user")
        .or_else(|| std::env::var("CLUSTERHSM_CU").ok())
        .ok_or("give the key owner as --user NAME:PASSWORD (or CLUSTERHSM_CU)")?;
    let (name, _) = split_pin(creds.as_bytes(), Role::CryptoUser);
    c.login(Role::CryptoUser, creds.as_bytes())
        .map_err(|e| format!("login as {name}: {e}"))?;
    Ok(name)
}

fn class_name(class: CK_OBJECT_CLASS) -> &'static str {
    match class {
        CKO_DATA => "data",
        CKO_CERTIFICATE => "certificate",
        CKO_PUBLIC_KEY => "public-key",
        CKO_PRIVATE_KEY => "private-key",
        CKO_SECRET_KEY => "secret-key",
        _ => "other",
    }
}

fn key_type_name(kt: Option<CK_KEY_TYPE>) -> &'static str {
    match kt {
        Some(CKK_RSA) => "rsa",
        Some(CKK_EC) => "ec",
        Some(CKK_EC_EDWARDS) => "ed25519",
        Some(CKK_EC_MONTGOMERY) => "x25519",
        Some(CKK_AES) => "aes",
        Some(CKK_DES3) => "des3",
        Some(CKK_GENERIC_SECRET) => "generic-secret",
        _ => "-",
    }
}

fn list(c: &Arc<Cluster>, json: bool) {
    let inner = c.inner.read();
    let mut rows: Vec<serde_json::Value> = inner
        .objects
        .all()
        .filter(|e| {
            e.session.is_none() && clusterhsm::cluster::objects::visible(&inner.login, &e.object)
        })
        .map(|e| {
            let o = &e.object;
            serde_json::json!({
                "unique_id": o.uid,
                "label": String::from_utf8_lossy(o.label()),
                "class": class_name(o.class),
                "key_type": key_type_name(o.key_type),
                "owner": o.owner.as_deref(),
                "shared_with": o.shared_with,
                "replicas": inner.replicas.get(&e.handle).map(|r| r.to_vec()).unwrap_or_default(),
            })
        })
        .collect();
    rows.sort_by(|a, b| a["unique_id"].as_str().cmp(&b["unique_id"].as_str()));
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return;
    }
    println!(
        "{:18} {:12} {:15} {:12} {:10} {:16} replicas",
        "unique id", "class", "type", "owner", "shared", "label"
    );
    for r in rows {
        let shared: Vec<&str> = r["shared_with"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        let reps: Vec<&str> = r["replicas"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        println!(
            "{:18} {:12} {:15} {:12} {:10} {:16} {}",
            r["unique_id"].as_str().unwrap_or(""),
            r["class"].as_str().unwrap_or(""),
            r["key_type"].as_str().unwrap_or(""),
            r["owner"].as_str().unwrap_or("-"),
            if shared.is_empty() {
                "-".to_string()
            } else {
                shared.join(",")
            },
            r["label"].as_str().unwrap_or(""),
            reps.join(",")
        );
    }
}

/// `clusterhsm key list|share|unshare|delete`.
pub fn key(args: &[String], sub: Option<&str>) -> Result<(), String> {
    let ctx: Ctx = open()?;
    let c = cluster_of(&ctx, args)?;
    let json = args.iter().any(|a| a == "--json");
    match sub {
        Some("list") => {
            // Public objects are listed without a login; with --user, the user's too.
            if flag(args, "--user").is_some() || std::env::var("CLUSTERHSM_CU").is_ok() {
                login_cu(&c, args)?;
            }
            list(&c, json);
            Ok(())
        }
        Some(op @ ("share" | "unshare")) => {
            let uid = positional(args, 2).ok_or(format!(
                "usage: clusterhsm key {op} UNIQUE_ID --with USER --user OWNER:PASSWORD"
            ))?;
            let with = flag(args, "--with").ok_or("give --with USER")?;
            login_cu(&c, args)?;
            c.share(uid, &with, op == "share")
                .map_err(|e| e.to_string())?;
            println!("key {uid} {op}d with {with}");
            Ok(())
        }
        Some("delete") => {
            let uid = positional(args, 2)
                .ok_or("usage: clusterhsm key delete UNIQUE_ID --user OWNER:PASSWORD")?;
            login_cu(&c, args)?;
            let handle = c.inner.read().objects.handle_of(uid).ok_or("no such key")?;
            c.entry(handle, clusterhsm::cluster::objects::Access::Own)
                .map_err(|e| e.to_string())?;
            c.destroy_object(handle).map_err(|e| e.to_string())?;
            println!("key {uid} deleted");
            Ok(())
        }
        Some("generate") => generate(args),
        Some("import") => import(args),
        Some("set-attribute") => set_attribute(args),
        _ => Err(
            "usage: clusterhsm key list|generate|import|set-attribute|share|unshare|delete".into(),
        ),
    }
}

/// `clusterhsm backup create|restore FILE --password P` (or CLUSTERHSM_BACKUP_PASSWORD).
pub fn backup(args: &[String], sub: Option<&str>) -> Result<(), String> {
    let file =
        positional(args, 2).ok_or("usage: clusterhsm backup create|restore FILE --password P")?;
    let password = flag(args, "--password")
        .or_else(|| std::env::var("CLUSTERHSM_BACKUP_PASSWORD").ok())
        .ok_or("give --password (or CLUSTERHSM_BACKUP_PASSWORD)")?;
    let ctx = open()?;
    match sub {
        Some("create") => {
            let c = cluster_of(&ctx, args)?;
            let bytes = clusterhsm::cluster::backup::create(&ctx.store, c.id, password.as_bytes())
                .map_err(|e| e.to_string())?;
            std::fs::write(file, &bytes).map_err(|e| format!("{file}: {e}"))?;
            println!(
                "backup of cluster {} written to {file} ({} bytes)",
                c.id,
                bytes.len()
            );
            Ok(())
        }
        Some("restore") => {
            let bytes = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
            let id = clusterhsm::cluster::backup::restore(&ctx.store, &bytes, password.as_bytes())
                .map_err(|e| e.to_string())?;
            println!("restored into a new cluster in slot {id}");
            Ok(())
        }
        _ => Err("usage: clusterhsm backup create|restore FILE --password P".into()),
    }
}

/// `clusterhsm hsm latency ID MS`: injected latency on one instance (0 clears it).
pub fn latency(args: &[String]) -> Result<(), String> {
    let id = positional(args, 2)
        .ok_or("usage: clusterhsm hsm latency ID MILLISECONDS")?
        .to_string();
    let ms: u64 = positional(args, 3)
        .and_then(|v| v.parse().ok())
        .ok_or("usage: clusterhsm hsm latency ID MILLISECONDS")?;
    let ctx = open()?;
    let c = cluster_of(&ctx, args)?;
    if !c.instance_stats().iter().any(|(h, ..)| *h == id) {
        return Err(format!("no HSM instance {id}"));
    }
    c.set_faults(|f| {
        if ms == 0 {
            f.latency.remove(&id);
        } else {
            f.latency.insert(id.clone(), ms);
        }
    })
    .map_err(|e| e.to_string())?;
    println!("{id}: {ms} ms injected latency");
    Ok(())
}

/// `clusterhsm cluster throttle PERCENT`: the share of operations the cluster throttles
/// (each then retried 3 times by the client with back-off, as CloudHSM's client does).
pub fn throttle(args: &[String]) -> Result<(), String> {
    let pct: u32 = positional(args, 2)
        .and_then(|v| v.parse().ok())
        .filter(|p| *p <= 100)
        .ok_or("usage: clusterhsm cluster throttle PERCENT (0..100)")?;
    let ctx = open()?;
    let c = cluster_of(&ctx, args)?;
    c.set_faults(|f| f.throttle_percent = pct)
        .map_err(|e| e.to_string())?;
    println!("cluster {}: {pct}% of operations throttled", c.id);
    Ok(())
}

/// An in-process PKCS#11 session on the cluster's slot, logged in as the Crypto User.
fn cu_session(c: &Cluster, args: &[String]) -> Result<CK_SESSION_HANDLE, String> {
    use clusterhsm::api;
    match api::general::initialize(None) {
        Ok(()) | Err(clusterhsm::error::Error::CryptokiAlreadyInitialized) => {}
        Err(e) => return Err(e.to_string()),
    }
    let creds = flag(args, "--user")
        .or_else(|| std::env::var("CLUSTERHSM_CU").ok())
        .ok_or("give the key owner as --user NAME:PASSWORD (or CLUSTERHSM_CU)")?;
    let h = api::session::open_session(c.slot_id(), CKF_SERIAL_SESSION | CKF_RW_SESSION)
        .map_err(|e| e.to_string())?;
    api::session::login(h, CKU_USER, creds.as_bytes()).map_err(|e| format!("login: {e}"))?;
    Ok(h)
}

fn ulong(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

fn common_template(args: &[String]) -> Result<Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>, String> {
    let mut t = vec![(CKA_TOKEN, vec![CK_TRUE])];
    if let Some(l) = flag(args, "--label") {
        t.push((CKA_LABEL, l.into_bytes()));
    }
    if let Some(id) = flag(args, "--id") {
        t.push((CKA_ID, unhex(&id)?));
    }
    Ok(t)
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("not hex: {s}"));
    }
    Ok((0..s.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect())
}

fn uid_of(h: CK_SESSION_HANDLE, obj: CK_OBJECT_HANDLE) -> String {
    match clusterhsm::api::object::get_attributes(h, obj, &[CKA_UNIQUE_ID])
        .ok()
        .and_then(|mut v| v.pop())
    {
        Some(clusterhsm::api::object::AttrAnswer::Value(v)) => {
            String::from_utf8_lossy(&v).into_owned()
        }
        _ => "?".into(),
    }
}

/// `clusterhsm key generate --type T [--label L] [--id HEX] --user CU:PASSWORD`.
pub fn generate(args: &[String]) -> Result<(), String> {
    use clusterhsm::api::key_mgmt;
    use clusterhsm::mechanism::{Mechanism, Params};
    let ctx = open()?;
    let c = cluster_of(&ctx, args)?;
    let kind = flag(args, "--type").ok_or(
        "give --type aes-128|aes-256|rsa-2048|rsa-3072|rsa-4096|ec-p256|ec-p384|ec-p521|ed25519",
    )?;
    let h = cu_session(&c, args)?;
    let base = common_template(args)?;
    let mech = |ty| Mechanism {
        ty,
        params: Params::None,
    };
    let ec = |oid: &[u8]| -> Result<Vec<String>, String> {
        let mut public = base.clone();
        public.push((CKA_EC_PARAMS, oid.to_vec()));
        let (p, k) = key_mgmt::generate_key_pair(h, &mech(CKM_EC_KEY_PAIR_GEN), &public, &base)
            .map_err(|e| e.to_string())?;
        Ok(vec![uid_of(h, p), uid_of(h, k)])
    };
    let made = match kind.as_str() {
        "aes-128" | "aes-192" | "aes-256" => {
            let bits: CK_ULONG = kind[4..].parse().map_err(|_| "size")?;
            let mut t = base.clone();
            t.push((CKA_VALUE_LEN, ulong(bits / 8)));
            vec![uid_of(
                h,
                key_mgmt::generate_key(h, &mech(CKM_AES_KEY_GEN), &t).map_err(|e| e.to_string())?,
            )]
        }
        "rsa-2048" | "rsa-3072" | "rsa-4096" => {
            let bits: CK_ULONG = kind[4..].parse().map_err(|_| "size")?;
            let mut public = base.clone();
            public.push((CKA_MODULUS_BITS, ulong(bits)));
            let (p, k) =
                key_mgmt::generate_key_pair(h, &mech(CKM_RSA_PKCS_KEY_PAIR_GEN), &public, &base)
                    .map_err(|e| e.to_string())?;
            vec![uid_of(h, p), uid_of(h, k)]
        }
        "ec-p256" => ec(&[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07])?,
        "ec-p384" => ec(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22])?,
        "ec-p521" => ec(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23])?,
        "ed25519" => {
            let (p, k) =
                key_mgmt::generate_key_pair(h, &mech(CKM_EC_EDWARDS_KEY_PAIR_GEN), &base, &base)
                    .map_err(|e| e.to_string())?;
            vec![uid_of(h, p), uid_of(h, k)]
        }
        other => return Err(format!("unknown key type {other}")),
    };
    println!("generated {kind}: {}", made.join(" "));
    Ok(())
}

/// PEM to DER (the first block), or the bytes as they are.
fn pem_or_der(bytes: &[u8]) -> Result<(Option<String>, Vec<u8>), String> {
    let text = String::from_utf8_lossy(bytes);
    let Some(start) = text.find("-----BEGIN ") else {
        return Ok((None, bytes.to_vec()));
    };
    let rest = &text[start + 11..];
    let kind_end = rest.find("-----").ok_or("bad PEM header")?;
    let kind = rest[..kind_end].to_string();
    let body_start = kind_end + 5;
    let end = rest.find("-----END ").ok_or("bad PEM footer")?;
    let b64: String = rest[body_start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    Ok((Some(kind), base64_decode(&b64)?))
}

fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let val = |c: u8| -> Result<u32, String> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err("bad base64".into()),
        } as u32)
    };
    let bytes = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= val(*c)? << (18 - 6 * i);
        }
        let n = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return Err("bad base64 length".into()),
        };
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    Ok(out)
}

/// `clusterhsm key import FILE [--label L] [--id HEX] --user CU:PASSWORD`: a PKCS#8 private
/// key, an X.509 certificate, or a SubjectPublicKeyInfo, as PEM or DER.
pub fn import(args: &[String]) -> Result<(), String> {
    use clusterhsm::crypto::der;
    let file = positional(args, 2)
        .ok_or("usage: clusterhsm key import FILE [--label L] [--id HEX] --user CU:PASSWORD")?;
    let bytes = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
    let (kind, der_bytes) = pem_or_der(&bytes)?;
    let ctx = open()?;
    let c = cluster_of(&ctx, args)?;
    let h = cu_session(&c, args)?;
    let mut t = common_template(args)?;
    let kind = kind.unwrap_or_default();
    let obj = if kind.contains("CERTIFICATE")
        || (kind.is_empty() && der::parse_certificate(&der_bytes).is_ok())
    {
        t.push((CKA_CLASS, ulong(CKO_CERTIFICATE)));
        t.push((CKA_CERTIFICATE_TYPE, ulong(CKC_X_509)));
        t.push((CKA_VALUE, der_bytes));
        clusterhsm::api::object::create_object(h, &t).map_err(|e| e.to_string())?
    } else if kind.contains("PRIVATE KEY")
        || (kind.is_empty() && der::decode_pkcs8(&der_bytes).is_ok())
    {
        let r = clusterhsm::api::key_mgmt::import_pkcs8(h, &der_bytes, &t);
        zeroize::Zeroize::zeroize(&mut der_bytes.clone());
        r.map_err(|e| e.to_string())?
    } else {
        match der::decode_spki(&der_bytes)
            .map_err(|_| "not a certificate, PKCS#8 private key or public key")?
        {
            der::PublicKeyMaterial::Rsa { n, e } => {
                t.extend([
                    (CKA_CLASS, ulong(CKO_PUBLIC_KEY)),
                    (CKA_KEY_TYPE, ulong(CKK_RSA)),
                    (CKA_MODULUS, n),
                    (CKA_PUBLIC_EXPONENT, e),
                ]);
            }
            der::PublicKeyMaterial::Ec { curve, point } => {
                t.extend([
                    (CKA_CLASS, ulong(CKO_PUBLIC_KEY)),
                    (CKA_KEY_TYPE, ulong(CKK_EC)),
                    (CKA_EC_PARAMS, curve.oid_der().to_vec()),
                    (
                        CKA_EC_POINT,
                        clusterhsm::crypto::ec::ec_point_to_der(&point),
                    ),
                ]);
            }
            der::PublicKeyMaterial::Ed25519(p) => {
                t.extend([
                    (CKA_CLASS, ulong(CKO_PUBLIC_KEY)),
                    (CKA_KEY_TYPE, ulong(CKK_EC_EDWARDS)),
                    (CKA_EC_PARAMS, vec![0x06, 0x03, 0x2b, 0x65, 0x70]),
                    (CKA_EC_POINT, clusterhsm::crypto::ec::ec_point_to_der(&p)),
                ]);
            }
            der::PublicKeyMaterial::X25519(p) => {
                t.extend([
                    (CKA_CLASS, ulong(CKO_PUBLIC_KEY)),
                    (CKA_KEY_TYPE, ulong(CKK_EC_MONTGOMERY)),
                    (CKA_EC_PARAMS, vec![0x06, 0x03, 0x2b, 0x65, 0x6e]),
                    (CKA_EC_POINT, clusterhsm::crypto::ec::ec_point_to_der(&p)),
                ]);
            }
        }
        clusterhsm::api::object::create_object(h, &t).map_err(|e| e.to_string())?
    };
    println!("imported {file}: {}", uid_of(h, obj));
    Ok(())
}

/// `clusterhsm key set-attribute UID [--label L] [--id HEX] [--ATTR true|false ...]`.
pub fn set_attribute(args: &[String]) -> Result<(), String> {
    let uid = positional(args, 2).ok_or("usage: clusterhsm key set-attribute UNIQUE_ID [--label L] [--id HEX] [--encrypt true|false ...] --user OWNER:PASSWORD")?;
    let ctx = open()?;
    let c = cluster_of(&ctx, args)?;
    let h = cu_session(&c, args)?;
    let mut t = Vec::new();
    if let Some(l) = flag(args, "--label") {
        t.push((CKA_LABEL, l.into_bytes()));
    }
    if let Some(id) = flag(args, "--id") {
        t.push((CKA_ID, unhex(&id)?));
    }
    let bools = [
        ("--encrypt", CKA_ENCRYPT),
        ("--decrypt", CKA_DECRYPT),
        ("--sign", CKA_SIGN),
        ("--verify", CKA_VERIFY),
        ("--wrap", CKA_WRAP),
        ("--unwrap", CKA_UNWRAP),
        ("--derive", CKA_DERIVE),
        ("--extractable", CKA_EXTRACTABLE),
        ("--sensitive", CKA_SENSITIVE),
    ];
    for (name, ty) in bools {
        if let Some(v) = flag(args, name) {
            let b = match v.as_str() {
                "true" | "1" | "yes" => CK_TRUE,
                "false" | "0" | "no" => CK_FALSE,
                _ => return Err(format!("{name} takes true or false")),
            };
            t.push((ty, vec![b]));
        }
    }
    if t.is_empty() {
        return Err("nothing to set".into());
    }
    let handle = c.inner.read().objects.handle_of(uid).ok_or("no such key")?;
    clusterhsm::api::object::set_attributes(h, handle, &t).map_err(|e| e.to_string())?;
    println!("key {uid} updated");
    Ok(())
}
