//! A simulated month of cross-region settlements at national scale through
//! supervision's rules, in memory: the work each journalled settlement adds
//! (the person's keyed hash on the request's path, then the rules and the
//! windows on the background task), and whether memory stays flat.
//!
//! ```text
//! cargo run --release -p gateway --example supervision_month -- [PER_DAY] [DAYS]
//! ```
//!
//! Defaults: 350,000 settlements a day for 30 days, with the rules of
//! `deploy/gateway.example.toml`; 2 million people, 3,000 institutions;
//! outpatient 60%, pharmacy 30% (one to three drugs), inpatient 10% (an
//! admission, then a settlement and a discharge). Prints, per simulated day,
//! the per-settlement time (p50, p99, p99.9, the slowest), the facts and the
//! settlements the windows hold, the process's resident memory and that memory
//! per settlement held, and the whole prune's time and the longest slice of
//! it (not in the per-settlement time; the background task prunes in slices,
//! and a slice is as long as a request that screens for a `refuse` rule can
//! wait for the windows' lock); at the end, the windows' bytes by structure.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::float_arithmetic)] // latency statistics in microseconds, not money

use contracts::Money;
use gateway::supervision::facts::{person_key, Admission, Fact, SettleKind, Settlement};
use gateway::supervision::Supervision;
use hdrhistogram::Histogram;
use std::time::Instant;

const DAY_MS: i64 = 86_400_000;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let per_day: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(350_000);
    let days: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/gateway.example.toml");
    let config = gateway::config::Config::load(&example).expect("the example configuration");
    let settings = config.supervision.expect("a [supervision] section");
    let key = settings.hmac_key.clone();
    let supervision = Supervision::in_memory(&settings);
    let regions = ["110105", "120101", "130102"];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let start_ms: i64 = 1_764_000_000_000;
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    println!(
        "day  settlements  p50 µs  p99 µs  p99.9 µs  max ms  signals  facts held  settlements held  RSS MiB  RSS B/settlement  prune ms  slice ms"
    );
    let mut signals = 0usize;
    let mut serial = 0u64;
    for day in 0..days {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        let mut prune_max = std::time::Duration::ZERO;
        let mut slice_max = std::time::Duration::ZERO;
        let day_start = start_ms + day * DAY_MS;
        let step = DAY_MS / i64::try_from(per_day).unwrap();
        for n in 0..per_day {
            let r = next();
            serial += 1;
            let at_ms = day_start + i64::try_from(n).unwrap() * step;
            let person_n = r % 2_000_000;
            let insured = regions[usize::try_from(r >> 21).unwrap() % 3];
            let treatment = regions[(usize::try_from(r >> 23).unwrap() % 2
                + 1
                + usize::try_from(r >> 21).unwrap() % 3)
                % 3];
            let institution = format!("H{}{:07}", &treatment[..4], (r >> 30) % 3_000);
            let id = format!("{insured}{person_n:012}");
            let kind = match (r >> 40) % 10 {
                0 => SettleKind::Inpatient,
                1..=3 => SettleKind::Pharmacy,
                _ => SettleKind::Outpatient,
            };
            let began = Instant::now();
            // On the request's path: the person's keyed hash.
            let person =
                person_key(&key, Some("02"), Some(&id), None, Some(insured)).unwrap_or_default();
            let mdtrt_id = format!("D{serial:012}");
            let mut facts = Vec::with_capacity(3);
            if kind == SettleKind::Inpatient {
                facts.push(Fact::Admission(Admission {
                    person: person.clone(),
                    institution: institution.clone(),
                    insured: insured.into(),
                    treatment: treatment.into(),
                    mdtrt_id: Some(mdtrt_id.clone()),
                    begin_ms: at_ms - 3 * DAY_MS,
                    at_ms: at_ms - 3 * DAY_MS,
                    msgid: format!("A{serial}"),
                }));
            }
            let drugs = if kind == SettleKind::Pharmacy {
                (0..1 + (r >> 50) % 3)
                    .map(|d| {
                        (
                            format!("XK{:06}", (r >> (8 + d)) % 5_000),
                            10_000 * i64::try_from(1 + d).unwrap(),
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            };
            facts.push(Fact::Settlement(Settlement {
                person,
                institution: institution.clone(),
                insured: insured.into(),
                treatment: treatment.into(),
                kind,
                mdtrt_id: Some(mdtrt_id.clone()),
                setl_id: Some(format!("S{serial:012}")),
                amount: Money::from_fen(i64::try_from(1_000 + (r >> 12) % 500_000).unwrap())
                    .unwrap(),
                invono: Some(format!("INV{serial}")),
                bill: Some(format!("{:016x}", r)),
                drugs,
                at_ms,
                msgid: format!("M{serial}"),
            }));
            if kind == SettleKind::Inpatient {
                facts.push(Fact::Discharge {
                    institution,
                    mdtrt_id,
                    end_ms: at_ms,
                    at_ms,
                });
            }
            // On the background task: the rules and the windows.
            for fact in facts {
                signals += supervision.handle_fact(fact);
            }
            let ns = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
            hist.record(ns.max(1)).unwrap();
            total.record(ns.max(1)).unwrap();
            // The task prunes every minute; here every simulated hour.
            if n % (per_day / 24).max(1) == 0 {
                let began = Instant::now();
                slice_max = slice_max.max(supervision.prune(at_ms));
                prune_max = prune_max.max(began.elapsed());
            }
        }
        let began = Instant::now();
        slice_max = slice_max.max(supervision.prune(day_start + DAY_MS));
        prune_max = prune_max.max(began.elapsed());
        let us = |q: f64| hist.value_at_quantile(q) as f64 / 1_000.0;
        let (held, rss) = (supervision.settlements_held(), rss_bytes());
        println!(
            "{:>3}  {:>11}  {:>6.1}  {:>6.1}  {:>8.1}  {:>6.1}  {:>7}  {:>10}  {:>16}  {:>7}  {:>16}  {:>8.1}  {:>8.2}",
            day + 1,
            per_day,
            us(0.5),
            us(0.99),
            us(0.999),
            hist.max() as f64 / 1e6,
            signals,
            supervision.remembered(),
            held,
            rss >> 20,
            rss / u64::try_from(held.max(1)).unwrap(),
            prune_max.as_secs_f64() * 1e3,
            slice_max.as_secs_f64() * 1e3
        );
    }
    let us = |q: f64| total.value_at_quantile(q) as f64 / 1_000.0;
    println!(
        "month: {} settlements, p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs; at 2,000 settlements/s that is {:.1}% of one core",
        total.len(),
        us(0.5),
        us(0.99),
        us(0.999),
        2_000.0 * total.mean() / 1e9 * 100.0
    );
    let held = supervision.settlements_held().max(1);
    println!("the windows' bytes by structure (as allocated, without the allocator's overhead):");
    let mut sum = 0;
    for (structure, bytes) in supervision.footprint() {
        sum += bytes;
        println!(
            "  {structure:<20} {:>8} MiB  {:>5} B/settlement",
            bytes >> 20,
            bytes / held
        );
    }
    println!(
        "  {:<20} {:>8} MiB  {:>5} B/settlement",
        "all",
        sum >> 20,
        sum / held
    );
}
