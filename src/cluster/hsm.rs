//! HSM instances: health, and routing an operation to an Active instance that holds the key.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Active,
    /// Serving, but slow (injected latency): still routed to when nothing better is left.
    Degraded,
    Down,
}

impl Health {
    pub fn parse(s: &str) -> Health {
        match s {
            "active" => Health::Active,
            "degraded" => Health::Degraded,
            _ => Health::Down,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Health::Active => "active",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }

    pub fn serving(self) -> bool {
        !matches!(self, Health::Down)
    }
}

/// Injected latency and throttling, kept in the cluster's settings so every process sees
/// them (CLI: `clusterhsm hsm latency ID MS`, `clusterhsm cluster throttle PERCENT`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Faults {
    #[serde(default)]
    pub latency: HashMap<String, u64>,
    /// Percent of operations the cluster throttles (CloudHSM answers those with an error
    /// and its client retries).
    #[serde(default)]
    pub throttle_percent: u32,
}

impl Faults {
    pub fn from_settings(settings: &str) -> Faults {
        serde_json::from_str::<serde_json::Value>(settings)
            .ok()
            .and_then(|v| v.get("faults").cloned())
            .and_then(|f| serde_json::from_value(f).ok())
            .unwrap_or_default()
    }

    pub fn latency_ms(&self, hsm: &str) -> u64 {
        self.latency.get(hsm).copied().unwrap_or(0)
    }
}

/// CloudHSM's client retries a throttled request 3 times with exponential back-off.
const THROTTLE_RETRIES: u32 = 3;

/// Sleeps for injected latency and plays out throttling with the client's retries.
pub fn apply_faults(latency_ms: u64, throttle_percent: u32) -> Result<()> {
    if latency_ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(latency_ms));
    }
    if throttle_percent == 0 {
        return Ok(());
    }
    for attempt in 0..=THROTTLE_RETRIES {
        let mut roll = [0u8; 1];
        crate::crypto::rng::fill_random(&mut roll).map_err(|_| Error::RandomNoRng)?;
        if (u32::from(roll[0]) * 100 / 256) >= throttle_percent {
            return Ok(());
        }
        if attempt < THROTTLE_RETRIES {
            std::thread::sleep(std::time::Duration::from_millis(1 << attempt));
        }
    }
    Err(Error::FunctionFailed(
        "the cluster throttled the request and the client's 3 retries".into(),
    ))
}

/// Names instances hsm-a, hsm-b, ... (hsm-27 past the alphabet).
pub fn instance_name(index: usize) -> String {
    if index < 26 {
        format!("hsm-{}", (b'a' + index as u8) as char)
    } else {
        format!("hsm-{index}")
    }
}

pub struct HsmRuntime {
    pub id: String,
    pub az: String,
    pub health: Health,
    /// Operations this process routed to the instance (shared across reloads).
    pub served: Arc<ServedCounter>,
}

/// Operations served, counted in stripes on their own cache lines: every operation adds
/// one, and threads adding to one shared word would bounce its line between cores. Each
/// thread adds to its own stripe; readers sum them.
#[derive(Default, Debug)]
pub struct ServedCounter([Stripe; STRIPES]);

#[derive(Default, Debug)]
#[repr(align(64))]
struct Stripe(AtomicU64);

const STRIPES: usize = 8;

impl ServedCounter {
    pub fn add_one(&self) {
        use std::cell::Cell;
        use std::sync::atomic::AtomicUsize;
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static MINE: Cell<usize> = const { Cell::new(usize::MAX) };
        }
        let i = MINE.with(|m| {
            if m.get() == usize::MAX {
                m.set(NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES);
            }
            m.get()
        });
        self.0[i].0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn total(&self) -> u64 {
        self.0.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

/// Picks a serving instance, preferring Active over Degraded, among `holders` (all when
/// None), spreading load round-robin. Counts the operation on the chosen instance.
pub fn route<'a>(
    hsms: &'a [HsmRuntime],
    holders: Option<&[String]>,
    turn: usize,
) -> Result<&'a HsmRuntime> {
    let eligible = |h: &&HsmRuntime, want: Health| serves(h, want, holders);
    for want in [Health::Active, Health::Degraded] {
        // Two passes instead of a Vec: this runs on every operation.
        let count = hsms.iter().filter(|h| eligible(h, want)).count();
        if count > 0 {
            if let Some(chosen) = hsms.iter().filter(|h| eligible(h, want)).nth(turn % count) {
                chosen.served.add_one();
                return Ok(chosen);
            }
        }
    }
    Err(Error::DeviceError(
        "no serving HSM instance holds this key".into(),
    ))
}

/// Whether an instance in health `want` holds the key (`holders` None: any instance).
fn serves(h: &HsmRuntime, want: Health, holders: Option<&[String]>) -> bool {
    h.health == want && holders.is_none_or(|hs| hs.iter().any(|x| x == &h.id))
}

/// The instances an operation with one key may go to (the Active holders, or the
/// Degraded ones when no holder is Active), with their injected latency, for picking one
/// per operation without the cluster's lock.
pub struct RoutePlan {
    targets: Vec<(String, Arc<ServedCounter>, u64)>,
    throttle_percent: u32,
}

impl RoutePlan {
    pub fn new(hsms: &[HsmRuntime], holders: Option<&[String]>, faults: &Faults) -> RoutePlan {
        let eligible = |h: &&HsmRuntime, want: Health| serves(h, want, holders);
        let mut targets = Vec::new();
        for want in [Health::Active, Health::Degraded] {
            targets.extend(
                hsms.iter()
                    .filter(|h| eligible(h, want))
                    .map(|h| (h.id.clone(), h.served.clone(), faults.latency_ms(&h.id))),
            );
            if !targets.is_empty() {
                break;
            }
        }
        RoutePlan {
            targets,
            throttle_percent: faults.throttle_percent,
        }
    }

    /// The instance for the operation at round-robin position `turn`, counted there, and
    /// its (latency ms, throttle percent).
    pub fn pick(&self, turn: usize) -> Result<(&str, u64, u32)> {
        if self.targets.is_empty() {
            return Err(Error::DeviceError(
                "no serving HSM instance holds this key".into(),
            ));
        }
        let (id, served, latency) = &self.targets[turn % self.targets.len()];
        served.add_one();
        Ok((id, *latency, self.throttle_percent))
    }
}

impl super::Cluster {
    /// Sets one instance's health (fault injection). An instance coming back is resynced
    /// from a healthy peer: it receives every token object it missed.
    pub fn set_hsm_health(&self, hsm_id: &str, health: Health) -> Result<()> {
        self.refresh()?;
        let (was, peers_serving) = {
            let inner = self.inner.read();
            let h = inner
                .hsms
                .iter()
                .find(|h| h.id == hsm_id)
                .ok_or(Error::ArgumentsBad("no such HSM instance"))?;
            (
                h.health,
                inner
                    .hsms
                    .iter()
                    .filter(|x| x.id != hsm_id && x.health.serving())
                    .count(),
            )
        };
        let cluster_id = self.id;
        let missed: Vec<(String, Vec<String>)> =
            if !was.serving() && health.serving() && peers_serving > 0 {
                let inner = self.inner.read();
                let serving: Vec<&str> = inner
                    .hsms
                    .iter()
                    .filter(|x| x.id != hsm_id && x.health.serving())
                    .map(|x| x.id.as_str())
                    .collect();
                inner
                    .objects
                    .all()
                    .filter(|e| e.session.is_none())
                    .filter_map(|e| {
                        let reps = inner.replicas.get(&e.handle)?;
                        let from_peer = reps.iter().any(|r| serving.contains(&r.as_str()));
                        (from_peer && !reps.iter().any(|r| r == hsm_id))
                            .then(|| (e.object.uid.clone(), reps.to_vec()))
                    })
                    .collect()
            } else {
                Vec::new()
            };
        self.write(|tx| {
            if !crate::store::set_hsm_health(tx, cluster_id, hsm_id, health.name())? {
                return Err(Error::ArgumentsBad("no such HSM instance"));
            }
            for (uid, reps) in &missed {
                let mut next = reps.clone();
                next.push(hsm_id.to_string());
                tx.execute(
                    "UPDATE objects SET replicas = ?1, seq = ?2 WHERE cluster_id = ?3 AND uid = ?4",
                    rusqlite::params![next.join(","), crate::store::next_seq(tx)?, cluster_id, uid],
                )?;
            }
            let detail = format!(
                "{} -> {}; resynced {} objects",
                was.name(),
                health.name(),
                missed.len()
            );
            let mut ev = super::audit::Event::new("CN_HSM_HEALTH");
            ev.detail = Some(&detail);
            super::audit::record(tx, cluster_id, &[hsm_id.to_string()], &ev)
        })
    }

    /// Sets the health of every instance in an availability zone.
    pub fn set_az_health(&self, az: &str, health: Health) -> Result<usize> {
        let ids: Vec<String> = self
            .inner
            .read()
            .hsms
            .iter()
            .filter(|h| h.az == az)
            .map(|h| h.id.clone())
            .collect();
        if ids.is_empty() {
            return Err(Error::ArgumentsBad(
                "no HSM instance in that availability zone",
            ));
        }
        for id in &ids {
            self.set_hsm_health(id, health)?;
        }
        Ok(ids.len())
    }

    /// (id, az, health, operations served by this process) for each instance.
    pub fn instance_stats(&self) -> Vec<(String, String, Health, u64)> {
        self.inner
            .read()
            .hsms
            .iter()
            .map(|h| (h.id.clone(), h.az.clone(), h.health, h.served.total()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(id: &str, health: Health) -> HsmRuntime {
        HsmRuntime {
            id: id.into(),
            az: "az".into(),
            health,
            served: Default::default(),
        }
    }

    #[test]
    fn routes_to_active_holders_only() {
        let hsms = vec![
            h("hsm-a", Health::Down),
            h("hsm-b", Health::Active),
            h("hsm-c", Health::Active),
        ];
        let holders = vec!["hsm-a".to_string(), "hsm-c".to_string()];
        for turn in 0..4 {
            assert_eq!(route(&hsms, Some(&holders), turn).unwrap().id, "hsm-c");
        }
        assert_eq!(hsms[2].served.total(), 4);
        let only_down = vec!["hsm-a".to_string()];
        assert!(route(&hsms, Some(&only_down), 0).is_err());
    }

    #[test]
    fn faults_round_trip_through_settings_and_throttling_fails_when_total() {
        let mut f = Faults::default();
        f.latency.insert("hsm-b".into(), 5);
        f.throttle_percent = 100;
        let settings = serde_json::json!({"token_id": "x", "faults": f}).to_string();
        assert_eq!(Faults::from_settings(&settings), f);
        assert!(apply_faults(0, 100).is_err());
        assert!(apply_faults(0, 0).is_ok());
        assert_eq!(Faults::from_settings("{}"), Faults::default());
    }

    #[test]
    fn names() {
        assert_eq!(instance_name(0), "hsm-a");
        assert_eq!(instance_name(2), "hsm-c");
    }
}
