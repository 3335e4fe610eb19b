//! Counters and histograms of the request path, kept in atomics indexed by
//! closed enums (no lock on the hot path), rendered as Prometheus text on
//! `/metrics`. Labels never carry personal data: transactions, regions,
//! error slugs, rule names.

use crate::limit::Scope;
use crate::upstream::{Failure, Upstreams};
use contracts::{ErrorCode, Infno};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered by the platform (whatever its infcode).
    Answered,
    /// Refused by the gateway (4xx).
    Refused,
    /// Failed upstream (502/503/504).
    Failed,
}

const OUTCOMES: [(Outcome, &str); 3] = [
    (Outcome::Answered, "answered"),
    (Outcome::Refused, "refused"),
    (Outcome::Failed, "failed"),
];
/// Upper bounds of the latency buckets, in milliseconds.
const BUCKETS_MS: [u64; 12] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS_MS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let ms = elapsed.as_millis() as u64;
        if let Some(i) = BUCKETS_MS.iter().position(|&b| ms < b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }
}

/// Counters of the refusal journal, shared with its background writer
/// (see [`crate::journal::RefusalJournal`]).
#[derive(Debug, Default)]
pub struct RefusalJournalCounters {
    /// Refusals written to the ledger's refusals table.
    pub written: AtomicU64,
    /// Refusals dropped because the queue to the writer was full.
    pub dropped_queue_full: AtomicU64,
    /// Refusals the ledger failed to write.
    pub dropped_ledger_error: AtomicU64,
}

/// Every metric of the gateway.
pub struct Metrics {
    /// The refusal journal's counters.
    pub refusal_journal: Arc<RefusalJournalCounters>,
    /// [transaction index (last: unknown)][outcome].
    requests: Vec<[AtomicU64; 3]>,
    latency: Vec<Histogram>,
    refusals: Vec<AtomicU64>,
    limited: [AtomicU64; 2],
    /// [region][unreachable, timeout, lost, status].
    upstream_failures: Vec<[AtomicU64; 4]>,
    anomalies: Mutex<Vec<(&'static str, u64)>>,
    /// Reversal attempts of unknown outcomes: [acknowledged, retry].
    reversals: [AtomicU64; 2],
}

fn infno_index(infno: Option<Infno>) -> usize {
    infno
        .and_then(|i| Infno::ALL.iter().position(|&x| x == i))
        .unwrap_or(Infno::ALL.len())
}

fn infno_label(index: usize) -> &'static str {
    Infno::ALL.get(index).map_or("unknown", |i| i.code())
}

impl Metrics {
    /// Empty metrics for `regions` regions.
    pub fn new(regions: usize) -> Metrics {
        let n = Infno::ALL.len() + 1;
        Metrics {
            refusal_journal: Arc::default(),
            requests: (0..n).map(|_| Default::default()).collect(),
            latency: (0..n).map(|_| Histogram::default()).collect(),
            refusals: ErrorCode::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            limited: Default::default(),
            upstream_failures: (0..regions).map(|_| Default::default()).collect(),
            anomalies: Mutex::new(Vec::new()),
            reversals: Default::default(),
        }
    }

    /// Counts one finished request.
    pub fn request(&self, infno: Option<Infno>, outcome: Outcome, elapsed: Duration) {
        let i = infno_index(infno);
        let o = OUTCOMES
            .iter()
            .position(|(x, _)| *x == outcome)
            .unwrap_or(0);
        self.requests[i][o].fetch_add(1, Ordering::Relaxed);
        self.latency[i].observe(elapsed);
    }

    /// Counts a refusal by its code.
    pub fn refusal(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|&c| c == code) {
            self.refusals[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a rate-limited request.
    pub fn limited(&self, scope: Scope) {
        self.limited[scope as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed platform call.
    pub fn upstream_failure(&self, region: usize, failure: Failure) {
        let k = match failure {
            Failure::Unreachable => 0,
            Failure::Timeout => 1,
            Failure::Lost => 2,
            Failure::Status(_) => 3,
        };
        if let Some(row) = self.upstream_failures.get(region) {
            row[k].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an attempt to reverse an unknown outcome: `acknowledged` or `retry`.
    pub fn reversal(&self, result: &'static str) {
        let i = usize::from(result != "acknowledged");
        self.reversals[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an anomaly in a platform's answer (rare: a lock is fine).
    pub fn anomaly(&self, rule: &'static str) {
        let mut anomalies = match self.anomalies.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        match anomalies.iter_mut().find(|(r, _)| *r == rule) {
            Some((_, n)) => *n += 1,
            None => anomalies.push((rule, 1)),
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self, upstreams: &Upstreams) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let _ = self.write(&mut out, upstreams);
        out
    }

    fn write(&self, out: &mut String, upstreams: &Upstreams) -> std::fmt::Result {
        writeln!(
            out,
            "# HELP jjj_requests_total Requests by transaction and outcome."
        )?;
        writeln!(out, "# TYPE jjj_requests_total counter")?;
        for (i, row) in self.requests.iter().enumerate() {
            for (o, (_, label)) in OUTCOMES.iter().enumerate() {
                let n = row[o].load(Ordering::Relaxed);
                if n > 0 {
                    writeln!(
                        out,
                        "jjj_requests_total{{infno=\"{}\",outcome=\"{label}\"}} {n}",
                        infno_label(i)
                    )?;
                }
            }
        }
        writeln!(
            out,
            "# HELP jjj_request_duration_seconds Time from request received to answer sent."
        )?;
        writeln!(out, "# TYPE jjj_request_duration_seconds histogram")?;
        for (i, h) in self.latency.iter().enumerate() {
            let count = h.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let infno = infno_label(i);
            let mut cumulative = 0;
            for (b, bound) in BUCKETS_MS.iter().enumerate() {
                cumulative += h.buckets[b].load(Ordering::Relaxed);
                writeln!(out, "jjj_request_duration_seconds_bucket{{infno=\"{infno}\",le=\"{}.{:03}\"}} {cumulative}", bound / 1000, bound % 1000)?;
            }
            writeln!(
                out,
                "jjj_request_duration_seconds_bucket{{infno=\"{infno}\",le=\"+Inf\"}} {count}"
            )?;
            let micros = h.sum_micros.load(Ordering::Relaxed);
            writeln!(
                out,
                "jjj_request_duration_seconds_sum{{infno=\"{infno}\"}} {}.{:06}",
                micros / 1_000_000,
                micros % 1_000_000
            )?;
            writeln!(
                out,
                "jjj_request_duration_seconds_count{{infno=\"{infno}\"}} {count}"
            )?;
        }
        writeln!(
            out,
            "# HELP jjj_refusals_total Requests refused by the gateway, by error code."
        )?;
        writeln!(out, "# TYPE jjj_refusals_total counter")?;
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            let n = self.refusals[i].load(Ordering::Relaxed);
            if n > 0 {
                writeln!(out, "jjj_refusals_total{{code=\"{}\"}} {n}", code.slug())?;
            }
        }
        let journal = &self.refusal_journal;
        writeln!(
            out,
            "# HELP jjj_refusals_journalled_total Refusals written to the ledger's refusals table."
        )?;
        writeln!(out, "# TYPE jjj_refusals_journalled_total counter")?;
        writeln!(
            out,
            "jjj_refusals_journalled_total {}",
            journal.written.load(Ordering::Relaxed)
        )?;
        writeln!(
            out,
            "# HELP jjj_refusals_dropped_total Refusals not journalled: the queue to the writer was full, or the ledger failed."
        )?;
        writeln!(out, "# TYPE jjj_refusals_dropped_total counter")?;
        for (reason, n) in [
            ("queue_full", &journal.dropped_queue_full),
            ("ledger_error", &journal.dropped_ledger_error),
        ] {
            writeln!(
                out,
                "jjj_refusals_dropped_total{{reason=\"{reason}\"}} {}",
                n.load(Ordering::Relaxed)
            )?;
        }
        writeln!(
            out,
            "# HELP jjj_rate_limited_total Requests refused with 429, by limit."
        )?;
        writeln!(out, "# TYPE jjj_rate_limited_total counter")?;
        for scope in [Scope::Institution, Scope::Region] {
            writeln!(
                out,
                "jjj_rate_limited_total{{scope=\"{}\"}} {}",
                scope.label(),
                self.limited[scope as usize].load(Ordering::Relaxed)
            )?;
        }
        writeln!(
            out,
            "# HELP jjj_upstream_failures_total Failed platform calls, by region and kind."
        )?;
        writeln!(out, "# TYPE jjj_upstream_failures_total counter")?;
        writeln!(
            out,
            "# HELP jjj_upstream_breaker_open Whether a platform URL's circuit breaker is open."
        )?;
        writeln!(out, "# TYPE jjj_upstream_breaker_open gauge")?;
        for (r, client) in upstreams.regions.iter().enumerate() {
            let region = client.region.admdvs;
            for (k, kind) in ["unreachable", "timeout", "lost", "status"]
                .iter()
                .enumerate()
            {
                let n = self
                    .upstream_failures
                    .get(r)
                    .map_or(0, |row| row[k].load(Ordering::Relaxed));
                writeln!(
                    out,
                    "jjj_upstream_failures_total{{region=\"{region}\",kind=\"{kind}\"}} {n}"
                )?;
            }
            for (u, breaker) in client.breakers.iter().enumerate() {
                writeln!(
                    out,
                    "jjj_upstream_breaker_open{{region=\"{region}\",upstream=\"{u}\"}} {}",
                    u8::from(breaker.is_open(upstreams.epoch()))
                )?;
            }
        }
        writeln!(out, "# HELP jjj_reversals_total Reversals the gateway sent for unknown outcomes, by result.")?;
        writeln!(out, "# TYPE jjj_reversals_total counter")?;
        for (i, result) in ["acknowledged", "retry"].iter().enumerate() {
            writeln!(
                out,
                "jjj_reversals_total{{result=\"{result}\"}} {}",
                self.reversals[i].load(Ordering::Relaxed)
            )?;
        }
        writeln!(out, "# HELP jjj_answer_anomalies_total Platform answers passed on although a balance rule failed.")?;
        writeln!(out, "# TYPE jjj_answer_anomalies_total counter")?;
        let anomalies = match self.anomalies.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        for (rule, n) in anomalies {
            writeln!(out, "jjj_answer_anomalies_total{{rule=\"{rule}\"}} {n}")?;
        }
        Ok(())
    }
}
