//! The gateway's shared state: built once at start-up from the validated
//! configuration and passed to every request as one `Arc`.

use crate::config::Config;
use crate::identity::Directory;
use crate::limit::Limiters;
use crate::metrics::Metrics;
use crate::route::Routes;
use crate::upstream::Upstreams;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Everything a request may need, built once.
pub struct Gateway {
    /// The configuration.
    pub config: Config,
    /// Callers by certificate name.
    pub directory: Directory,
    /// Insured region → platform.
    pub routes: Routes,
    /// Rate limiters.
    pub limiters: Limiters,
    /// Platform clients.
    pub upstreams: Upstreams,
    /// Metrics.
    pub metrics: Metrics,
    /// Bounds on decoding.
    pub decode_limits: adapters::Limits,
    /// Per region: whether one of its platform addresses accepted a connection lately.
    pub reachable: Vec<AtomicBool>,
    /// The settlement journal, when configured.
    pub ledger: Option<ledger::Ledger>,
    /// Whether start-up recovery of the journal has finished.
    pub recovered: AtomicBool,
    /// When this process built its state, Unix milliseconds (before it
    /// listens): start-up recovery takes only entries received before it.
    pub started_at_ms: i64,
    /// How long a live gateway can keep an entry pending, at most: older
    /// pending entries are orphans ([`crate::journal::orphan_age`]).
    pub orphan_age: Duration,
    /// The journal entries this process is resolving right now.
    pub resolving: crate::journal::Resolving,
    /// The queue to the background writer of refusals, when there is a ledger.
    pub refusals: Option<crate::journal::RefusalJournal>,
    /// Cross-region supervision, when configured ([`crate::supervision`]).
    pub supervision: Option<std::sync::Arc<crate::supervision::Supervision>>,
}

impl Gateway {
    /// Builds the state: opens the ledger (applying its migrations) and starts
    /// the background writer of refusals on the current Tokio runtime; fails
    /// on unreadable certificates or keys, or a ledger that cannot be opened.
    pub async fn new(config: Config) -> anyhow::Result<Gateway> {
        let upstreams = Upstreams::new(&config.regions, crate::server::serving_threads())?;
        let ledger = match &config.ledger_url {
            Some(url) => Some(
                ledger::Ledger::open(url)
                    .await
                    .map_err(|e| anyhow::anyhow!("opening the ledger {url}: {e}"))?,
            ),
            None => None,
        };
        let metrics = Metrics::new(config.regions.len());
        let refusals = ledger.clone().map(|ledger| {
            crate::journal::RefusalJournal::start(ledger, metrics.refusal_journal.clone())
        });
        let supervision = crate::supervision::Supervision::start(&config, ledger.as_ref()).await?;
        Ok(Gateway {
            supervision,
            directory: Directory::new(&config.institutions),
            routes: Routes::new(config.regions.iter().map(|r| r.admdvs)),
            limiters: Limiters::new(&config.limits),
            metrics,
            refusals,
            decode_limits: adapters::Limits {
                body_bytes_max: config.server.body_bytes_max,
                ..adapters::Limits::DEFAULT
            },
            reachable: config
                .regions
                .iter()
                .map(|_| AtomicBool::new(false))
                .collect(),
            recovered: AtomicBool::new(ledger.is_none()),
            started_at_ms: crate::journal::now_ms(),
            orphan_age: crate::journal::orphan_age(&config),
            resolving: crate::journal::Resolving::default(),
            ledger,
            upstreams,
            config,
        })
    }

    /// Whether every region has a reachable platform address, the journal
    /// is recovered and the ledger answers.
    pub async fn ready(&self) -> bool {
        let reachable = self
            .reachable
            .iter()
            .all(|r| r.load(std::sync::atomic::Ordering::Relaxed));
        let recovered = self.recovered.load(std::sync::atomic::Ordering::Relaxed);
        let ledger = match &self.ledger {
            Some(ledger) => ledger.ping().await.is_ok(),
            None => true,
        };
        reachable && recovered && ledger
    }
}
