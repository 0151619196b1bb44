//! `clusterhsm`: the admin CLI (cluster, hsm, az, user, audit, slots, status) and the
//! `demo` main job, which drives the built libclusterhsm.so through its C ABI.

mod admin;
mod demo;

use clusterhsm::cluster::hsm::Health;
use clusterhsm::cluster::users::{split_pin, Role};
use clusterhsm::cluster::{self, Cluster};
use clusterhsm::config::Config;
use clusterhsm::store::Store;
use std::process::ExitCode;
use std::sync::Arc;

const HELP: &str = "clusterhsm — a software HSM that models an AWS CloudHSM cluster

usage: clusterhsm <command> [args] [--cluster ID] [--json]

  demo [--keep DIR]                 run the main job in a temporary store
  status                            clusters, instances, health, memory locking
  slots                             the PKCS#11 slots a program will see
  cluster list|create|delete        [create: --label L --hsms N --azs a,b,c --profile standard|cloudhsm]
  hsm down|up|degrade ID            fault injection on one HSM instance (e.g. hsm-b)
  az down|up NAME                   fault injection on every instance in an AZ (e.g. az-b)
  hsm latency ID MS                 injected latency on one instance (0 clears)
  cluster throttle PERCENT          throttle a share of operations (client retries 3x)
  user list                         users, roles and lockout state
  user create|delete|change-password NAME [--role co|cu] [--password P] --user CO:PASSWORD
  user unlock NAME --user CO:PASSWORD
  audit tail [N] | verify           the audit log (per instance, gap-free sequence numbers)
  key list [--user CU:PASSWORD]     token objects: unique id, owner, sharing, replicas
  key generate --type aes-256|rsa-2048|ec-p256|ed25519|... [--label L] [--id HEX] --user CU:PASSWORD
  key import FILE [--label L] [--id HEX] --user CU:PASSWORD   (PEM/DER PKCS#8 key, certificate, public key)
  key set-attribute UID [--label L] [--id HEX] [--sign true|false ...] --user OWNER:PASSWORD
  key share|unshare UID --with USER --user OWNER:PASSWORD
  key delete UID --user OWNER:PASSWORD
  backup create|restore FILE --password P   encrypted backup; restore makes a new cluster

The store is $CLUSTERHSM_DIR, else $XDG_DATA_HOME/clusterhsm, else ~/.local/share/clusterhsm;
the config is $CLUSTERHSM_CONF, else /etc/clusterhsm/clusterhsm.toml.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clusterhsm: {e}");
            ExitCode::FAILURE
        }
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn has(args: &[String], name: &str) -> bool {
    args.iter().any(|a| a == name)
}

fn positional(args: &[String], index: usize) -> Option<&str> {
    let mut skip = false;
    let mut n = 0;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        if a.starts_with("--") {
            skip = !matches!(a.as_str(), "--json");
            continue;
        }
        if n == index {
            return Some(a);
        }
        n += 1;
    }
    None
}

struct Ctx {
    config: Arc<Config>,
    store: Arc<Store>,
}

fn open() -> Result<Ctx, String> {
    let config = Arc::new(Config::load().map_err(|e| e.to_string())?);
    let dir = config.store_dir().map_err(|e| e.to_string())?;
    let store = Arc::new(Store::open(&dir).map_err(|e| e.to_string())?);
    Ok(Ctx { config, store })
}

fn cluster_of(ctx: &Ctx, args: &[String]) -> Result<Arc<Cluster>, String> {
    let rows = ctx.store.clusters().map_err(|e| e.to_string())?;
    let row = match flag(args, "--cluster") {
        Some(id) => rows
            .into_iter()
            .find(|r| r.id.to_string() == id)
            .ok_or(format!("no cluster {id}"))?,
        None => rows
            .into_iter()
            .next()
            .ok_or("no cluster yet: run `clusterhsm cluster create` or pkcs11-tool --init-token")?,
    };
    Cluster::load(ctx.store.clone(), ctx.config.clone(), row).map_err(|e| e.to_string())
}

fn run(args: &[String]) -> Result<(), String> {
    let cmd = positional(args, 0).unwrap_or("help");
    let sub = positional(args, 1);
    let json = has(args, "--json");
    match cmd {
        "help" | "-h" => {
            println!("{HELP}");
            Ok(())
        }
        "demo" => demo::run(flag(args, "--keep")),
        "status" | "slots" => status(&open()?, json),
        "cluster" => match sub {
            Some("throttle") => admin::throttle(args),
            Some("list") => status(&open()?, json),
            Some("create") => {
                let ctx = open()?;
                let id = ctx.store.next_cluster_id().map_err(|e| e.to_string())?;
                let azs: Vec<String> = match (flag(args, "--azs"), flag(args, "--hsms")) {
                    (Some(a), _) => a.split(',').map(str::to_string).collect(),
                    (None, Some(n)) => {
                        let n: usize = n.parse().map_err(|_| "--hsms takes a number")?;
                        (0..n)
                            .map(|i| format!("az-{}", (b'a' + (i % 3) as u8) as char))
                            .collect()
                    }
                    (None, None) => ctx.config.default_azs.clone(),
                };
                let profile =
                    flag(args, "--profile").unwrap_or_else(|| ctx.config.default_profile.clone());
                let label = flag(args, "--label").unwrap_or_else(|| format!("cluster-{id}"));
                cluster::create_cluster(&ctx.store, &ctx.config, id, &label, &profile, &azs)
                    .map_err(|e| e.to_string())?;
                println!("created cluster {id} ({label}, {profile}) with {} HSM instances; initialize it with pkcs11-tool --init-token --slot {id}", azs.len());
                Ok(())
            }
            Some("delete") => {
                let ctx = open()?;
                let c = cluster_of(&ctx, args)?;
                ctx.store
                    .write(|tx| clusterhsm::store::delete_cluster(tx, c.id))
                    .map_err(|e| e.to_string())?;
                println!("deleted cluster {}", c.id);
                Ok(())
            }
            _ => Err("usage: clusterhsm cluster list|create|delete".into()),
        },
        "hsm" if sub == Some("latency") => admin::latency(args),
        "hsm" | "az" => {
            let health = match sub {
                Some("down") => Health::Down,
                Some("up") => Health::Active,
                Some("degrade") => Health::Degraded,
                _ => return Err(format!("usage: clusterhsm {cmd} down|up|degrade NAME")),
            };
            let name = positional(args, 2).ok_or(format!(
                "usage: clusterhsm {cmd} {} NAME",
                sub.unwrap_or("down")
            ))?;
            let ctx = open()?;
            let c = cluster_of(&ctx, args)?;
            if cmd == "hsm" {
                c.set_hsm_health(name, health).map_err(|e| e.to_string())?;
            } else {
                c.set_az_health(name, health).map_err(|e| e.to_string())?;
            }
            println!("{cmd} {name} is now {}", health.name());
            Ok(())
        }
        "user" => user(args, sub),
        "key" => admin::key(args, sub),
        "backup" => admin::backup(args, sub),
        "audit" => {
            let ctx = open()?;
            let c = cluster_of(&ctx, args)?;
            match sub {
                Some("verify") => {
                    let rows = ctx
                        .store
                        .read(|conn| cluster::audit::verify(conn, c.id))
                        .map_err(|e| e.to_string())?;
                    let mut ok = true;
                    for (hsm, n, gap_free) in rows {
                        println!(
                            "{hsm}: {n} events, {}",
                            if gap_free { "no gaps" } else { "GAPS FOUND" }
                        );
                        ok &= gap_free;
                    }
                    if ok {
                        Ok(())
                    } else {
                        Err("the audit log has gaps".into())
                    }
                }
                _ => {
                    let n = positional(args, 2)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(20);
                    let lines = ctx
                        .store
                        .read(|conn| clusterhsm::store::audit_lines(conn, c.id, None, n))
                        .map_err(|e| e.to_string())?;
                    for (_, _, line) in lines {
                        println!("{line}");
                    }
                    Ok(())
                }
            }
        }
        other => Err(format!("unknown command {other:?}; see clusterhsm help")),
    }
}

fn status(ctx: &Ctx, json: bool) -> Result<(), String> {
    let rows = ctx.store.clusters().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for row in rows {
        let c = Cluster::load(ctx.store.clone(), ctx.config.clone(), row.clone())
            .map_err(|e| e.to_string())?;
        let hsms: Vec<serde_json::Value> = c
            .instance_stats()
            .into_iter()
            .map(|(id, az, h, _)| serde_json::json!({"id": id, "az": az, "health": h.name()}))
            .collect();
        let objects = c.inner.read().objects.len();
        out.push(serde_json::json!({"slot": row.id, "label": row.label, "serial": row.serial, "profile": row.profile,
            "objects": objects, "users": c.inner.read().users.len(), "hsms": hsms}));
    }
    if json {
        println!("{}", serde_json::Value::Array(out));
        return Ok(());
    }
    println!("store: {}", ctx.store.dir().display());
    clusterhsm::secure_mem::on_initialize();
    let mem = clusterhsm::secure_mem::stats();
    println!(
        "memory: {} bytes locked, locking {}",
        mem.locked_bytes,
        if mem.locking_complete {
            "complete"
        } else {
            "incomplete (RLIMIT_MEMLOCK)"
        }
    );
    if out.is_empty() {
        println!("no clusters: a program sees one free slot (pkcs11-tool --init-token creates a cluster)");
    }
    for c in out {
        println!(
            "slot {} — {} (serial {}, profile {}, {} objects, {} users)",
            c["slot"],
            c["label"].as_str().unwrap_or(""),
            c["serial"].as_str().unwrap_or(""),
            c["profile"].as_str().unwrap_or(""),
            c["objects"],
            c["users"]
        );
        for h in c["hsms"].as_array().into_iter().flatten() {
            println!(
                "  {:8} {:8} {}",
                h["id"].as_str().unwrap_or(""),
                h["az"].as_str().unwrap_or(""),
                h["health"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}

fn user(args: &[String], sub: Option<&str>) -> Result<(), String> {
    let ctx = open()?;
    let c = cluster_of(&ctx, args)?;
    if sub == Some("list") {
        for u in c.inner.read().users.clone() {
            println!("{:32} {:3} {}", u.name, u.role, c.lock_status(&u.name));
        }
        return Ok(());
    }
    let name = positional(args, 2).ok_or(
        "usage: clusterhsm user <create|delete|change-password|unlock> NAME --user CO:PASSWORD",
    )?;
    let creds = flag(args, "--user")
        .or_else(|| std::env::var("CLUSTERHSM_CO").ok())
        .ok_or("give the Crypto Officer as --user NAME:PASSWORD (or CLUSTERHSM_CO)")?;
    let (co, pw) = split_pin(creds.as_bytes(), Role::CryptoOfficer);
    c.login(
        Role::CryptoOfficer,
        format!("{co}:{}", String::from_utf8_lossy(pw.expose())).as_bytes(),
    )
    .map_err(|e| format!("login as {co}: {e}"))?;
    match sub {
        Some("create") | Some("change-password") => {
            let role = Role::parse(&flag(args, "--role").unwrap_or_else(|| "cu".into()))
                .map_err(|e| e.to_string())?;
            let password = flag(args, "--password")
                .or_else(|| std::env::var("CLUSTERHSM_NEW_PASSWORD").ok())
                .ok_or("give --password")?;
            c.put_user(name, role, password.as_bytes(), &co)
                .map_err(|e| e.to_string())?;
            println!("user {name} ({}) saved", role.name());
        }
        Some("delete") => {
            c.delete_user(name, &co).map_err(|e| e.to_string())?;
            println!("user {name} deleted");
        }
        Some("unlock") => {
            c.unlock_user(name).map_err(|e| e.to_string())?;
            println!("user {name} unlocked on every instance");
        }
        _ => return Err("usage: clusterhsm user list|create|delete|change-password|unlock".into()),
    }
    Ok(())
}
