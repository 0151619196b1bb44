//! What the locked arena costs: sign (and a few other) rates with AWS-LC routed into the
//! arena against the same build with the arena bypassed.
//!
//! ```text
//! cargo run --release --features test-hooks --target-dir target/test-hooks \
//!     --example membench [-- SECONDS ROUNDS]
//! ```
//!
//! Two child processes measure (the hook is installed when a program starts and cannot be
//! taken out): "arena" is the normal build, "libc" sets the test-only
//! `CLUSTERHSM_TEST_DISABLE_ARENA`, so AWS-LC and `SecretBytes` use libc malloc. Each case
//! runs SECONDS in one, then the other (order alternating), ROUNDS times; the table shows
//! the median rates and the median of the per-round ratios. Without the `test-hooks`
//! feature both children use the arena (they say so).

use std::io::{BufRead, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use clusterhsm::crypto::digest::HashAlg;
use clusterhsm::crypto::ec::{Curve, EcPrivateKey};
use clusterhsm::crypto::gcm::GcmKey;
use clusterhsm::crypto::rsa::RsaPrivateKey;
use clusterhsm::secure_mem::{stats, SecretBytes};

const CHILD: &str = "MEMBENCH_CHILD";
const DISABLE: &str = "CLUSTERHSM_TEST_DISABLE_ARENA";

/// Runs `f` on `threads` threads for `secs` and returns operations per second (total).
fn rate(secs: f64, threads: usize, f: impl Fn() + Sync) -> f64 {
    let dur = Duration::from_secs_f64(secs);
    let f = &f;
    let total: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    let start = Instant::now();
                    let mut n = 0u64;
                    while start.elapsed() < dur {
                        for _ in 0..16 {
                            f();
                        }
                        n += 16;
                    }
                    n
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    total as f64 / secs
}

/// The cases, by name: (threads, operation).
struct Bench {
    digest: [u8; 32],
    rsa: RsaPrivateKey,
    p256: EcPrivateKey,
    p384: EcPrivateKey,
    gcm: GcmKey,
    data: Vec<u8>,
}

const CASES: [&str; 6] = [
    "rsa2048-sign",
    "p256-sign",
    "p256-sign-2threads",
    "p384-sign",
    "aes256gcm-seal-1KiB",
    "secretbytes-32B",
];

impl Bench {
    fn new() -> Bench {
        Bench {
            digest: [0x5Au8; 32],
            rsa: RsaPrivateKey::generate(2048, &[1, 0, 1]).expect("RSA keygen"),
            p256: EcPrivateKey::generate(Curve::P256).expect("P-256 keygen"),
            p384: EcPrivateKey::generate(Curve::P384).expect("P-384 keygen"),
            gcm: GcmKey::new(&[7u8; 32]).expect("GCM key"),
            data: vec![1u8; 1024],
        }
    }

    fn run(&self, case: &str, secs: f64) -> f64 {
        let d = &self.digest;
        match case {
            "rsa2048-sign" => rate(secs, 1, || {
                self.rsa
                    .sign_pkcs1v15_digest(HashAlg::Sha256, d)
                    .expect("sign");
            }),
            "p256-sign" => rate(secs, 1, || {
                self.p256.sign_prehashed(d).expect("sign");
            }),
            "p256-sign-2threads" => rate(secs, 2, || {
                self.p256.sign_prehashed(d).expect("sign");
            }),
            "p384-sign" => rate(secs, 1, || {
                self.p384.sign_prehashed(d).expect("sign");
            }),
            "aes256gcm-seal-1KiB" => rate(secs, 1, || {
                self.gcm
                    .seal(&[9u8; 12], b"", &self.data, 16)
                    .expect("seal");
            }),
            "secretbytes-32B" => rate(secs, 1, || {
                std::hint::black_box(SecretBytes::from_slice(d));
            }),
            _ => f64::NAN,
        }
    }
}

/// A child: answers "CASE SECONDS" lines on stdin with the rate on stdout.
fn child() {
    let bench = Bench::new();
    println!("routed {}", stats().aws_lc_routed);
    for line in std::io::stdin().lines().map_while(Result::ok) {
        let mut parts = line.split_whitespace();
        let (Some(case), Some(secs)) = (parts.next(), parts.next()) else {
            continue;
        };
        let secs: f64 = secs.parse().unwrap_or(0.5);
        println!("{}", bench.run(case, secs));
    }
}

struct Child {
    proc: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Child {
    fn spawn(arena: bool) -> Child {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.env(CHILD, "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        if arena {
            cmd.env_remove(DISABLE);
        } else {
            cmd.env(DISABLE, "1");
        }
        let mut proc = cmd.spawn().expect("spawn the benchmark child");
        let stdin = proc.stdin.take().expect("stdin");
        let stdout = std::io::BufReader::new(proc.stdout.take().expect("stdout")).lines();
        let mut c = Child {
            proc,
            stdin,
            stdout,
        };
        let first = c.line();
        println!(
            "{}: AWS-LC {}",
            if arena { "arena" } else { "libc " },
            if first == "routed true" {
                "routed into the arena"
            } else {
                "on libc malloc"
            }
        );
        c
    }

    fn line(&mut self) -> String {
        self.stdout
            .next()
            .and_then(Result::ok)
            .expect("benchmark child output")
    }

    fn measure(&mut self, case: &str, secs: f64) -> f64 {
        writeln!(self.stdin, "{case} {secs}").expect("write to child");
        self.line().parse().unwrap_or(f64::NAN)
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn main() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0.5);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(9);
    let mut arena = Child::spawn(true);
    let mut libc = Child::spawn(false);
    // Paired samples: the same case back to back in both processes, the order
    // alternating, so that load from elsewhere on the machine hits both alike.
    let mut rates: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> =
        CASES.iter().map(|_| Default::default()).collect();
    for round in 0..rounds {
        for (i, case) in CASES.iter().enumerate() {
            let (a, l) = if round % 2 == 0 {
                let a = arena.measure(case, secs);
                (a, libc.measure(case, secs))
            } else {
                let l = libc.measure(case, secs);
                (arena.measure(case, secs), l)
            };
            rates[i].0.push(a);
            rates[i].1.push(l);
            rates[i].2.push(a / l);
        }
    }
    println!(
        "{:<22} {:>12} {:>12} {:>14}",
        "case (ops/s, median)", "arena", "libc", "median ratio"
    );
    for (case, (a, l, r)) in CASES.iter().zip(rates.iter_mut()) {
        println!(
            "{case:<22} {:>12.0} {:>12.0} {:>14.3}",
            median(a),
            median(l),
            median(r)
        );
    }
    drop(arena.stdin);
    drop(libc.stdin);
    let _ = arena.proc.wait();
    let _ = libc.proc.wait();
}
