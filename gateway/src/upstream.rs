//! Calls to the regional platforms: pooled hyper clients per region over
//! mutual TLS (keep-alive; HTTP/2 where the platform offers it), one for
//! each serving thread (see [`serve_as`]), several URLs per region with
//! failover on connect errors, a circuit breaker per URL shared by every
//! thread, and a timeout per transaction's pace.

use crate::config::Region;
use bytes::Bytes;
use contracts::transaction::Pace;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Consecutive failures that open a breaker.
pub const BREAKER_FAILURES_MAX: u32 = 5;
/// How long an open breaker keeps its URL out of use.
pub const BREAKER_OPEN_MS: u64 = 5_000;
/// The largest answer accepted from a platform.
pub const ANSWER_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Why a platform call did not give an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No URL of the region could be connected to (or all breakers are open):
    /// nothing was sent, so nothing happened.
    Unreachable,
    /// The request was sent and no answer came in time: the outcome is unknown.
    Timeout,
    /// The request was sent and the connection broke: the outcome is unknown.
    Lost,
    /// The platform answered with an HTTP error status.
    Status(u16),
}

impl Failure {
    /// Whether the platform may have acted on the request.
    pub fn outcome_unknown(self) -> bool {
        matches!(self, Failure::Timeout | Failure::Lost)
    }

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Failure::Unreachable => "unreachable",
            Failure::Timeout => "timeout",
            Failure::Lost => "lost",
            Failure::Status(_) => "status",
        }
    }
}

/// A circuit breaker for one URL: open after consecutive failures; once the
/// open period has passed, half-open: exactly one call (the first to ask) may
/// try the URL, and the breaker stays open for everyone else meanwhile. The
/// probe's success closes it; its failure opens it for another period; a
/// probe that never reports (its call was dropped) lets the next period's
/// first caller probe again.
#[derive(Debug, Default)]
pub struct Breaker {
    failures: AtomicU32,
    /// 0 while closed; otherwise when the open period ends (ms since the epoch).
    open_until_ms: AtomicU64,
}

impl Breaker {
    fn now_ms(epoch: Instant) -> u64 {
        epoch.elapsed().as_millis() as u64
    }

    /// Whether a call may go to this URL now. While half-open this takes the
    /// one probe: it answers `true` to a single caller.
    pub fn allows(&self, epoch: Instant) -> bool {
        let until = self.open_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = Self::now_ms(epoch);
        if now < until {
            return false;
        }
        // Half-open: whoever moves the deadline on is the probe.
        self.open_until_ms
            .compare_exchange(
                until,
                now + BREAKER_OPEN_MS,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Whether it is open now (a half-open breaker whose probe is in flight
    /// counts as open). Takes no probe.
    pub fn is_open(&self, epoch: Instant) -> bool {
        let until = self.open_until_ms.load(Ordering::Acquire);
        until != 0 && Self::now_ms(epoch) < until
    }

    fn succeeded(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.open_until_ms.store(0, Ordering::Release);
    }

    fn failed(&self, epoch: Instant) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= BREAKER_FAILURES_MAX {
            self.open_until_ms
                .store(Self::now_ms(epoch) + BREAKER_OPEN_MS, Ordering::Release);
        }
    }
}

thread_local! {
    /// Which of a region's clients this thread calls through.
    static SLOT: Cell<usize> = const { Cell::new(0) };
}

/// Makes the calling thread use the clients of serving thread `slot`
/// ([`crate::server::serve`]): a hyper client drives each platform
/// connection from a task on the runtime that opened it, so a thread that
/// kept to its own pool never hands a request to another thread and waits
/// for it to be woken there. Threads that never call this use slot 0.
pub fn serve_as(slot: usize) {
    SLOT.with(|s| s.set(slot));
}

/// The client of one region's platform.
pub struct RegionClient {
    /// Its configuration.
    pub region: Region,
    /// One pool per serving thread, in slot order.
    clients: Vec<Client<HttpsConnector<HttpConnector>, Full<Bytes>>>,
    /// One breaker per URL, in the order of `region.upstreams`.
    pub breakers: Vec<Breaker>,
}

/// The clients of every configured region.
pub struct Upstreams {
    /// In configuration order (the index `route` returns).
    pub regions: Vec<RegionClient>,
    epoch: Instant,
}

impl Upstreams {
    /// Builds `threads` pooled clients per region, with its TLS configuration
    /// read once.
    pub fn new(regions: &[Region], threads: usize) -> anyhow::Result<Upstreams> {
        let mut clients = Vec::with_capacity(regions.len());
        for region in regions {
            let tls =
                crate::tls::client_config(&region.ca, &region.client_cert, &region.client_key)?;
            let client = || {
                let mut http = HttpConnector::new();
                http.enforce_http(false);
                http.set_nodelay(true);
                http.set_connect_timeout(Some(Duration::from_secs(2)));
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls.clone())
                    .https_only()
                    .enable_http1()
                    .enable_http2()
                    .wrap_connector(http);
                Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(60))
                    .pool_max_idle_per_host(256)
                    .build(connector)
            };
            clients.push(RegionClient {
                region: region.clone(),
                clients: (0..threads.max(1)).map(|_| client()).collect(),
                breakers: region
                    .upstreams
                    .iter()
                    .map(|_| Breaker::default())
                    .collect(),
            });
        }
        Ok(Upstreams {
            regions: clients,
            epoch: Instant::now(),
        })
    }

    /// When the breakers' clock started.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Sends `body` to region `index`'s platform and returns its answer's bytes.
    /// Tries the region's URLs in order while connecting fails; never re-sends
    /// a request that may have arrived.
    pub async fn call(
        &self,
        index: usize,
        pace: Pace,
        body: Bytes,
        traceparent: Option<&str>,
    ) -> Result<Bytes, Failure> {
        let Some(target) = self.regions.get(index) else {
            return Err(Failure::Unreachable);
        };
        let slot = SLOT.with(Cell::get);
        let Some(client) = target.clients.get(slot).or_else(|| target.clients.first()) else {
            return Err(Failure::Unreachable);
        };
        let timeout = target.region.timeouts.for_pace(pace);
        let deadline = tokio::time::Instant::now() + timeout;
        for (url, breaker) in target.region.upstreams.iter().zip(&target.breakers) {
            if !breaker.allows(self.epoch) {
                continue;
            }
            let mut request = http::Request::post(url.clone()).header(
                http::header::CONTENT_TYPE,
                target.region.dialect.media_type(),
            );
            if let Some(parent) = traceparent {
                request = request.header("traceparent", parent);
            }
            let Ok(request) = request.body(Full::new(body.clone())) else {
                return Err(Failure::Unreachable);
            };
            let sent = tokio::time::timeout_at(deadline, client.request(request)).await;
            let response = match sent {
                Err(_) => {
                    breaker.failed(self.epoch);
                    return Err(Failure::Timeout);
                }
                Ok(Err(error)) if error.is_connect() => {
                    breaker.failed(self.epoch);
                    continue;
                }
                Ok(Err(_)) => {
                    breaker.failed(self.epoch);
                    return Err(Failure::Lost);
                }
                Ok(Ok(response)) => response,
            };
            let status = response.status();
            let collected = tokio::time::timeout_at(
                deadline,
                Limited::new(response.into_body(), ANSWER_BYTES_MAX).collect(),
            )
            .await;
            return match collected {
                Err(_) => {
                    breaker.failed(self.epoch);
                    Err(Failure::Timeout)
                }
                Ok(Err(_)) => {
                    breaker.failed(self.epoch);
                    Err(Failure::Lost)
                }
                Ok(Ok(_)) if !status.is_success() => {
                    breaker.failed(self.epoch);
                    Err(Failure::Status(status.as_u16()))
                }
                Ok(Ok(body)) => {
                    breaker.succeeded();
                    Ok(body.to_bytes())
                }
            };
        }
        Err(Failure::Unreachable)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn half_open_lets_exactly_one_probe_through() {
        let start = Instant::now();
        // An epoch further back is a clock further on.
        let after = |ms: u64| start.checked_sub(Duration::from_millis(ms)).unwrap();
        let breaker = Breaker::default();
        assert!(breaker.allows(start) && !breaker.is_open(start));
        for _ in 0..BREAKER_FAILURES_MAX {
            breaker.failed(start);
        }
        assert!(breaker.is_open(start) && !breaker.allows(start));
        // The open period is over: one probe, nobody else.
        let later = after(BREAKER_OPEN_MS + 100);
        assert!(!breaker.is_open(later));
        assert!(breaker.allows(later));
        assert!(!breaker.allows(later) && !breaker.allows(later));
        assert!(breaker.is_open(later));
        // The probe fails: open for another period.
        breaker.failed(later);
        assert!(!breaker.allows(after(BREAKER_OPEN_MS + 200)));
        // The next probe succeeds: closed, for everyone.
        let again = after(2 * BREAKER_OPEN_MS + 300);
        assert!(breaker.allows(again));
        breaker.succeeded();
        assert!(breaker.allows(again) && breaker.allows(again) && !breaker.is_open(again));
    }
}
