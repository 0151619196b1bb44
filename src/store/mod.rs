//! Durable token storage: SQLite in WAL mode (one file per store directory, many clusters)
//! plus a shared-memory change counter so another process's write is noticed with one
//! atomic load instead of a query per call (DESIGN.md §4).
//!
//! Fork safety: a connection is never used in a process other than the one that opened
//! it; after a fork the child opens its own (the inherited one is leaked, never closed,
//! so the parent's locks are untouched).

pub mod counter;
pub mod record;
pub mod seal;

use crate::error::{Error, Result};
use counter::ChangeCounter;
use parking_lot::{Mutex, MutexGuard};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::path::{Path, PathBuf};

/// The schema this build writes. Older stores are migrated forward; newer are refused.
pub const SCHEMA_VERSION: i64 = 1;
pub const DB_FILE: &str = "clusterhsm.db";

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value ANY) STRICT;
CREATE TABLE IF NOT EXISTS clusters(
    id INTEGER PRIMARY KEY, label TEXT NOT NULL, serial TEXT NOT NULL, profile TEXT NOT NULL,
    kdf_iterations INTEGER NOT NULL, created TEXT NOT NULL, settings TEXT NOT NULL DEFAULT '{}') STRICT;
CREATE TABLE IF NOT EXISTS hsms(
    cluster_id INTEGER NOT NULL, hsm_id TEXT NOT NULL, az TEXT NOT NULL, health TEXT NOT NULL,
    PRIMARY KEY(cluster_id, hsm_id)) STRICT;
CREATE TABLE IF NOT EXISTS users(
    cluster_id INTEGER NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL, salt BLOB NOT NULL,
    wrapped_mk BLOB NOT NULL, PRIMARY KEY(cluster_id, name)) STRICT;
CREATE TABLE IF NOT EXISTS login_failures(
    cluster_id INTEGER NOT NULL, name TEXT NOT NULL, hsm_id TEXT NOT NULL, failures INTEGER NOT NULL,
    PRIMARY KEY(cluster_id, name, hsm_id)) STRICT;
CREATE TABLE IF NOT EXISTS objects(
    cluster_id INTEGER NOT NULL, uid TEXT NOT NULL, seq INTEGER NOT NULL, owner TEXT,
    shared TEXT NOT NULL DEFAULT '', attrs BLOB NOT NULL, sealed BLOB, replicas TEXT NOT NULL,
    PRIMARY KEY(cluster_id, uid)) STRICT;
CREATE INDEX IF NOT EXISTS objects_by_seq ON objects(cluster_id, seq);
CREATE TABLE IF NOT EXISTS tombstones(cluster_id INTEGER NOT NULL, uid TEXT NOT NULL, seq INTEGER NOT NULL) STRICT;
CREATE INDEX IF NOT EXISTS tombstones_by_seq ON tombstones(cluster_id, seq);
CREATE TABLE IF NOT EXISTS audit(
    cluster_id INTEGER NOT NULL, hsm_id TEXT NOT NULL, seq INTEGER NOT NULL, line TEXT NOT NULL,
    PRIMARY KEY(cluster_id, hsm_id, seq)) STRICT;
";

#[derive(Clone, Debug)]
pub struct ClusterRow {
    pub id: i64,
    pub label: String,
    pub serial: String,
    pub profile: String,
    pub kdf_iterations: u32,
    pub created: String,
    pub settings: String,
}

#[derive(Clone, Debug)]
pub struct HsmRow {
    pub hsm_id: String,
    pub az: String,
    pub health: String,
}

#[derive(Clone)]
pub struct UserRow {
    pub name: String,
    pub role: String,
    pub salt: Vec<u8>,
    pub wrapped_mk: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct ObjectRow {
    pub uid: String,
    pub seq: i64,
    pub owner: Option<String>,
    pub shared: Vec<String>,
    pub attrs: Vec<u8>,
    pub sealed: Option<Vec<u8>>,
    pub replicas: Vec<String>,
}

pub struct Store {
    /// Opened read-only (read-only media or permissions): writes are refused cleanly.
    read_only: bool,
    dir: PathBuf,
    conn: Mutex<ConnSlot>,
    counter: ChangeCounter,
}

/// A connection and the process that opened it.
struct ConnSlot {
    pid: u32,
    conn: Option<Connection>,
}

impl ConnSlot {
    fn get(&self) -> Result<&Connection> {
        self.conn
            .as_ref()
            .ok_or_else(|| Error::DeviceError("store connection unavailable".into()))
    }

    fn get_mut(&mut self) -> Result<&mut Connection> {
        self.conn
            .as_mut()
            .ok_or_else(|| Error::DeviceError("store connection unavailable".into()))
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        // A connection inherited across fork is never closed by the child: closing it could
        // release or disturb the parent's locks. Leak it instead.
        if self.pid != std::process::id() {
            if let Some(c) = self.conn.take() {
                std::mem::forget(c);
            }
        }
    }
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection> {
    if read_only {
        return open_read_only(path);
    }
    let conn = Connection::open(path)
        .map_err(|e| Error::DeviceError(format!("cannot open store {}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// A read-only store (read-only mount or no write permission): keys stay usable, writes
/// fail with a clear error. A WAL database on read-only media opens `immutable` when its
/// shared-memory file cannot be made.
fn open_read_only(path: &Path) -> Result<Connection> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let p = path.display();
    for uri in [format!("file:{p}?mode=ro"), format!("file:{p}?immutable=1")] {
        if let Ok(c) = Connection::open_with_flags(&uri, flags) {
            if c.query_row("SELECT COUNT(*) FROM meta", [], |r| r.get::<_, i64>(0))
                .is_ok()
            {
                crate::log_warn!("store {p} is read-only: existing keys work, changes are refused");
                return Ok(c);
            }
        }
    }
    Err(Error::DeviceError(format!(
        "cannot open store {p} (read-only)"
    )))
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::DeviceError(format!(
                "cannot create store directory {}: {e}",
                dir.display()
            ))
        })?;
        let counter = ChangeCounter::open(&dir.join(counter::COUNTER_FILE))?;
        let mut read_only = !counter.is_writable();
        let conn = match open_connection(&dir.join(DB_FILE), read_only) {
            Ok(c) => c,
            Err(e) if !read_only => {
                read_only = true;
                open_connection(&dir.join(DB_FILE), true).map_err(|_| e)?
            }
            Err(e) => return Err(e),
        };
        if read_only {
            check_version(&conn)?;
        } else {
            migrate(&conn)?;
        }
        Ok(Store {
            read_only,
            dir: dir.to_path_buf(),
            conn: Mutex::new(ConnSlot {
                pid: std::process::id(),
                conn: Some(conn),
            }),
            counter,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cross-process change counter (one atomic load).
    pub fn change_counter(&self) -> u64 {
        self.counter.load()
    }

    /// The connection for this process, reopened after a fork.
    fn conn(&self) -> Result<MutexGuard<'_, ConnSlot>> {
        let mut guard = self.conn.lock();
        let pid = std::process::id();
        if guard.pid != pid {
            let fresh = open_connection(&self.dir.join(DB_FILE), self.read_only)?;
            if let Some(inherited) = guard.conn.replace(fresh) {
                // Closing the parent's connection here could disturb its locks: leak it.
                std::mem::forget(inherited);
            }
            guard.pid = pid;
        }
        Ok(guard)
    }

    /// Runs `f` in one IMMEDIATE transaction, then bumps the change counter.
    pub fn write<T>(&self, f: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
        if self.read_only {
            return Err(Error::DeviceError(format!(
                "store {} is read-only",
                self.dir.display()
            )));
        }
        let mut guard = self.conn()?;
        let tx = guard
            .get_mut()?
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        drop(guard);
        self.counter.bump();
        Ok(out)
    }

    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let guard = self.conn()?;
        f(guard.get()?)
    }

    // ---- clusters -------------------------------------------------------------------

    pub fn clusters(&self) -> Result<Vec<ClusterRow>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT id, label, serial, profile, kdf_iterations, created, settings FROM clusters ORDER BY id")?;
            let rows = st.query_map([], |r| {
                Ok(ClusterRow {
                    id: r.get(0)?,
                    label: r.get(1)?,
                    serial: r.get(2)?,
                    profile: r.get(3)?,
                    kdf_iterations: r.get(4)?,
                    created: r.get(5)?,
                    settings: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
        })
    }

    pub fn next_cluster_id(&self) -> Result<i64> {
        self.read(|c| {
            Ok(
                c.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM clusters", [], |r| {
                    r.get(0)
                })?,
            )
        })
    }

    pub fn hsms(&self, cluster_id: i64) -> Result<Vec<HsmRow>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT hsm_id, az, health FROM hsms WHERE cluster_id = ? ORDER BY hsm_id",
            )?;
            let rows = st.query_map([cluster_id], |r| {
                Ok(HsmRow {
                    hsm_id: r.get(0)?,
                    az: r.get(1)?,
                    health: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
        })
    }

    pub fn users(&self, cluster_id: i64) -> Result<Vec<UserRow>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT name, role, salt, wrapped_mk FROM users WHERE cluster_id = ? ORDER BY name",
            )?;
            let rows = st.query_map([cluster_id], |r| {
                Ok(UserRow {
                    name: r.get(0)?,
                    role: r.get(1)?,
                    salt: r.get(2)?,
                    wrapped_mk: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
        })
    }

    pub fn login_failures(&self, cluster_id: i64) -> Result<Vec<(String, String, u32)>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT name, hsm_id, failures FROM login_failures WHERE cluster_id = ?",
            )?;
            let rows = st.query_map([cluster_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
        })
    }

    /// Object rows and tombstones newer than `since` (incremental reload).
    pub fn objects_since(
        &self,
        cluster_id: i64,
        since: i64,
    ) -> Result<(Vec<ObjectRow>, Vec<String>, i64)> {
        let mut rows = Vec::new();
        let mut gone = Vec::new();
        let complete_to = self.changes_since(cluster_id, since, |c| match c {
            Change::Gone(uid) => gone.push(uid),
            Change::Row(row) => rows.push(row),
        })?;
        Ok((rows, gone, complete_to))
    }

    /// Hands each change after `since` to `apply` (deletions first, then rows in sequence
    /// order) as it is read, and returns the sequence the changes are complete up to.
    /// Streaming keeps loading a large token from holding every row in memory at once.
    pub fn changes_since(
        &self,
        cluster_id: i64,
        since: i64,
        mut apply: impl FnMut(Change),
    ) -> Result<i64> {
        self.read(|c| {
            // One read transaction: the rows, the tombstones and the sequence they are
            // complete up to come from the same snapshot, so a write committed between two
            // statements cannot be skipped.
            c.execute_batch("BEGIN DEFERRED")?;
            let out = changes_since_in(c, cluster_id, since, &mut apply);
            let end = c.execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
            let out = out?;
            end?;
            Ok(out)
        })
    }

    pub fn max_seq(&self) -> Result<i64> {
        self.read(meta_seq)
    }
}

/// One change read from the store.
pub enum Change {
    /// An object deleted since (its uid).
    Gone(String),
    /// An object created or changed since.
    Row(ObjectRow),
}

fn changes_since_in(
    c: &Connection,
    cluster_id: i64,
    since: i64,
    apply: &mut dyn FnMut(Change),
) -> Result<i64> {
    let mut st = c.prepare("SELECT uid FROM tombstones WHERE cluster_id = ? AND seq > ?")?;
    let mut gone = st.query(params![cluster_id, since])?;
    while let Some(r) = gone.next()? {
        apply(Change::Gone(r.get(0)?));
    }
    let mut st = c.prepare(
        "SELECT uid, seq, owner, shared, attrs, sealed, replicas FROM objects WHERE cluster_id = ? AND seq > ? ORDER BY seq",
    )?;
    let mut rows = st.query(params![cluster_id, since])?;
    while let Some(r) = rows.next()? {
        apply(Change::Row(ObjectRow {
            uid: r.get(0)?,
            seq: r.get(1)?,
            owner: r.get(2)?,
            shared: split_list(&r.get::<_, String>(3)?),
            attrs: r.get(4)?,
            sealed: r.get(5)?,
            replicas: split_list(&r.get::<_, String>(6)?),
        }));
    }
    meta_seq(c)
}

fn meta_seq(c: &Connection) -> Result<i64> {
    Ok(
        c.query_row("SELECT value FROM meta WHERE key = 'seq'", [], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .unwrap_or(0),
    )
}

/// Allocates the next store-wide sequence number inside a write transaction.
pub fn next_seq(tx: &Transaction) -> Result<i64> {
    let seq = meta_seq(tx)? + 1;
    tx.execute(
        "INSERT INTO meta(key, value) VALUES('seq', ?1) ON CONFLICT(key) DO UPDATE SET value = ?1",
        [seq],
    )?;
    Ok(seq)
}

pub fn put_object(tx: &Transaction, cluster_id: i64, row: &ObjectRow) -> Result<i64> {
    let seq = next_seq(tx)?;
    tx.execute(
        "INSERT INTO objects(cluster_id, uid, seq, owner, shared, attrs, sealed, replicas) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(cluster_id, uid) DO UPDATE SET seq = ?3, owner = ?4, shared = ?5, attrs = ?6, sealed = ?7, replicas = ?8",
        params![cluster_id, row.uid, seq, row.owner, row.shared.join(","), row.attrs, row.sealed, row.replicas.join(",")],
    )?;
    Ok(seq)
}

pub fn delete_object(tx: &Transaction, cluster_id: i64, uid: &str) -> Result<bool> {
    let n = tx.execute(
        "DELETE FROM objects WHERE cluster_id = ? AND uid = ?",
        params![cluster_id, uid],
    )?;
    let seq = next_seq(tx)?;
    tx.execute(
        "INSERT INTO tombstones(cluster_id, uid, seq) VALUES(?, ?, ?)",
        params![cluster_id, uid, seq],
    )?;
    Ok(n > 0)
}

pub fn put_user(tx: &Transaction, cluster_id: i64, u: &UserRow) -> Result<()> {
    tx.execute(
        "INSERT INTO users(cluster_id, name, role, salt, wrapped_mk) VALUES(?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(cluster_id, name) DO UPDATE SET role = ?3, salt = ?4, wrapped_mk = ?5",
        params![cluster_id, u.name, u.role, u.salt, u.wrapped_mk],
    )?;
    next_seq(tx)?;
    Ok(())
}

pub fn delete_user(tx: &Transaction, cluster_id: i64, name: &str) -> Result<bool> {
    let n = tx.execute(
        "DELETE FROM users WHERE cluster_id = ? AND name = ?",
        params![cluster_id, name],
    )?;
    tx.execute(
        "DELETE FROM login_failures WHERE cluster_id = ? AND name = ?",
        params![cluster_id, name],
    )?;
    next_seq(tx)?;
    Ok(n > 0)
}

pub fn set_login_failures(
    tx: &Transaction,
    cluster_id: i64,
    name: &str,
    hsm_id: &str,
    failures: u32,
) -> Result<()> {
    tx.execute(
        "INSERT INTO login_failures(cluster_id, name, hsm_id, failures) VALUES(?1, ?2, ?3, ?4)
         ON CONFLICT(cluster_id, name, hsm_id) DO UPDATE SET failures = ?4",
        params![cluster_id, name, hsm_id, failures],
    )?;
    next_seq(tx)?;
    Ok(())
}

pub fn set_hsm_health(
    tx: &Transaction,
    cluster_id: i64,
    hsm_id: &str,
    health: &str,
) -> Result<bool> {
    let n = tx.execute(
        "UPDATE hsms SET health = ? WHERE cluster_id = ? AND hsm_id = ?",
        params![health, cluster_id, hsm_id],
    )?;
    next_seq(tx)?;
    Ok(n > 0)
}

pub fn insert_cluster(tx: &Transaction, row: &ClusterRow, hsms: &[HsmRow]) -> Result<()> {
    tx.execute(
        "INSERT INTO clusters(id, label, serial, profile, kdf_iterations, created, settings) VALUES(?, ?, ?, ?, ?, ?, ?)",
        params![row.id, row.label, row.serial, row.profile, row.kdf_iterations, row.created, row.settings],
    )?;
    for h in hsms {
        tx.execute(
            "INSERT INTO hsms(cluster_id, hsm_id, az, health) VALUES(?, ?, ?, ?)",
            params![row.id, h.hsm_id, h.az, h.health],
        )?;
    }
    next_seq(tx)?;
    Ok(())
}

/// Removes every trace of a cluster's users and objects (C_InitToken on an existing token).
pub fn wipe_cluster_contents(tx: &Transaction, cluster_id: i64) -> Result<()> {
    let seq = next_seq(tx)?;
    tx.execute("INSERT INTO tombstones(cluster_id, uid, seq) SELECT cluster_id, uid, ?2 FROM objects WHERE cluster_id = ?1", params![cluster_id, seq])?;
    for table in ["objects", "users", "login_failures"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE cluster_id = ?"),
            [cluster_id],
        )?;
    }
    Ok(())
}

pub fn delete_cluster(tx: &Transaction, cluster_id: i64) -> Result<()> {
    wipe_cluster_contents(tx, cluster_id)?;
    for table in ["hsms", "audit", "tombstones"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE cluster_id = ?"),
            [cluster_id],
        )?;
    }
    tx.execute("DELETE FROM clusters WHERE id = ?", [cluster_id])?;
    Ok(())
}

pub fn update_cluster(tx: &Transaction, row: &ClusterRow) -> Result<()> {
    tx.execute(
        "UPDATE clusters SET label = ?2, profile = ?3, kdf_iterations = ?4, settings = ?5 WHERE id = ?1",
        params![row.id, row.label, row.profile, row.kdf_iterations, row.settings],
    )?;
    next_seq(tx)?;
    Ok(())
}

/// Appends one audit line for an instance with the next gap-free sequence number of that
/// instance, inside the caller's transaction (so the sequence holds across processes).
pub fn append_audit(
    tx: &Transaction,
    cluster_id: i64,
    hsm_id: &str,
    make_line: impl FnOnce(i64) -> String,
) -> Result<i64> {
    let seq: i64 = tx.query_row(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM audit WHERE cluster_id = ? AND hsm_id = ?",
        params![cluster_id, hsm_id],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO audit(cluster_id, hsm_id, seq, line) VALUES(?, ?, ?, ?)",
        params![cluster_id, hsm_id, seq, make_line(seq)],
    )?;
    Ok(seq)
}

pub fn audit_lines(
    c: &Connection,
    cluster_id: i64,
    hsm_id: Option<&str>,
    limit: usize,
) -> Result<Vec<(String, i64, String)>> {
    let mut st = c.prepare(
        "SELECT hsm_id, seq, line FROM audit WHERE cluster_id = ?1 AND (?2 IS NULL OR hsm_id = ?2) ORDER BY rowid DESC LIMIT ?3",
    )?;
    let rows = st
        .query_map(params![cluster_id, hsm_id, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(rows.into_iter().rev().collect())
}

/// The schema check of a read-only store: it cannot be migrated, so it must be current.
fn check_version(conn: &Connection) -> Result<()> {
    let version: Option<i64> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match version {
        Some(v) if v == SCHEMA_VERSION => Ok(()),
        Some(v) if v > SCHEMA_VERSION => Err(Error::TokenNotRecognized(format!(
            "store schema version {v} is newer than this build supports ({SCHEMA_VERSION}); upgrade clusterhsm"
        ))),
        _ => Err(Error::DeviceError("the read-only store needs a schema migration; open it writable once".into())),
    }
}

fn migrate(conn: &Connection) -> Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value ANY) STRICT;")?;
    let version: Option<i64> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match version {
        Some(v) if v > SCHEMA_VERSION => Err(Error::TokenNotRecognized(format!(
            "store schema version {v} is newer than this build supports ({SCHEMA_VERSION}); upgrade clusterhsm"
        ))),
        Some(v) if v == SCHEMA_VERSION => Ok(()),
        // No version yet, or an older one: apply each step forward in one transaction.
        _ => {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA_V1}
                 INSERT INTO meta(key, value) VALUES('schema_version', {SCHEMA_VERSION})
                 ON CONFLICT(key) DO UPDATE SET value = {SCHEMA_VERSION}; COMMIT;"
            ))?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_schema_is_refused() {
        let dir = std::env::temp_dir().join(format!("chsm-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let s = Store::open(&dir).unwrap();
            s.write(|tx| {
                tx.execute(
                    "UPDATE meta SET value = 99 WHERE key = 'schema_version'",
                    [],
                )?;
                Ok(())
            })
            .unwrap();
        }
        let e = Store::open(&dir).err().unwrap();
        assert!(matches!(e, Error::TokenNotRecognized(_)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
