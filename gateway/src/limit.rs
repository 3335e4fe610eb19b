//! Rate limits: per institution (one noisy hospital never starves the others)
//! and per insured region (protecting each platform). Keyed GCRA limiters
//! from governor; idle keys are pruned so memory stays flat.

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
