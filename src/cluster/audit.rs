//! The audit log: append-only JSON lines per HSM instance with gap-free sequence numbers
//! allocated in the same store transaction as the change they record. Never a secret.

use crate::error::Result;
use crate::store;
use rusqlite::Transaction;

/// UTC time with microseconds, RFC 3339.
pub fn now_utc() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let micros = now.subsec_micros();
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// One audit event (what happened, to what, by whom, with what result).
pub struct Event<'a> {
    pub opcode: &'a str,
    pub user: Option<&'a str>,
    pub session: Option<u64>,
    pub handle: Option<u64>,
    pub unique_id: Option<&'a str>,
    pub label: Option<&'a [u8]>,
    pub result: &'a str,
    pub detail: Option<&'a str>,
}

impl<'a> Event<'a> {
    pub fn new(opcode: &'a str) -> Self {
        Event {
            opcode,
            user: None,
            session: None,
            handle: None,
            unique_id: None,
            label: None,
            result: "CKR_OK",
            detail: None,
        }
    }
}

/// Records `event` on each of `instances` (the instances that applied the change).
/// Whether audit lines also go to syslog (`audit_syslog`), set from the config at init.
pub static TO_SYSLOG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn record(
    tx: &Transaction,
    cluster_id: i64,
    instances: &[String],
    event: &Event<'_>,
) -> Result<()> {
    for hsm in instances {
        store::append_audit(tx, cluster_id, hsm, |seq| {
            let line = serde_json::json!({
                "seq": seq,
                "time": now_utc(),
                "cluster": cluster_id,
                "hsm": hsm,
                "opcode": event.opcode,
                "user": event.user,
                "session": event.session,
                "handle": event.handle,
                "unique_id": event.unique_id,
                "label": event.label.map(|l| String::from_utf8_lossy(l).into_owned()),
                "result": event.result,
                "detail": event.detail,
            })
            .to_string();
            if TO_SYSLOG.load(std::sync::atomic::Ordering::Relaxed) {
                crate::log::syslog(crate::log::Level::Info, &format!("clusterhsm-audit {line}"));
            }
            line
        })?;
    }
    Ok(())
}

/// Checks that each instance's sequence numbers run 1..=n without a gap.
pub fn verify(conn: &rusqlite::Connection, cluster_id: i64) -> Result<Vec<(String, i64, bool)>> {
    let mut st = conn.prepare("SELECT hsm_id, COUNT(*), MIN(seq), MAX(seq) FROM audit WHERE cluster_id = ? GROUP BY hsm_id ORDER BY hsm_id")?;
    let rows = st
        .query_map([cluster_id], |r| {
            let n: i64 = r.get(1)?;
            let lo: i64 = r.get(2)?;
            let hi: i64 = r.get(3)?;
            Ok((r.get::<_, String>(0)?, n, lo == 1 && hi == n))
        })?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
