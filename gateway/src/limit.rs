//! Rate limits: per institution (one noisy hospital never starves the others)
//! and per insured region (protecting each platform). Keyed GCRA limiters
//! from governor; idle keys are pruned so memory stays flat.
//!
//! The institution's rate is a tower layer ([`InstitutionLimitLayer`]) in
//! front of the message paths: a caller over its rate is answered 429 with
//! `Retry-After`, in the dialect of the path it called, before its body is
//! read. The region's rate needs the decoded message (its insured region), so
//! the pipeline applies it after decoding.

use crate::config::Limits;
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// Which limit a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The calling institution's own rate.
    Institution,
    /// The rate towards the insured region's platform.
    Region,
}

impl Scope {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Scope::Institution => "institution",
            Scope::Region => "region",
        }
    }
}

/// The gateway's rate limiters.
pub struct Limiters {
    institutions: Keyed<usize>,
    regions: Keyed<u32>,
    clock: DefaultClock,
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Quota::per_second(rate).allow_burst(burst)
}

impl Limiters {
    /// From the configured limits.
    pub fn new(limits: &Limits) -> Limiters {
        Limiters {
            institutions: RateLimiter::keyed(quota(
                limits.institution_per_second,
                limits.institution_burst,
            )),
            regions: RateLimiter::keyed(quota(limits.region_per_second, limits.region_burst)),
            clock: DefaultClock::default(),
        }
    }

    fn wait(
        &self,
        outcome: Result<(), governor::NotUntil<<DefaultClock as Clock>::Instant>>,
    ) -> Result<(), Duration> {
        outcome.map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Admits one request of the institution at `index`, or says how long to wait.
    pub fn admit_institution(&self, index: usize) -> Result<(), Duration> {
        self.wait(self.institutions.check_key(&index))
    }

    /// Admits one request towards the region `admdvs`, or says how long to wait.
    pub fn admit_region(&self, admdvs: u32) -> Result<(), Duration> {
        self.wait(self.regions.check_key(&admdvs))
    }

    /// Forgets keys that have been idle long enough to be back at full burst.
    pub fn prune(&self) {
        self.institutions.retain_recent();
        self.institutions.shrink_to_fit();
        self.regions.retain_recent();
        self.regions.shrink_to_fit();
    }

    /// Keys held (for tests and metrics).
    pub fn keys(&self) -> usize {
        self.institutions.len() + self.regions.len()
    }
}

/// The per-institution rate as a tower layer (see the module docs).
#[derive(Clone)]
pub struct InstitutionLimitLayer {
    gateway: std::sync::Arc<crate::state::Gateway>,
    /// The connection's caller, when its certificate named one.
    caller: Option<usize>,
}

impl InstitutionLimitLayer {
    /// The layer for one connection's caller.
    pub fn new(gateway: std::sync::Arc<crate::state::Gateway>, caller: Option<usize>) -> Self {
        InstitutionLimitLayer { gateway, caller }
    }
}

impl<S> tower::Layer<S> for InstitutionLimitLayer {
    type Service = InstitutionLimit<S>;

    fn layer(&self, inner: S) -> InstitutionLimit<S> {
        InstitutionLimit {
            inner,
            gateway: self.gateway.clone(),
            caller: self.caller,
        }
    }
}

/// The service [`InstitutionLimitLayer`] wraps around the message paths.
#[derive(Clone)]
pub struct InstitutionLimit<S> {
    inner: S,
    gateway: std::sync::Arc<crate::state::Gateway>,
    caller: Option<usize>,
}

type HttpResponse = http::Response<http_body_util::Full<bytes::Bytes>>;

impl<S, B> tower::Service<http::Request<B>> for InstitutionLimit<S>
where
    S: tower::Service<http::Request<B>, Response = HttpResponse, Error = tower::BoxError>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = tower::BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, tower::BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let dialect = crate::server::message_dialect(request.uri().path());
        if let (Some(index), Some(dialect), true) =
            (self.caller, dialect, request.method() == http::Method::POST)
        {
            if let Err(wait) = self.gateway.limiters.admit_institution(index) {
                self.gateway.metrics.limited(Scope::Institution);
                let code = self
                    .gateway
                    .config
                    .institutions
                    .get(index)
                    .map_or("", |i| i.code.as_str());
                let reply = crate::pipeline::limited(&self.gateway, dialect, code, wait);
                let response = crate::server::from_reply(reply);
                return Box::pin(async move { Ok(response) });
            }
        }
        // Boxed as it is: wrapped in an `async` block it would be held twice
        // over (the block keeps the future it awaits beside its own copy).
        Box::pin(self.inner.call(request))
    }
}
