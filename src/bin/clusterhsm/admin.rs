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
                "owner": o.owner,
                "shared_with": o.shared_with,
                "replicas": inner.replicas.get(&e.handle).cloned().unwrap_or_default(),
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
        _ => Err("usage: clusterhsm key list|share|unshare|delete".into()),
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
