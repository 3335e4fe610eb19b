//! Cross-region supervision: live fraud signals from the settlements and
//! admissions the gateway journals (issue 11; the rules are specified in
//! `contracts/supervision.md`).
//!
//! Each platform sees only its own side; the gateway sees both. Before the
//! final journal write of an answered message, the pipeline takes the
//! message's few facts ([`facts`], [`observe`]); what the windows need of
//! them is written in that same transaction ([`journalled`]), and after it
//! the facts go to a bounded queue ([`hand`]: never waits; a full queue
//! drops the fact from the windows and counts it); a background task
//! updates the rules' windows ([`windows`]), evaluates the rules, and writes
//! the signals found to the ledger. Nothing of the evaluation is on the
//! request's path, except for rules configured `mode = "refuse"`: those that
//! can decide on the request alone (`duplicate_bill`, `frequency`,
//! `pharmacy_quantity`, and `concurrent_inpatient` for admissions) are
//! evaluated before forwarding ([`screen`], in memory), and a hit is
//! answered `3005 supervision_refused` naming the rule, in the caller's
//! dialect, journalled like any refusal, its signal kept before it leaves.
//!
//! The rules, one file each: [`concurrent_inpatient`], [`duplicate_bill`],
//! [`frequency`], [`pharmacy_quantity`], [`institution_surge`].
//!
//! **The person** is only ever a keyed hash: HMAC-SHA256 under
//! `[supervision] hmac_key` of the ID number (`mdtrt_cert_no` when the
//! credential is the ID card) or else of the insured province and person
//! number. The ID number is read in [`facts`] and goes nowhere but the HMAC:
//! not to the ledger, the logs, the API or the exports. Officers of the
//! insured region resolve the key through their own platform.
//!
//! **State is bounded and compact**: the windows forget what is older than
//! the longest window (a prune every minute), and the ledger's
//! `supervision_events` table is pruned alike. A settlement held is one
//! record in a slab ([`held`], [`slab`]): its codes interned ([`codes`]),
//! the person's key as 32 bytes and the ids only compared as digests
//! ([`keys`]), named by its `u32` id in its person's chain and in the
//! indexes ([`index`]) — about 230 bytes per settlement held in all, so a
//! month at national scale fits in a few GiB (BENCHMARKS.md).
//!
//! **It survives a restart, even a kill**: at start the windows are rebuilt
//! from `supervision_events` and the institutions' daily counts
//! (`supervision_daily`), and the facts of the last [`REPLAY_MS`] before the
//! newest one are evaluated again — those the task may not have reached.
//! Fee lines uploaded for a visit wait for its settlement in memory only (a
//! day at most); the bill they make is added to the settlement's row once
//! matched.

pub mod api;
pub mod codes;
pub mod command;
pub mod concurrent_inpatient;
pub mod duplicate_bill;
pub mod facts;
pub mod frequency;
pub mod held;
pub mod index;
pub mod institution_surge;
pub mod keys;
pub mod pharmacy_quantity;
pub mod slab;
pub mod windows;

use crate::config::{Mode, Rule, RuleName};
use crate::state::Gateway;
use contracts::{Answer, DateTime, ErrorCode, Money, Refusal, Request, RequestBody};
use facts::{Fact, SettleKind, Settlement};
use held::HeldSettlement;
use sha2::Digest;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;
use windows::{day_number, Windows, DAY_MS};

/// How many facts may wait for the background task; more are dropped (and counted).
pub const QUEUE: usize = 16_384;
/// How many queued facts the task takes at once.
const BATCH: usize = 256;
/// How far back from the newest fact kept a start evaluates the facts
/// again: those the task had not evaluated when the gateway stopped. The
/// task evaluates a fact within milliseconds of its journal write; its queue
/// holds at most [`QUEUE`] facts, 8 s at 2,000 settlements/s. Evaluating a
/// fact twice is harmless: a finding keeps its id.
const REPLAY_MS: i64 = 120_000;
/// How many people a slice of the prune looks at with the windows locked
/// (their stays, then their settlements; well under 1 ms at national scale:
/// BENCHMARKS.md).
const PRUNE_SLICE: u32 = 16_384;
/// How often the windows and the ledger's events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// A time as officers read it (Asia/Shanghai).
pub fn at(ms: i64) -> String {
    DateTime::from_unix_millis(ms)
        .map(|t| t.truncated_to_seconds().to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// A window as configured: `30d`, `24h`, `90m`, `45s`.
pub fn window_text(window: Duration) -> String {
    let s = window.as_secs();
    if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3_600) {
        format!("{}h", s / 3_600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// What a rule found: the evidence of one signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule.
    pub rule: RuleName,
    /// Its severity.
    pub severity: &'static str,
    /// Its window, for the id.
    window: Duration,
    /// Region codes involved.
    pub regions: BTreeSet<String>,
    /// Institution codes involved.
    pub institutions: BTreeSet<String>,
    /// The person's keyed hash.
    pub person: Option<String>,
    /// Visits.
    pub mdtrt_ids: Vec<String>,
    /// Settlements.
    pub setl_ids: Vec<String>,
    /// Amounts.
    pub amounts: Vec<Money>,
    /// In words.
    pub detail: String,
    /// What triggered it (institution and msgid, or institution and day): makes the id.
    trigger: String,
}

impl Finding {
    /// An empty finding of `rule` about `person` at `institution`, triggered by `trigger`.
    pub fn new(rule: &Rule, person: Option<&str>, institution: &str, trigger: &str) -> Finding {
        let mut institutions = BTreeSet::new();
        institutions.insert(institution.to_owned());
        Finding {
            rule: rule.name,
            severity: rule.severity.as_str(),
            window: rule.window,
            regions: BTreeSet::new(),
            institutions,
            person: person.map(str::to_owned),
            mdtrt_ids: Vec::new(),
            setl_ids: Vec::new(),
            amounts: Vec::new(),
            detail: String::new(),
            trigger: format!("{institution}:{trigger}"),
        }
    }

    /// A finding about `settlement` and the `earlier` ones it goes with.
    pub fn of_settlements(
        rule: &Rule,
        settlement: &Settlement,
        earlier: &[HeldSettlement<'_>],
    ) -> Finding {
        let mut finding = Finding::new(
            rule,
            Some(&settlement.person),
            &settlement.institution,
            &settlement.msgid,
        );
        for e in earlier {
            finding.settlement(
                e.institution(),
                [e.insured(), e.treatment()],
                e.mdtrt_id(),
                e.setl_id(),
                e.amount(),
            );
        }
        finding.settlement(
            &settlement.institution,
            [&settlement.insured, &settlement.treatment],
            settlement.mdtrt_id.as_deref(),
            settlement.setl_id.as_deref(),
            settlement.amount,
        );
        finding
    }

    /// Adds a settlement: its institution, regions, visit, id and amount.
    fn settlement(
        &mut self,
        institution: &str,
        regions: [&str; 2],
        mdtrt_id: Option<&str>,
        setl_id: Option<&str>,
        amount: Money,
    ) {
        self.institution(institution);
        for region in regions {
            self.region(region);
        }
        self.mdtrt(mdtrt_id);
        if let Some(setl_id) = setl_id {
            if !self.setl_ids.iter().any(|s| s == setl_id) {
                self.setl_ids.push(setl_id.to_owned());
            }
        }
        self.amounts.push(amount);
    }

    /// Adds a region.
    pub fn region(&mut self, region: &str) {
        if !region.is_empty() {
            self.regions.insert(region.to_owned());
        }
    }

    /// Adds an institution.
    pub fn institution(&mut self, institution: &str) {
        self.institutions.insert(institution.to_owned());
    }

    /// Adds a visit.
    pub fn mdtrt(&mut self, mdtrt_id: Option<&str>) {
        if let Some(id) = mdtrt_id.filter(|id| !id.is_empty()) {
            if !self.mdtrt_ids.iter().any(|m| m == id) {
                self.mdtrt_ids.push(id.to_owned());
            }
        }
    }

    /// The signal's id: stable for the same rule, window and trigger.
    pub fn id(&self) -> String {
        let hash = sha2::Sha256::digest(format!(
            "{}|{}|{}",
            self.rule.as_str(),
            self.window.as_secs(),
            self.trigger
        ));
        contracts::hex::encode(&hash[..16])
    }

    /// As the ledger keeps it, detected at `now_ms`.
    pub fn signal(&self, now_ms: i64) -> ledger::Signal {
        let bounded = |items: Vec<String>| items.into_iter().take(64).collect::<Vec<_>>();
        ledger::Signal {
            id: self.id(),
            day: DateTime::from_unix_millis(now_ms)
                .map(|t| t.date().to_string())
                .unwrap_or_default(),
            rule: self.rule.as_str().to_owned(),
            severity: self.severity.to_owned(),
            detected_at_ms: now_ms,
            regions: bounded(self.regions.iter().cloned().collect()),
            institutions: bounded(self.institutions.iter().cloned().collect()),
            person_key: self.person.clone(),
            mdtrt_ids: bounded(clean(&self.mdtrt_ids)),
            setl_ids: bounded(clean(&self.setl_ids)),
            amounts: self.amounts.iter().copied().take(64).collect(),
            detail: self.detail.chars().take(500).collect(),
        }
    }
}

/// Ids as the ledger takes them in a list: no commas, no control characters, 128 bytes at most.
fn clean(ids: &[String]) -> Vec<String> {
    ids.iter()
        .map(|id| {
            id.chars()
                .map(|c| if c == ',' || c.is_control() { '?' } else { c })
                .take(128)
                .collect()
        })
        .collect()
}

/// What the background task is handed: an answered message's facts, and
/// whether the ledger already has them (written with the journal's finish,
/// [`journalled`]); the task writes the others itself.
struct Work {
    fact: Fact,
    journalled: bool,
}

/// Counts of the supervision queue.
#[derive(Debug, Default)]
pub struct Counters {
    /// Facts observed.
    pub observed: AtomicU64,
    /// Facts dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Signals raised.
    pub signals: AtomicU64,
    /// Ledger writes that failed.
    pub write_errors: AtomicU64,
}

/// Supervision: its rules, its windows and the queue to its task.
pub struct Supervision {
    key: Vec<u8>,
    rules: Vec<Rule>,
    windows: Mutex<Windows>,
    tx: mpsc::Sender<Work>,
    refusing: bool,
    /// Its counts.
    pub counters: Counters,
}

impl std::fmt::Debug for Supervision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervision")
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
}

/// How long the windows keep stays (the longest window but the surge's, at
/// least a day), settlements (the longest window of the rules that look at
/// settlements, at least a day) and how many days of counts (the surge's
/// baseline).
fn horizons(settings: &crate::config::Supervision) -> (i64, i64, i64) {
    let longest = |which: &dyn Fn(RuleName) -> bool| {
        settings
            .rules
            .iter()
            .filter(|r| which(r.name))
            .map(|r| millis(r.window))
            .max()
            .unwrap_or(DAY_MS)
            .max(DAY_MS)
    };
    let keep_ms = longest(&|name| name != RuleName::InstitutionSurge);
    let settle_ms = longest(&|name| {
        matches!(
            name,
            RuleName::DuplicateBill | RuleName::Frequency | RuleName::PharmacyQuantity
        )
    });
    let keep_days = settings
        .rules
        .iter()
        .filter(|r| r.name == RuleName::InstitutionSurge)
        .map(|r| i64::try_from(r.window.as_secs() / 86_400).unwrap_or(30))
        .max()
        .unwrap_or(0)
        + 1;
    (keep_ms, settle_ms, keep_days)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Supervision {
    fn windows(&self) -> MutexGuard<'_, Windows> {
        self.windows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The rules configured.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// How many facts the windows hold now (flat over time: see [`Windows::prune`]).
    pub fn remembered(&self) -> usize {
        self.windows().size()
    }

    /// How many settlements the windows hold now.
    pub fn settlements_held(&self) -> usize {
        self.windows().settlements_held()
    }

    /// The windows' bytes by structure (see [`Windows::footprint`]).
    pub fn footprint(&self) -> Vec<(&'static str, usize)> {
        self.windows().footprint()
    }

    /// Starts supervision when the configuration has a `[supervision]`
    /// section: rebuilds the windows from the ledger, then starts the
    /// background task on the current runtime.
    pub async fn start(
        config: &crate::config::Config,
        ledger: Option<&ledger::Ledger>,
    ) -> anyhow::Result<Option<Arc<Supervision>>> {
        let Some(settings) = &config.supervision else {
            return Ok(None);
        };
        let Some(ledger) = ledger else {
            anyhow::bail!("supervision: signals are kept in the ledger; configure [ledger]");
        };
        let (keep_ms, settle_ms, keep_days) = horizons(settings);
        let now = crate::journal::now_ms();
        let mut windows = Windows::new(keep_ms, settle_ms, keep_days);
        let events = ledger
            .supervision_events(now - keep_ms)
            .await
            .map_err(|e| anyhow::anyhow!("supervision: reading its events: {e}"))?;
        let rebuilt = events.len();
        // The newest facts may have been journalled but not yet evaluated
        // when the gateway stopped: those are evaluated again below.
        let replay_from = events.last().map_or(i64::MAX, |e| e.at_ms - REPLAY_MS);
        let mut tail = Vec::new();
        for event in events {
            if let Some(fact) = fact_of_event(event) {
                if fact.at_ms() >= replay_from {
                    tail.push(fact);
                } else {
                    windows.apply(&fact, false);
                }
            }
        }
        let first = DateTime::from_unix_millis(now - keep_days * DAY_MS)
            .map(|t| t.date().to_string())
            .unwrap_or_default();
        for count in ledger
            .settlement_counts(&first)
            .await
            .map_err(|e| anyhow::anyhow!("supervision: reading daily counts: {e}"))?
        {
            if let Ok(date) = contracts::Date::parse(&count.day) {
                let noon = DateTime::from_civil(
                    chrono::Datelike::year(&date.naive()),
                    chrono::Datelike::month(&date.naive()),
                    chrono::Datelike::day(&date.naive()),
                    12,
                    0,
                    0,
                    0,
                );
                if let Some(noon) = noon {
                    windows.load_day(
                        &count.institution,
                        day_number(noon.unix_millis()),
                        count.settlements,
                        count.amount.fen(),
                    );
                }
            }
        }
        windows.prune(now);
        let (tx, rx) = mpsc::channel(QUEUE);
        let supervision = Arc::new(Supervision {
            key: settings.hmac_key.clone(),
            refusing: settings.rules.iter().any(|r| r.mode == Mode::Refuse),
            rules: settings.rules.clone(),
            windows: Mutex::new(windows),
            tx,
            counters: Counters::default(),
        });
        let evaluated = tail.len();
        let mut found = 0;
        for mut fact in tail {
            for finding in supervision.handle(&mut fact, false) {
                // The same finding has the same id: one already kept stays as it was.
                let signal = signal_of(&supervision, &finding, fact.at_ms());
                ledger
                    .put_signal(signal)
                    .await
                    .map_err(|e| anyhow::anyhow!("supervision: keeping a signal: {e}"))?;
                found += 1;
            }
        }
        tracing::info!(
            rules = settings.rules.len(),
            events = rebuilt,
            evaluated,
            found,
            "supervision: windows rebuilt from the ledger, the newest facts evaluated again"
        );
        tokio::spawn(run(supervision.clone(), ledger.clone(), rx));
        Ok(Some(supervision))
    }

    /// Supervision in memory only — no ledger, no task — for measuring the
    /// rules' work (`examples/supervision_month.rs`): feed it with
    /// [`Supervision::handle_fact`], prune with [`Supervision::prune`].
    pub fn in_memory(settings: &crate::config::Supervision) -> Supervision {
        let (keep_ms, settle_ms, keep_days) = horizons(settings);
        let (tx, _rx) = mpsc::channel(1);
        Supervision {
            key: settings.hmac_key.clone(),
            refusing: settings.rules.iter().any(|r| r.mode == Mode::Refuse),
            rules: settings.rules.clone(),
            windows: Mutex::new(Windows::new(keep_ms, settle_ms, keep_days)),
            tx,
            counters: Counters::default(),
        }
    }

    /// The work the background task does for one fact: the rules evaluated,
    /// the windows updated. Returns how many signals it raised.
    pub fn handle_fact(&self, mut fact: Fact) -> usize {
        self.handle(&mut fact, true).len()
    }

    /// Forgets what is older than the longest window, in slices as the task
    /// does every minute; returns the longest time the windows were locked.
    pub fn prune(&self, now_ms: i64) -> Duration {
        let began = std::time::Instant::now();
        let mut prune = self.windows().prune_start(now_ms);
        let mut longest = began.elapsed();
        loop {
            let began = std::time::Instant::now();
            let done = self.windows().prune_slice(&mut prune, PRUNE_SLICE);
            longest = longest.max(began.elapsed());
            if done {
                return longest;
            }
        }
    }

    /// What the rules find about `fact`, against the windows as they are.
    fn evaluate(&self, windows: &Windows, fact: &Fact, refuse_only: bool) -> Vec<Finding> {
        let mut findings = Vec::new();
        for rule in &self.rules {
            if refuse_only && rule.mode != Mode::Refuse {
                continue;
            }
            let found = match (rule.name, fact) {
                (RuleName::ConcurrentInpatient, Fact::Admission(a)) => {
                    concurrent_inpatient::check(rule, windows, a)
                }
                (RuleName::DuplicateBill, Fact::Settlement(s)) => {
                    duplicate_bill::check(rule, windows, s)
                }
                (RuleName::Frequency, Fact::Settlement(s)) => frequency::check(rule, windows, s),
                (RuleName::PharmacyQuantity, Fact::Settlement(s)) => {
                    pharmacy_quantity::check(rule, windows, s)
                }
                _ => None,
            };
            findings.extend(found);
        }
        findings
    }

    /// Handles one fact in memory: fills in a settlement's bill from the
    /// fee lines uploaded for its visit, evaluates, applies (adding a
    /// settlement to its institution's count of the day when `count`: not
    /// when the count was read from the ledger), checks surges.
    fn handle(&self, fact: &mut Fact, count: bool) -> Vec<Finding> {
        let mut windows = self.windows();
        if let Fact::Settlement(s) = fact {
            if s.bill.is_none() && s.kind != SettleKind::Pharmacy {
                if let Some(mdtrt_id) = &s.mdtrt_id {
                    s.bill = windows.bill_of(&s.institution, mdtrt_id);
                }
            }
        }
        let mut findings = self.evaluate(&windows, fact, false);
        windows.apply(fact, count);
        if let Fact::Settlement(s) = &*fact {
            let today = day_number(s.at_ms);
            for (index, rule) in self.rules.iter().enumerate() {
                if rule.name != RuleName::InstitutionSurge {
                    continue;
                }
                let key = (index, s.institution.clone(), today);
                if windows.surged.contains(&key) {
                    continue;
                }
                if let Some(found) =
                    institution_surge::check(rule, &windows, &s.institution, &s.treatment, today)
                {
                    windows.surged.insert(key);
                    findings.push(found);
                }
            }
        }
        findings
    }
}

/// The task: facts in, windows updated, signals out (and the events and
/// counts of the facts the journal did not write).
async fn run(supervision: Arc<Supervision>, ledger: ledger::Ledger, mut rx: mpsc::Receiver<Work>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            received = rx.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    return;
                }
                // In the order of observation, as a restart replays them.
                batch.sort_by_key(|work| work.fact.at_ms());
                let mut writes = tokio::task::JoinSet::new();
                let now = crate::journal::now_ms();
                for Work { mut fact, journalled: kept } in batch.drain(..) {
                    let billed = fact.bill().is_some();
                    let findings = supervision.handle(&mut fact, true);
                    if !kept {
                        if let Some(observed) = journalled(&fact) {
                            let ledger = ledger.clone();
                            writes.spawn(async move {
                                ledger.put_supervision_event(observed.event).await?;
                                match observed.count {
                                    Some(count) => ledger.count_settlements(count).await,
                                    None => Ok(()),
                                }
                            });
                        }
                    } else if let (false, Some(bill), Some(id)) = (billed, fact.bill(), event_id(&fact)) {
                        // Matched with its visit's uploaded fee lines only now: kept for a restart.
                        let (ledger, bill) = (ledger.clone(), bill.to_owned());
                        writes.spawn(async move { ledger.set_supervision_bill(&id, &bill).await });
                    }
                    for finding in findings {
                        let signal = signal_of(&supervision, &finding, now);
                        let ledger = ledger.clone();
                        writes.spawn(async move { ledger.put_signal(signal).await });
                    }
                }
                while let Some(written) = writes.join_next().await {
                    if !matches!(written, Ok(Ok(()))) {
                        supervision.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("supervision: a write to the ledger failed");
                    }
                }
            }
            _ = prune.tick() => {
                let now = crate::journal::now_ms();
                // In slices, the lock let go between them: a request that
                // `screen`s waits for one slice at most, not the whole walk.
                let mut slices = supervision.windows().prune_start(now);
                while !supervision.windows().prune_slice(&mut slices, PRUNE_SLICE) {
                    tokio::task::yield_now().await;
                }
                let keep_ms = supervision.windows().keep_ms;
                if let Err(error) = ledger.prune_supervision(now - keep_ms).await {
                    tracing::warn!(%error, "supervision: pruning its events failed");
                }
            }
        }
    }
}

/// A finding as the ledger keeps it, detected at `now_ms`, counted and logged (without the person).
fn signal_of(supervision: &Supervision, finding: &Finding, now_ms: i64) -> ledger::Signal {
    supervision.counters.signals.fetch_add(1, Ordering::Relaxed);
    let signal = finding.signal(now_ms);
    tracing::info!(rule = %signal.rule, id = %signal.id, institutions = %signal.institutions.join(","), "supervision signal");
    signal
}

/// Takes an answered message's facts for supervision, before its final
/// journal write: what [`journalled`] gives goes into that write, and the
/// fact is handed to the task by [`hand`] once the write is done.
pub fn observe(gateway: &Gateway, request: &Request, answer: &Answer) -> Option<Fact> {
    let supervision = gateway.supervision.as_ref()?;
    if !followed(&request.input) {
        return None;
    }
    let now = crate::journal::now_ms();
    let fact = facts::fact_of(&supervision.key, request, answer, now, |_, _| None)?;
    supervision
        .counters
        .observed
        .fetch_add(1, Ordering::Relaxed);
    Some(fact)
}

/// Hands a fact to the background task, after the final journal write
/// (`journalled`: that write kept it); never waits (a full queue drops the
/// fact from the windows until the next restart reads it back, counted).
pub fn hand(gateway: &Gateway, fact: Option<Fact>, journalled: bool) {
    let (Some(supervision), Some(fact)) = (&gateway.supervision, fact) else {
        return;
    };
    if supervision.tx.try_send(Work { fact, journalled }).is_err() {
        supervision.counters.dropped.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("supervision queue full: a fact was not observed");
    }
}

/// Whether supervision follows this transaction.
fn followed(body: &RequestBody) -> bool {
    matches!(
        body,
        RequestBody::Admission(_)
            | RequestBody::Discharge(_)
            | RequestBody::AdmissionCancel(_)
            | RequestBody::OutpatientSettle(_)
            | RequestBody::InpatientSettle(_)
            | RequestBody::PharmacySettle(_)
            | RequestBody::OutpatientSettleCancel(_)
            | RequestBody::InpatientSettleCancel(_)
            | RequestBody::PharmacySettleCancel(_)
            | RequestBody::Reversal(_)
            | RequestBody::OutpatientFeeUpload(_)
            | RequestBody::InpatientFeeUpload(_)
    )
}

/// Before forwarding: the rules in `refuse` mode that decide on the request
/// alone. A hit refuses the message (3005, naming the rule) and records the
/// signal; otherwise nothing happens. In memory, but for keeping the
/// signal of a hit in the ledger before the refusal leaves.
pub async fn screen(gateway: &Gateway, request: &Request) -> Result<(), Refusal> {
    let Some(supervision) = &gateway.supervision else {
        return Ok(());
    };
    if !supervision.refusing {
        return Ok(());
    }
    let now = crate::journal::now_ms();
    let findings = {
        let windows = supervision.windows();
        let fact = match &request.input {
            RequestBody::Admission(_) => {
                facts::admission_of(&supervision.key, request, now).map(Fact::Admission)
            }
            RequestBody::OutpatientSettle(_)
            | RequestBody::InpatientSettle(_)
            | RequestBody::PharmacySettle(_) => {
                facts::settlement_of(&supervision.key, request, now, |i, m| windows.bill_of(i, m))
                    .map(Fact::Settlement)
            }
            _ => None,
        };
        match fact {
            Some(fact) => supervision.evaluate(&windows, &fact, true),
            None => Vec::new(),
        }
    };
    let Some(mut finding) = findings.into_iter().next() else {
        return Ok(());
    };
    let rule = finding.rule.as_str();
    finding.detail = format!("refused before forwarding: {}", finding.detail);
    // Kept before the refusal leaves: a crash cannot lose it.
    let signal = signal_of(supervision, &finding, now);
    if let Some(ledger) = &gateway.ledger {
        if let Err(error) = ledger.put_signal(signal).await {
            supervision
                .counters
                .write_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, "supervision: the signal of a refusal was not kept");
        }
    }
    Err(Refusal::new(
        ErrorCode::SupervisionRefused,
        format!("supervision rule {rule}: see contracts/supervision.md; the regions' officers review it"),
    ))
}

/// The id of a fact's ledger row (what makes it unique), if it has one.
fn event_id(fact: &Fact) -> Option<String> {
    let parts = match fact {
        Fact::Admission(a) => format!("admission|{}|{}", a.institution, a.msgid),
        Fact::Discharge {
            institution,
            mdtrt_id,
            end_ms,
            ..
        } => format!("discharge|{institution}|{mdtrt_id}|{end_ms}"),
        Fact::AdmissionCancel {
            institution,
            mdtrt_id,
            ..
        } => format!("admission_cancel|{institution}|{mdtrt_id}"),
        Fact::Settlement(s) => format!("settlement|{}|{}", s.institution, s.msgid),
        Fact::Cancel {
            institution,
            setl_id,
            ..
        } => format!("cancel|{institution}|{setl_id}"),
        Fact::Reversal {
            institution,
            omsgid,
            ..
        } => format!("reversal|{institution}|{omsgid}"),
        Fact::FeeUpload { .. } => return None,
    };
    Some(contracts::hex::encode(
        &sha2::Sha256::digest(parts.as_bytes())[..16],
    ))
}

/// What the ledger keeps of a fact for the windows after a restart: its
/// row, and for a cross-region settlement one more in its institution's
/// count of the day (the baseline of `institution_surge`). The journal's
/// final write keeps it in the same transaction
/// ([`ledger::Ledger::finish_observed`]), so a crash right after the answer
/// loses nothing the windows need; the task writes it for facts not journalled.
pub fn journalled(fact: &Fact) -> Option<ledger::Observed> {
    let id = event_id(fact)?;
    let event = match fact {
        Fact::Admission(a) => ledger::SupervisionEvent {
            id,
            at_ms: a.at_ms,
            kind: "admission".into(),
            person_key: Some(a.person.clone()),
            institution: a.institution.clone(),
            insured: Some(a.insured.clone()),
            treatment: Some(a.treatment.clone()),
            msgid: Some(a.msgid.clone()),
            mdtrt_id: a.mdtrt_id.clone(),
            begin_ms: Some(a.begin_ms),
            ..Default::default()
        },
        Fact::Discharge {
            institution,
            mdtrt_id,
            end_ms,
            at_ms,
        } => ledger::SupervisionEvent {
            id,
            at_ms: *at_ms,
            kind: "discharge".into(),
            institution: institution.clone(),
            mdtrt_id: Some(mdtrt_id.clone()),
            begin_ms: Some(*end_ms),
            ..Default::default()
        },
        Fact::AdmissionCancel {
            institution,
            mdtrt_id,
            at_ms,
        } => ledger::SupervisionEvent {
            id,
            at_ms: *at_ms,
            kind: "admission_cancel".into(),
            institution: institution.clone(),
            mdtrt_id: Some(mdtrt_id.clone()),
            ..Default::default()
        },
        Fact::Settlement(s) => ledger::SupervisionEvent {
            id,
            at_ms: s.at_ms,
            kind: "settlement".into(),
            person_key: Some(s.person.clone()),
            institution: s.institution.clone(),
            insured: Some(s.insured.clone()),
            treatment: Some(s.treatment.clone()),
            msgid: Some(s.msgid.clone()),
            mdtrt_id: s.mdtrt_id.clone(),
            setl_id: s.setl_id.clone(),
            med_type: Some(s.kind.as_str().to_owned()),
            amount: Some(s.amount),
            invono: s.invono.clone(),
            bill: s.bill.clone(),
            drugs: (!s.drugs.is_empty()).then(|| {
                s.drugs
                    .iter()
                    .map(|(code, quantity)| format!("{}:{quantity}", code.replace([':', ';'], "?")))
                    .collect::<Vec<_>>()
                    .join(";")
            }),
            begin_ms: None,
        },
        Fact::Cancel {
            institution,
            setl_id,
            at_ms,
        } => ledger::SupervisionEvent {
            id,
            at_ms: *at_ms,
            kind: "cancel".into(),
            institution: institution.clone(),
            setl_id: Some(setl_id.clone()),
            ..Default::default()
        },
        Fact::Reversal {
            institution,
            omsgid,
            at_ms,
        } => ledger::SupervisionEvent {
            id,
            at_ms: *at_ms,
            kind: "reversal".into(),
            institution: institution.clone(),
            msgid: Some(omsgid.clone()),
            ..Default::default()
        },
        Fact::FeeUpload { .. } => return None,
    };
    let count = match fact {
        Fact::Settlement(s) if s.insured.get(..2) != s.treatment.get(..2) => {
            Some(ledger::DailyCount {
                institution: s.institution.clone(),
                day: DateTime::from_unix_millis(s.at_ms)
                    .map(|t| t.date().to_string())
                    .unwrap_or_default(),
                settlements: 1,
                amount: s.amount,
            })
        }
        _ => None,
    };
    Some(ledger::Observed { event, count })
}

/// The fact a ledger row keeps.
fn fact_of_event(e: ledger::SupervisionEvent) -> Option<Fact> {
    Some(match e.kind.as_str() {
        "admission" => Fact::Admission(facts::Admission {
            person: e.person_key?,
            institution: e.institution,
            insured: e.insured.unwrap_or_default(),
            treatment: e.treatment.unwrap_or_default(),
            mdtrt_id: e.mdtrt_id,
            begin_ms: e.begin_ms.unwrap_or(e.at_ms),
            at_ms: e.at_ms,
            msgid: e.msgid.unwrap_or_default(),
        }),
        "discharge" => Fact::Discharge {
            institution: e.institution,
            mdtrt_id: e.mdtrt_id?,
            end_ms: e.begin_ms.unwrap_or(e.at_ms),
            at_ms: e.at_ms,
        },
        "admission_cancel" => Fact::AdmissionCancel {
            institution: e.institution,
            mdtrt_id: e.mdtrt_id?,
            at_ms: e.at_ms,
        },
        "settlement" => Fact::Settlement(Settlement {
            person: e.person_key?,
            institution: e.institution,
            insured: e.insured.unwrap_or_default(),
            treatment: e.treatment.unwrap_or_default(),
            kind: SettleKind::parse(e.med_type.as_deref().unwrap_or_default())?,
            mdtrt_id: e.mdtrt_id,
            setl_id: e.setl_id,
            amount: e.amount.unwrap_or_default(),
            invono: e.invono,
            bill: e.bill,
            drugs: e
                .drugs
                .unwrap_or_default()
                .split(';')
                .filter_map(|item| {
                    let (code, quantity) = item.rsplit_once(':')?;
                    Some((code.to_owned(), quantity.parse().ok()?))
                })
                .collect(),
            at_ms: e.at_ms,
            msgid: e.msgid.unwrap_or_default(),
        }),
        "cancel" => Fact::Cancel {
            institution: e.institution,
            setl_id: e.setl_id?,
            at_ms: e.at_ms,
        },
        "reversal" => Fact::Reversal {
            institution: e.institution,
            omsgid: e.msgid?,
            at_ms: e.at_ms,
        },
        _ => return None,
    })
}
