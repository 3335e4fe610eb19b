//! The journal: what the request path writes to the ledger, and the
//! resolution of calls whose outcome is unknown.
//!
//! A settlement-affecting request is journalled before it is forwarded
//! (pending) and again before its answer leaves the gateway (done, refused or
//! unknown), keyed by (caller, msgid). A repeat of a finished request gets the
//! journalled reply without reaching the platform; a repeat of one in flight
//! waits for it, boundedly, then gets 409. An unknown outcome (timeout,
//! connection lost after sending, an unreadable answer) is resolved by the
//! gateway itself: a 2601 reversal naming the original msgid and the person
//! the original named (its `psn_no`, journalled with the pending entry:
//! [`psn_no`]), repeated with back-off until the platform acknowledges it —
//! never by re-sending the settlement. The person number is never logged,
//! nor put in spans or metrics. Entries a crash left pending or unknown are
//! reversed too, by start-up recovery and by a periodic sweep — but only
//! once nothing can still be forwarding them (see *Orphans*).
//!
//! # Orphans
//!
//! Several replicas may share one ledger, so an unresolved entry in it may be
//! a call another live gateway is forwarding right now — one that may yet be
//! answered `200` to the hospital. Reversing it would undo a settlement the
//! hospital was told stands. Hence recovery only ever takes **orphans**:
//!
//! * The **orphan age** ([`orphan_age`], computed once from the configuration
//!   into [`Gateway::orphan_age`]) is the longest a live gateway can keep an
//!   entry pending: its `received_at_ms` is stamped before the pending entry
//!   is journalled (a write that gives up after [`ledger::CALL_TIMEOUT`]),
//!   then the platform call runs (at most the longest upstream timeout of any
//!   pace in any region, [`Config::longest_upstream_timeout`]), then the
//!   final write (again at most [`ledger::CALL_TIMEOUT`]); plus
//!   [`ORPHAN_MARGIN`] for scheduling and for replicas' clocks that disagree a
//!   little (`received_at_ms` is the receiving replica's clock). With the
//!   default timeouts: 20 s + 2 × 5 s + 5 s = 35 s.
//! * A **pending** entry older than the orphan age is an orphan: whoever
//!   received it has died, or gave up on it.
//! * An **unknown** entry is always safe to reverse (its call has ended; the
//!   hospital was told the outcome is unknown; a 2601 is idempotent and
//!   resolving an entry to the state it already has is a no-op), but its own
//!   gateway is reversing it: the sweep leaves it to that gateway unless it is
//!   older than twice the orphan age and nobody has counted an attempt on it
//!   lately.
//!
//! **At start-up** ([`recover`]), only entries received *before this process
//! started* ([`Gateway::started_at_ms`]) are looked at — requests arriving
//! during recovery are never taken by it, so the pipeline need not wait for
//! it. Unknown ones are reversed at once; pending ones older than the orphan
//! age at once; younger pending ones are re-read when they reach the orphan
//! age and reversed only if still pending (otherwise their gateway answered
//! them, and they are left alone). `/readyz` turns ready when all of that is
//! done: after at most the orphan age, plus the reversals themselves.
//!
//! **The sweep** ([`sweep_forever`], every [`SWEEP_EVERY`], once start-up
//! recovery is done) does the same for replicas that died for good: pending
//! entries older than the orphan age and unknown ones older than twice that,
//! in both cases only when no resolution attempt was counted on them for
//! the orphan age plus the longest back-off (so that a live replica's
//! reversal still retrying is left alone), at most [`SWEEP_TAKES_MAX`] per
//! sweep. A sweep runs to its end before the next one starts; the
//! reversals it starts run in the background.
//!
//! **Before every attempt** a reversal re-reads its entry: recovery's and the
//! sweep's ([`resolve_orphan`]) stop as soon as it is no longer pending or
//! unknown (done, refused, reversed, confirmed). After the platform
//! acknowledges, the entry is resolved reversed; had it become done or refused
//! meanwhile, a live call and a recovery crossed — which the orphan age rules
//! out, so it is logged at error level (the reversal stands at the platform,
//! so the journal says reversed). The request path's own reversal
//! ([`resolve`]) also goes ahead over a `done` it wrote without being sure it
//! had (its hospital was told the call is being reversed). Within one process
//! an entry is never reversed twice at once ([`Resolving`]).
//!
//! # Refusals
//!
//! A message from an identified caller that the gateway refuses before
//! forwarding it — unreadable (400), failing validation (400), content that
//! contradicts the caller's identity or role (403), a reused or still
//! in-flight msgid (409), too large (413) — is journalled in the ledger's
//! append-only `refusals` table ([`RefusalJournal`]): the caller, what the
//! message named as far as it could be read (msgid, infno, institution,
//! regions), the error code, the HTTP status, and the SHA-256 of the body
//! bytes — never the body, never personal data.
//!
//! This is kept **off the critical path**: the answer never waits for the
//! disk. A refusal is handed to a bounded queue ([`REFUSAL_QUEUE`]) and a
//! background task writes it through the ledger's group-commit writer; when
//! the queue is full the refusal is dropped and counted
//! (`jjj_refusals_dropped_total{reason="queue_full"}`), a failed write likewise
//! (`reason="ledger_error"`), and the refusal is still logged and counted in
//! `jjj_refusals_total`.
//!
//! **Not journalled** (metrics only): rate-limited requests (429) and requests
//! shed under load (503), so that a flood cannot fill the disk — the
//! institution's rate limit is checked before a message is even read, which
//! also bounds how many refusals one caller can have journalled; a caller the
//! certificate does not identify (there is nobody to attribute it to); and
//! failures of the platform or of the ledger itself (5xx), which the journal
//! entry of the settlement records where it matters. See [`journals_refusal`].

use crate::config::Config;
use crate::identity::Caller;
use crate::metrics::RefusalJournalCounters;
use crate::state::Gateway;
use contracts::model::envelope::RequestEnvelope;
use contracts::model::reversal::{Reversal, ReversalInput};
use contracts::{Answer, AnswerBody, DateTime, ErrorCode, Infno, Refusal, Request, RequestBody};
use ledger::{Answered, Entry, Finish, Key, NewEntry, Reply, State};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;

/// The longest a repeat waits for the same message still in flight.
pub const IN_FLIGHT_WAIT_MS_MAX: u64 = 5_000;
/// The longest pause between two reversal attempts.
pub const REVERSAL_BACKOFF_MS_MAX: u64 = 30_000;

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    DateTime::now().unix_millis()
}

/// A stable digest of a request, taken of its national encoding
/// (`adapters::national::encode_request`): SHA-256, so that the same message
/// sent again in any dialect, with any spacing, digests alike.
pub fn digest(national: &[u8]) -> String {
    contracts::hex::sha256(national)
}

/// The ledger key of a request from `caller`.
pub fn key(caller: &Caller, request: &Request) -> Key {
    Key {
        caller: caller.institution.code.clone(),
        msgid: request.envelope.msgid.clone().unwrap_or_default(),
    }
}

/// The person a request names (`psn_no`) and where it says so, for the
/// transactions that carry one person: settlements and pre-settlements, their
/// cancels, registration, admission (`mdtrtinfo`), discharge (`dscginfo`) and
/// reversal. `None` for the others, and when the field is absent or empty.
fn named_person(request: &Request) -> Option<(&str, &'static str)> {
    let (number, path) = match &request.input {
        RequestBody::OutpatientPreSettle(i)
        | RequestBody::OutpatientSettle(i)
        | RequestBody::InpatientPreSettle(i)
        | RequestBody::InpatientSettle(i) => (&i.data.psn_no, "input.data.psn_no"),
        RequestBody::PharmacyPreSettle(i) | RequestBody::PharmacySettle(i) => {
            (&i.data.psn_no, "input.data.psn_no")
        }
        RequestBody::OutpatientSettleCancel(i)
        | RequestBody::InpatientSettleCancel(i)
        | RequestBody::PharmacySettleCancel(i) => (&i.data.psn_no, "input.data.psn_no"),
        RequestBody::OutpatientRegister(i) => (&i.data.psn_no, "input.data.psn_no"),
        RequestBody::Admission(i) => (&i.mdtrtinfo.psn_no, "input.mdtrtinfo.psn_no"),
        RequestBody::Discharge(i) => (&i.dscginfo.psn_no, "input.dscginfo.psn_no"),
        RequestBody::Reversal(i) => (&i.data.psn_no, "input.data.psn_no"),
        _ => return None,
    };
    number
        .as_deref()
        .filter(|n| !n.is_empty())
        .map(|n| (n, path))
}

/// The person number a request names, as the journal keeps it; a number the
/// journal cannot keep (longer than [`ledger::PSN_NO_MAX_CHARS`] characters,
/// or with a control character) refuses the request (400, `invalid_value`)
/// before it is journalled or forwarded — by a gateway that journals: a call
/// it might have to reverse must be journalled with the number its 2601 will
/// carry. The refusal does not quote the number.
pub fn psn_no(request: &Request) -> Result<Option<ledger::PsnNo>, Refusal> {
    let Some((number, path)) = named_person(request) else {
        return Ok(None);
    };
    ledger::PsnNo::new(number).map(Some).map_err(|_| {
        Refusal::new(
            ErrorCode::InvalidValue,
            format!(
                "{path}: a person number is 1 to {} characters without control characters",
                ledger::PSN_NO_MAX_CHARS
            ),
        )
    })
}

/// The pending entry of a request about to be forwarded to `region`, with
/// the person it names ([`psn_no`]: refused when the journal cannot keep it).
/// `national` is the request's national encoding, of which the digest is taken.
pub fn new_entry(
    caller: &Caller,
    request: &Request,
    national: &[u8],
    region: contracts::Admdvs,
) -> Result<NewEntry, Refusal> {
    let envelope = &request.envelope;
    let text = |r: Option<contracts::Region>| r.map(|r| r.to_string()).unwrap_or_default();
    let (original_msgid, cancels_setl_id) = match &request.input {
        RequestBody::Reversal(r) => (r.data.omsgid.clone(), None),
        RequestBody::OutpatientSettleCancel(c)
        | RequestBody::InpatientSettleCancel(c)
        | RequestBody::PharmacySettleCancel(c) => (None, c.data.setl_id.clone()),
        _ => (None, None),
    };
    Ok(NewEntry {
        key: key(caller, request),
        infno: request.infno().code().to_owned(),
        institution: envelope.fixmedins_code.clone().unwrap_or_default(),
        insured: text(envelope.insuplc_admdvs),
        treatment: text(envelope.mdtrtarea_admvs),
        region: region.to_string(),
        digest: digest(national),
        original_msgid,
        cancels_setl_id,
        psn_no: psn_no(request)?,
        received_at_ms: now_ms(),
    })
}

/// What a finished exchange writes: the split's amounts and ids, and the
/// reply to replay, `redacted`: the answer encoded in the caller's dialect
/// *without* personal data ([`adapters::Dialect::encode_answer_redacted`]).
pub fn finish(
    state: State,
    answer: &Answer,
    redacted: Vec<u8>,
    dialect: &'static dyn adapters::Dialect,
    status: u16,
    error_code: Option<u16>,
    anomalies: Vec<String>,
) -> Finish {
    let mut finish = Finish {
        state,
        answered: Answered {
            error_code,
            anomalies,
            ..Answered::default()
        },
        reply: Reply {
            status,
            media_type: dialect.media_type().to_owned(),
            bytes: redacted,
            finished_at_ms: now_ms(),
        },
    };
    if let Some(
        AnswerBody::OutpatientSettle(o)
        | AnswerBody::OutpatientSettleCancel(o)
        | AnswerBody::InpatientSettle(o)
        | AnswerBody::InpatientSettleCancel(o)
        | AnswerBody::PharmacySettle(o)
        | AnswerBody::PharmacySettleCancel(o),
    ) = &answer.output
    {
        let info = &o.setlinfo;
        finish.answered.setl_id = info.setl_id.clone();
        finish.answered.mdtrt_id = info.mdtrt_id.clone();
        finish.answered.insutype = info.insutype.as_ref().map(|c| c.code().to_owned());
        finish.answered.med_type = info.med_type.as_ref().map(|c| c.code().to_owned());
        finish.answered.clr_type = info.clr_type.as_ref().map(|c| c.code().to_owned());
        finish.answered.setl_time_ms = info.setl_time.map(DateTime::unix_millis);
        finish.answered.medfee_sumamt = info.medfee_sumamt;
        finish.answered.fund_pay_sumamt = info.fund_pay_sumamt;
        finish.answered.acct_pay = info.acct_pay;
        finish.answered.psn_cash_pay = info.psn_cash_pay;
    }
    if let Some(AnswerBody::OutpatientRegister(o) | AnswerBody::Admission(o)) = &answer.output {
        finish.answered.mdtrt_id = o.data.mdtrt_id.clone();
    }
    finish
}

static REVERSAL_SERIAL: AtomicU64 = AtomicU64::new(0);

/// The gateway's own 2601 for an entry whose outcome is unknown.
fn reversal_for(entry: &Entry) -> Option<Request> {
    let region = |text: &str| {
        contracts::Admdvs::parse(text)
            .ok()
            .map(contracts::Region::new)
    };
    let serial = REVERSAL_SERIAL.fetch_add(1, Ordering::Relaxed) % 10_000;
    let envelope = RequestEnvelope {
        msgid: Some(format!("JJJGW{}{serial:04}", DateTime::now().to_compact())),
        mdtrtarea_admvs: region(&entry.new.treatment),
        insuplc_admdvs: region(&entry.new.insured),
        fixmedins_code: Some(entry.new.institution.clone()),
        infver: Some("V1.0".into()),
        inf_time: Some(DateTime::now().truncated_to_seconds()),
        recer_sys_code: Some("YBXT".into()),
        ..Default::default()
    };
    // The person the reversed call named, as journalled with it. An entry
    // journalled before the ledger kept person numbers (schema version 4 and
    // earlier) has none: "-" is sent then, as the gateway always did — a
    // platform that checks psn_no against the settlement refuses that 2601,
    // and the entry stays unknown (its attempts counted) for officers.
    let psn_no = entry
        .new
        .psn_no
        .as_ref()
        .map_or("-", ledger::PsnNo::as_str)
        .to_owned();
    let data = Reversal {
        psn_no: Some(psn_no),
        omsgid: Some(entry.new.key.msgid.clone()),
        oinfno: Some(entry.new.infno.clone()),
        ..Default::default()
    };
    Some(Request {
        envelope,
        input: RequestBody::Reversal(ReversalInput {
            data,
            ..Default::default()
        }),
    })
}

/// Added to the orphan age: scheduling, and the clocks of replicas that
/// disagree a little (an entry's `received_at_ms` is its replica's clock).
pub const ORPHAN_MARGIN: Duration = Duration::from_secs(5);
/// How often the sweep looks for orphans.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// The most reversals one sweep starts; the rest wait for the next sweep.
pub const SWEEP_TAKES_MAX: usize = 256;

/// The orphan age of `config`: the longest a live gateway can keep an entry
/// pending — the journalling write before forwarding ([`ledger::CALL_TIMEOUT`]),
/// the longest upstream timeout of any pace in any region, the final write
/// ([`ledger::CALL_TIMEOUT`] again) — plus [`ORPHAN_MARGIN`]. A pending entry
/// older than that is an orphan: nothing can still be forwarding it. See the
/// module documentation.
pub fn orphan_age(config: &Config) -> Duration {
    config.longest_upstream_timeout() + ledger::CALL_TIMEOUT * 2 + ORPHAN_MARGIN
}

/// A duration in milliseconds, as the ledger's times are.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Whether a 2601 can reverse the transaction `infno`.
fn reversible(infno: &str) -> bool {
    Infno::from_code(infno).is_some_and(|i| i.traits().reversible)
}

/// The entries this process is reversing right now, so that the request
/// path, start-up recovery and the sweep never reverse one entry twice at
/// once here.
#[derive(Debug, Default)]
pub struct Resolving(Mutex<HashSet<Key>>);

impl Resolving {
    fn keys(&self) -> std::sync::MutexGuard<'_, HashSet<Key>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `key`, unless this process is already reversing it.
    fn claim(&self, key: &Key) -> Option<Claim<'_>> {
        self.keys().insert(key.clone()).then(|| Claim {
            resolving: self,
            key: key.clone(),
        })
    }

    /// Whether this process is reversing `key` right now.
    pub fn contains(&self, key: &Key) -> bool {
        self.keys().contains(key)
    }
}

/// One entry being reversed; released when dropped.
struct Claim<'a> {
    resolving: &'a Resolving,
    key: Key,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.resolving.keys().remove(&self.key);
    }
}

/// Who reverses an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asker {
    /// The request path of the call itself, which answered its hospital
    /// "unknown" or "being reversed".
    TheCall,
    /// Start-up recovery or the sweep: the entry is an orphan.
    Recovery,
}

impl Asker {
    /// Whether an entry in `state` is still to be reversed.
    fn still_to_reverse(self, state: State) -> bool {
        match self {
            // A `done` here is a final write that failed yet happened: the
            // hospital was told the call is being reversed, so it is.
            Asker::TheCall => matches!(state, State::Pending | State::Unknown | State::Done),
            // Anything answered (done, refused) or resolved belongs to
            // whoever did that; only pending and unknown are orphans' states.
            Asker::Recovery => state.is_unresolved(),
        }
    }
}

fn next_pause(pause: Duration) -> Duration {
    (pause * 2).min(Duration::from_millis(REVERSAL_BACKOFF_MS_MAX))
}

/// Reverses an entry whose outcome is unknown until its platform acknowledges,
/// then records it reversed: the request path's own resolution of its call.
/// Runs in the background; never re-sends the original. Stops, before any
/// attempt, when the entry was meanwhile resolved (reversed, confirmed) or
/// refused.
pub async fn resolve(gateway: Arc<Gateway>, entry: Entry) {
    reverse(gateway, entry, Asker::TheCall).await
}

/// Reverses an orphan (start-up recovery, the sweep) until its platform
/// acknowledges, then records it reversed. Before every attempt the entry is
/// re-read: once it is no longer pending or unknown, nothing is done.
pub async fn resolve_orphan(gateway: Arc<Gateway>, entry: Entry) {
    reverse(gateway, entry, Asker::Recovery).await
}

async fn reverse(gateway: Arc<Gateway>, entry: Entry, asker: Asker) {
    let Some(ledger) = gateway.ledger.clone() else {
        return;
    };
    let Some(_claim) = gateway.resolving.claim(&entry.new.key) else {
        tracing::debug!(key = %entry.new.key, "already being reversed by this gateway");
        return;
    };
    let Some(request) = reversal_for(&entry) else {
        return;
    };
    let Some(index) = contracts::Admdvs::parse(&entry.new.region)
        .ok()
        .and_then(|r| gateway.routes.route(r))
    else {
        tracing::error!(infno = %entry.new.infno, region = %entry.new.region, "unknown outcome in a region no longer configured; left for officers");
        return;
    };
    let target = &gateway.upstreams.regions[index];
    let body = bytes::Bytes::from(target.region.dialect.encode_request(&request));
    let mut pause = Duration::from_millis(200);
    loop {
        // Re-read before every attempt: the call's gateway, another replica
        // or the hospital's own 2601 may have settled it meanwhile.
        match ledger.get(&entry.new.key).await {
            Ok(Some(current)) if asker.still_to_reverse(current.state) => {}
            Ok(Some(current)) => {
                tracing::info!(key = %entry.new.key, infno = %entry.new.infno, state = %current.state, "nothing to reverse: the entry is no longer unresolved");
                return;
            }
            Ok(None) => {
                tracing::error!(key = %entry.new.key, "the entry to reverse is not in the journal");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, key = %entry.new.key, "cannot re-read the entry to reverse; retrying");
                tokio::time::sleep(pause).await;
                pause = next_pause(pause);
                continue;
            }
        }
        let attempt = ledger.note_attempt(&entry.new.key).await.unwrap_or(0);
        let sent = gateway
            .upstreams
            .call(
                index,
                contracts::transaction::Pace::Medium,
                body.clone(),
                None,
            )
            .await;
        let acknowledged = sent
            .ok()
            .and_then(|bytes| {
                target
                    .region
                    .dialect
                    .decode_answer(Infno::Reversal, &bytes, &gateway.decode_limits)
                    .ok()
            })
            .is_some_and(|a| a.envelope.is_success());
        if !acknowledged {
            gateway.metrics.reversal("retry");
            tokio::time::sleep(pause).await;
            pause = next_pause(pause);
            continue;
        }
        gateway.metrics.reversal("acknowledged");
        if asker == Asker::Recovery {
            if let Ok(Some(current)) = ledger.get(&entry.new.key).await {
                if matches!(current.state, State::Done | State::Refused) {
                    tracing::error!(
                        key = %entry.new.key,
                        infno = %entry.new.infno,
                        region = %entry.new.region,
                        state = %current.state,
                        received_at_ms = entry.new.received_at_ms,
                        orphan_age_ms = millis(gateway.orphan_age),
                        "a live call and a recovery crossed: the platform acknowledged the reversal of a call that was meanwhile answered; \
                         this must not happen with the orphan age (check the replicas' clocks and timeouts); the journal records what the platform did: reversed"
                    );
                }
            }
        }
        match ledger
            .resolve(&entry.new.key, State::Reversed, now_ms())
            .await
        {
            Ok(()) => {
                tracing::info!(key = %entry.new.key, infno = %entry.new.infno, region = %entry.new.region, attempt, "unknown outcome reversed");
                return;
            }
            Err(ledger::LedgerError::Unavailable(error)) => {
                // A 2601 is idempotent: it is sent again, and recorded then.
                tracing::error!(%error, key = %entry.new.key, "reversal acknowledged but not recorded; will retry");
                tokio::time::sleep(pause).await;
                pause = next_pause(pause);
            }
            Err(error) => {
                tracing::error!(%error, key = %entry.new.key, "reversal acknowledged but the journal refuses to record it; left for officers");
                return;
            }
        }
    }
}

/// What start-up recovery does with an unresolved entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AtStart {
    /// Received after this process started: a live call, not recovery's.
    Leave,
    /// Reverse it now: unknown, or pending for longer than the orphan age.
    Now,
    /// Pending and younger than the orphan age: re-read it at this time
    /// (Unix ms) and reverse it only if it is still pending.
    At(i64),
}

fn at_start(entry: &Entry, started_at_ms: i64, orphan_ms: i64, now_ms: i64) -> AtStart {
    if entry.new.received_at_ms >= started_at_ms {
        return AtStart::Leave;
    }
    match entry.state {
        State::Unknown => AtStart::Now,
        State::Pending => {
            let orphan_at = entry.new.received_at_ms.saturating_add(orphan_ms);
            if orphan_at <= now_ms {
                AtStart::Now
            } else {
                AtStart::At(orphan_at)
            }
        }
        _ => AtStart::Leave,
    }
}

/// Waits until a young pending entry reaches the orphan age, re-reads it, and
/// reverses it if it is still pending; otherwise its gateway answered it.
async fn recover_young(gateway: Arc<Gateway>, entry: Entry, orphan_at_ms: i64) {
    let Some(ledger) = gateway.ledger.clone() else {
        return;
    };
    let wait = orphan_at_ms.saturating_sub(now_ms());
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())).await;
    }
    loop {
        match ledger.get(&entry.new.key).await {
            Ok(Some(current)) if current.state == State::Pending => {
                tracing::warn!(key = %entry.new.key, infno = %entry.new.infno, "pending for longer than the orphan age: reversing it");
                return resolve_orphan(gateway, current).await;
            }
            Ok(Some(current)) => {
                tracing::info!(key = %entry.new.key, state = %current.state, "a call in flight at start-up was answered by its gateway; left alone");
                return;
            }
            Ok(None) => return,
            Err(error) => {
                tracing::error!(%error, "cannot re-read the journal to recover; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// At start-up: the entries left unresolved by calls received before this
/// process started are reversed once they are orphans — unknown ones and
/// pending ones older than the orphan age at once, younger pending ones when
/// they reach it and only if still pending — before the gateway reports
/// ready. See the module documentation.
pub async fn recover(gateway: Arc<Gateway>) {
    let Some(ledger) = gateway.ledger.clone() else {
        gateway.recovered.store(true, Ordering::Relaxed);
        return;
    };
    let entries = loop {
        match ledger.unresolved().await {
            Ok(entries) => break entries,
            Err(error) => {
                tracing::error!(%error, "cannot read the journal to recover; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let orphan_ms = millis(gateway.orphan_age);
    let (mut now, mut later) = (0usize, 0usize);
    let mut tasks = tokio::task::JoinSet::new();
    for entry in entries {
        let when = at_start(&entry, gateway.started_at_ms, orphan_ms, now_ms());
        if when == AtStart::Leave {
            continue;
        }
        if !reversible(&entry.new.infno) {
            tracing::warn!(key = %entry.new.key, infno = %entry.new.infno, "an unfinished call that 2601 cannot reverse; left for officers");
            continue;
        }
        match when {
            AtStart::At(orphan_at_ms) => {
                later += 1;
                tasks.spawn(recover_young(gateway.clone(), entry, orphan_at_ms));
            }
            _ => {
                now += 1;
                tasks.spawn(resolve_orphan(gateway.clone(), entry));
            }
        }
    }
    if now + later > 0 {
        tracing::info!(
            now,
            later,
            orphan_age_ms = orphan_ms,
            "recovering the journal: reversing what a crash left, waiting for the orphan age of calls that may still be in flight"
        );
    }
    while tasks.join_next().await.is_some() {}
    gateway.recovered.store(true, Ordering::Relaxed);
    tracing::info!("journal recovered: nothing left pending or unknown by an earlier process");
}

/// What the sweep remembers from one run to the next: per unresolved entry,
/// its attempt count and since when (Unix ms) it has been that; the entries
/// already warned about.
#[derive(Debug, Default)]
pub struct SweepMemory {
    attempts: HashMap<Key, (u32, i64)>,
    warned: HashSet<Key>,
}

impl SweepMemory {
    /// Notes `entry`'s attempt count; returns since when it has been that.
    fn note(&mut self, entry: &Entry, now_ms: i64) -> i64 {
        let seen = self
            .attempts
            .entry(entry.new.key.clone())
            .or_insert((entry.attempts, now_ms));
        if seen.0 != entry.attempts {
            *seen = (entry.attempts, now_ms);
        }
        seen.1
    }

    /// Forgets the entries no longer unresolved.
    fn keep_only(&mut self, entries: &[Entry]) {
        let keys: HashSet<&Key> = entries.iter().map(|e| &e.new.key).collect();
        self.attempts.retain(|key, _| keys.contains(key));
        self.warned.retain(|key| keys.contains(key));
    }
}

/// Whether the sweep takes `entry`: pending and older than the orphan age,
/// or unknown and older than twice that — and with no resolution attempt
/// counted on it since `attempts_unchanged_since_ms` for the orphan age plus
/// the longest back-off (someone still counting is still reversing it).
fn abandoned(entry: &Entry, now_ms: i64, orphan_ms: i64, attempts_unchanged_since_ms: i64) -> bool {
    let age = now_ms.saturating_sub(entry.new.received_at_ms);
    let old_enough = match entry.state {
        State::Pending => age >= orphan_ms,
        State::Unknown => age >= orphan_ms.saturating_mul(2),
        _ => false,
    };
    let quiet_ms = orphan_ms.saturating_add(REVERSAL_BACKOFF_MS_MAX as i64);
    let quiet =
        entry.attempts == 0 || now_ms.saturating_sub(attempts_unchanged_since_ms) >= quiet_ms;
    old_enough && quiet
}

/// One sweep: reverses the orphans of replicas that died (see the module
/// documentation) in the background, at most [`SWEEP_TAKES_MAX`]; returns
/// how many it took.
pub async fn sweep(gateway: &Arc<Gateway>, memory: &mut SweepMemory) -> usize {
    let Some(ledger) = gateway.ledger.as_ref() else {
        return 0;
    };
    let entries = match tokio::time::timeout(SWEEP_EVERY, ledger.unresolved()).await {
        Ok(Ok(entries)) => entries,
        Ok(Err(error)) => {
            tracing::warn!(%error, "the sweep cannot read the journal");
            return 0;
        }
        Err(_) => {
            tracing::warn!("the sweep could not read the journal in time");
            return 0;
        }
    };
    let now = now_ms();
    let orphan_ms = millis(gateway.orphan_age);
    memory.keep_only(&entries);
    let mut taken = 0;
    for entry in entries {
        let since = memory.note(&entry, now);
        if !abandoned(&entry, now, orphan_ms, since) || gateway.resolving.contains(&entry.new.key) {
            continue;
        }
        if !reversible(&entry.new.infno) {
            if memory.warned.insert(entry.new.key.clone()) {
                tracing::warn!(key = %entry.new.key, infno = %entry.new.infno, "an orphaned call that 2601 cannot reverse; left for officers");
            }
            continue;
        }
        if taken == SWEEP_TAKES_MAX {
            break;
        }
        taken += 1;
        tracing::warn!(key = %entry.new.key, infno = %entry.new.infno, state = %entry.state, age_ms = now.saturating_sub(entry.new.received_at_ms), "an orphaned entry: no gateway can still be forwarding it; reversing it");
        tokio::spawn(resolve_orphan(gateway.clone(), entry));
    }
    taken
}

/// Sweeps every [`SWEEP_EVERY`], once start-up recovery is done; one sweep
/// at a time. Runs for the life of the process.
pub async fn sweep_forever(gateway: Arc<Gateway>) {
    if gateway.ledger.is_none() {
        return;
    }
    let mut memory = SweepMemory::default();
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: that moment belongs to start-up recovery.
    tick.tick().await;
    loop {
        tick.tick().await;
        if gateway.recovered.load(Ordering::Relaxed) {
            sweep(&gateway, &mut memory).await;
        }
    }
}

/// How many refusals may wait for the background writer; more are dropped (and counted).
pub const REFUSAL_QUEUE: usize = 1024;
/// How many queued refusals the writer hands the ledger at once (one group commit).
const REFUSAL_BATCH: usize = 64;
/// The longest text kept of a field a refused message named (the ledger's limit).
const REFUSAL_TEXT_MAX: usize = 128;

/// Whether a refusal with `code` is journalled: every 4xx the gateway gives
/// before forwarding, except rate limiting (429), which is counted only.
/// 5xx (shed load, platform or ledger failures) are never journalled here.
pub fn journals_refusal(code: ErrorCode) -> bool {
    (400..500).contains(&code.http_status()) && code != ErrorCode::RateLimited
}

/// What a refused message named, as far as it could be read.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// The transaction.
    pub infno: Option<Infno>,
    /// The sender's msgid.
    pub msgid: Option<String>,
    /// The institution named (`fixmedins_code`).
    pub institution: Option<String>,
    /// The insured region named.
    pub insured: Option<String>,
    /// The treatment region named.
    pub treatment: Option<String>,
}

impl Seen {
    /// What `request` names.
    pub fn of(request: &Request) -> Seen {
        let envelope = &request.envelope;
        Seen {
            infno: Some(request.infno()),
            msgid: envelope.msgid.clone(),
            institution: envelope.fixmedins_code.clone(),
            insured: envelope.insuplc_admdvs.map(|r| r.to_string()),
            treatment: envelope.mdtrtarea_admvs.map(|r| r.to_string()),
        }
    }
}

/// A field as the ledger takes it: empty is absent, control characters become
/// `?`, at most [`REFUSAL_TEXT_MAX`] bytes (cut at a character boundary).
fn bounded(text: Option<&str>) -> Option<String> {
    let text = text.filter(|t| !t.is_empty())?;
    let mut out = String::with_capacity(text.len().min(REFUSAL_TEXT_MAX));
    for c in text.chars() {
        let c = if c.is_control() { '?' } else { c };
        if out.len() + c.len_utf8() > REFUSAL_TEXT_MAX {
            break;
        }
        out.push(c);
    }
    Some(out)
}

/// The ledger row of a refusal: who, what the message named, why, and a
/// digest of its bytes.
pub fn refusal_row(
    caller: &Caller,
    seen: &Seen,
    code: ErrorCode,
    body: &[u8],
    received_at_ms: i64,
) -> ledger::Refusal {
    ledger::Refusal {
        caller: caller.institution.code.clone(),
        msgid: bounded(seen.msgid.as_deref()),
        infno: seen.infno.map(|i| i.code().to_owned()),
        institution: bounded(seen.institution.as_deref()),
        insured: bounded(seen.insured.as_deref()),
        treatment: bounded(seen.treatment.as_deref()),
        error_code: code.number(),
        http_status: code.http_status(),
        digest: contracts::hex::sha256(body),
        received_at_ms,
    }
}

/// The queue to the background task that journals refusals.
pub struct RefusalJournal {
    tx: mpsc::Sender<ledger::Refusal>,
    counters: Arc<RefusalJournalCounters>,
}

impl RefusalJournal {
    /// Starts the background writer (on the current Tokio runtime). It ends
    /// when the journal is dropped, after writing what is queued.
    pub fn start(ledger: ledger::Ledger, counters: Arc<RefusalJournalCounters>) -> RefusalJournal {
        let (tx, mut rx) = mpsc::channel::<ledger::Refusal>(REFUSAL_QUEUE);
        let written = counters.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(REFUSAL_BATCH);
            while rx.recv_many(&mut batch, REFUSAL_BATCH).await > 0 {
                // Handed over together, the writes share one group commit.
                let mut writes = tokio::task::JoinSet::new();
                for refusal in batch.drain(..) {
                    let ledger = ledger.clone();
                    writes.spawn(async move { ledger.refuse(refusal).await });
                }
                while let Some(result) = writes.join_next().await {
                    match result {
                        Ok(Ok(_)) => {
                            written.written.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Err(error)) => {
                            written.dropped_ledger_error.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(%error, "a refusal could not be journalled");
                        }
                        Err(error) => {
                            written.dropped_ledger_error.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(%error, "the task journalling a refusal failed");
                        }
                    }
                }
            }
        });
        RefusalJournal { tx, counters }
    }

    /// Queues a refusal for the background writer; never waits. A full queue
    /// drops it and counts the drop.
    pub fn record(&self, refusal: ledger::Refusal) {
        if self.tx.try_send(refusal).is_err() {
            self.counters
                .dropped_queue_full
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!("refusal journal queue full: a refusal was not journalled");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn entry(state: State, received_at_ms: i64, attempts: u32) -> Entry {
        Entry {
            new: NewEntry {
                key: Key::new("H11010500123", format!("M{received_at_ms}")),
                infno: "2207".into(),
                institution: "H11010500123".into(),
                insured: "130600".into(),
                treatment: "110105".into(),
                region: "130000".into(),
                digest: "ab".into(),
                original_msgid: None,
                cancels_setl_id: None,
                psn_no: None,
                received_at_ms,
            },
            state,
            answered: Answered::default(),
            reply: None,
            resolved_at_ms: None,
            attempts,
        }
    }

    /// The national fixture of `infno` with its person number replaced by `number`.
    fn fixture_naming(infno: Infno, number: &str) -> Request {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../contracts/fixtures/national")
            .join(format!("{}-request.json", infno.code()));
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("13000000000012345678"), "{infno}");
        let text = text.replace("13000000000012345678", number);
        adapters::national::decode_request(text.as_bytes(), &adapters::Limits::DEFAULT).unwrap()
    }

    #[test]
    fn every_journalled_transaction_journals_the_person_it_names() {
        let journalled: Vec<Infno> = Infno::ALL
            .iter()
            .copied()
            .filter(|i| i.traits().journalled)
            .collect();
        // 2201, 2207, 2208, 2304, 2305, 2401 (mdtrtinfo), 2402 (dscginfo), 2102, 2103, 2601.
        assert_eq!(journalled.len(), 10, "{journalled:?}");
        for infno in journalled {
            let number = format!("P{}X京{}", infno.code(), "0".repeat(10));
            let request = fixture_naming(infno, &number);
            let kept = psn_no(&request).unwrap();
            assert_eq!(
                kept.as_ref().map(ledger::PsnNo::as_str),
                Some(number.as_str()),
                "{infno}"
            );
        }
        // A transaction that names no one person journals none.
        let request = fixture_naming(Infno::OutpatientFeeUpload, "13000000000012345678");
        assert_eq!(psn_no(&request).unwrap(), None);
    }

    #[test]
    fn a_person_number_the_journal_cannot_keep_is_refused_without_quoting_it() {
        let long = "7".repeat(ledger::PSN_NO_MAX_CHARS + 1);
        for (infno, path) in [
            (Infno::OutpatientSettle, "input.data.psn_no"),
            (Infno::Admission, "input.mdtrtinfo.psn_no"),
            (Infno::Discharge, "input.dscginfo.psn_no"),
        ] {
            let refusal = psn_no(&fixture_naming(infno, &long)).unwrap_err();
            assert_eq!(refusal.code, ErrorCode::InvalidValue);
            assert!(refusal.detail.starts_with(path), "{}", refusal.detail);
            assert!(!refusal.detail.contains("7777"), "{}", refusal.detail);
        }
        // Exactly the limit is kept.
        let most = "7".repeat(ledger::PSN_NO_MAX_CHARS);
        assert!(psn_no(&fixture_naming(Infno::OutpatientSettle, &most)).is_ok());
    }

    #[test]
    fn the_gateways_reversal_names_the_journalled_person() {
        let number = ledger::PsnNo::new("13000000000012345678").unwrap();
        let mut e = entry(State::Unknown, 1, 0);
        e.new.psn_no = Some(number.clone());
        let data = |request: Request| match request.input {
            RequestBody::Reversal(r) => r.data,
            other => panic!("not a reversal: {:?}", other.infno()),
        };
        let sent = data(reversal_for(&e).unwrap());
        assert_eq!(sent.psn_no.as_deref(), Some(number.as_str()));
        assert_eq!(sent.omsgid.as_deref(), Some(e.new.key.msgid.as_str()));
        assert_eq!(sent.oinfno.as_deref(), Some("2207"));
        // Journalled before the ledger kept person numbers: "-".
        e.new.psn_no = None;
        assert_eq!(data(reversal_for(&e).unwrap()).psn_no.as_deref(), Some("-"));
    }

    #[test]
    fn the_orphan_age_follows_the_longest_timeout() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/gateway.example.toml"),
        )
        .unwrap();
        let mut config = Config::parse(&text, std::path::Path::new(".")).unwrap();
        // 20 s (long) + 2 × 5 s (the ledger's writes) + 5 s.
        assert_eq!(orphan_age(&config), Duration::from_secs(35));
        // Whichever pace is the longest, in whichever region.
        config.regions[1].timeouts.medium = Duration::from_secs(40);
        assert_eq!(orphan_age(&config), Duration::from_secs(55));
    }

    #[test]
    fn start_up_takes_only_orphans_of_earlier_calls() {
        let (started, orphan, now) = (1_000_000, 35_000, 1_000_500);
        let at = |state, received| at_start(&entry(state, received, 0), started, orphan, now);
        // Received before the start and older than the orphan age: at once.
        assert_eq!(at(State::Pending, started - 40_000), AtStart::Now);
        // Young: possibly another live gateway's call in flight: re-read at the orphan age.
        assert_eq!(
            at(State::Pending, started - 2_000),
            AtStart::At(started - 2_000 + orphan)
        );
        // Unknown: its call has ended; a 2601 is idempotent.
        assert_eq!(at(State::Unknown, started - 2_000), AtStart::Now);
        // Received after the start (this process's own requests, or another
        // replica's): never start-up recovery's.
        assert_eq!(at(State::Pending, started), AtStart::Leave);
        assert_eq!(at(State::Unknown, started + 100), AtStart::Leave);
        assert_eq!(at(State::Done, started - 40_000), AtStart::Leave);
    }

    #[test]
    fn the_sweep_takes_abandoned_entries_only() {
        let (orphan, now) = (35_000, 10_000_000);
        let quiet = orphan + REVERSAL_BACKOFF_MS_MAX as i64;
        let taken = |state, age, attempts, since| {
            abandoned(&entry(state, now - age, attempts), now, orphan, since)
        };
        assert!(!taken(State::Pending, orphan - 1, 0, now));
        assert!(taken(State::Pending, orphan, 0, now));
        // An unknown entry is its own gateway's to reverse, for a while.
        assert!(!taken(State::Unknown, orphan, 0, now));
        assert!(taken(State::Unknown, 2 * orphan, 0, now));
        // Someone still counting attempts is still reversing it.
        assert!(!taken(State::Unknown, 10 * orphan, 3, now - quiet + 1));
        assert!(taken(State::Unknown, 10 * orphan, 3, now - quiet));
        assert!(!taken(State::Done, 10 * orphan, 0, now));
    }

    #[test]
    fn the_sweep_remembers_since_when_attempts_stand_still() {
        let mut memory = SweepMemory::default();
        let mut e = entry(State::Unknown, 0, 1);
        assert_eq!(memory.note(&e, 100), 100);
        assert_eq!(memory.note(&e, 200), 100);
        e.attempts = 2;
        assert_eq!(memory.note(&e, 300), 300);
        memory.keep_only(&[]);
        assert_eq!(memory.note(&e, 400), 400);
    }

    #[test]
    fn one_process_reverses_an_entry_once_at_a_time() {
        let resolving = Resolving::default();
        let key = Key::new("H1", "M1");
        let claim = resolving.claim(&key).unwrap();
        assert!(resolving.contains(&key));
        assert!(resolving.claim(&key).is_none());
        drop(claim);
        assert!(!resolving.contains(&key));
        assert!(resolving.claim(&key).is_some());
    }

    #[test]
    fn recovery_leaves_answered_entries_alone_and_the_call_its_done() {
        for state in [
            State::Done,
            State::Refused,
            State::Reversed,
            State::Confirmed,
        ] {
            assert!(!Asker::Recovery.still_to_reverse(state), "{state}");
        }
        for state in [State::Pending, State::Unknown] {
            assert!(Asker::Recovery.still_to_reverse(state), "{state}");
            assert!(Asker::TheCall.still_to_reverse(state), "{state}");
        }
        assert!(Asker::TheCall.still_to_reverse(State::Done));
        assert!(!Asker::TheCall.still_to_reverse(State::Reversed));
    }

    #[test]
    fn which_refusals_are_journalled() {
        for code in [
            ErrorCode::Malformed,
            ErrorCode::MissingField,
            ErrorCode::InvalidValue,
            ErrorCode::Unbalanced,
            ErrorCode::InstitutionMismatch,
            ErrorCode::RegionMismatch,
            ErrorCode::RoleNotAllowed,
            ErrorCode::MsgidReused,
            ErrorCode::InFlight,
            ErrorCode::TooLarge,
        ] {
            assert!(journals_refusal(code), "{code}");
        }
        for code in [
            ErrorCode::RateLimited,
            ErrorCode::Overloaded,
            ErrorCode::LedgerUnavailable,
            ErrorCode::UpstreamTimeout,
            ErrorCode::UpstreamUnreachable,
            ErrorCode::Internal,
        ] {
            assert!(!journals_refusal(code), "{code}");
        }
    }

    #[test]
    fn fields_are_bounded_for_the_ledger() {
        assert_eq!(bounded(None), None);
        assert_eq!(bounded(Some("")), None);
        assert_eq!(bounded(Some("M1\n2")).as_deref(), Some("M1?2"));
        let long = "医".repeat(100); // 300 bytes
        let cut = bounded(Some(&long)).unwrap();
        assert!(cut.len() <= REFUSAL_TEXT_MAX && cut.len() > REFUSAL_TEXT_MAX - 3);
        assert!(cut.chars().all(|c| c == '医'));
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        // On this single-threaded runtime the background writer cannot run
        // while the test fills the queue without awaiting: exactly
        // REFUSAL_QUEUE refusals fit, the rest are dropped at once.
        let dir = std::env::temp_dir().join(format!(
            "jjj-refusal-queue-{}-{}",
            std::process::id(),
            now_ms()
        ));
        let url = format!("sqlite://{}/ledger.db", dir.display());
        let ledger = ledger::Ledger::open(&url).await.unwrap();
        let counters = Arc::new(RefusalJournalCounters::default());
        let journal = RefusalJournal::start(ledger.clone(), counters.clone());
        let row = ledger::Refusal {
            caller: "H11010500123".into(),
            msgid: None,
            infno: None,
            institution: None,
            insured: None,
            treatment: None,
            error_code: 1001,
            http_status: 400,
            digest: contracts::hex::sha256(b"x"),
            received_at_ms: 1,
        };
        let extra = 100;
        let started = std::time::Instant::now();
        for _ in 0..REFUSAL_QUEUE + extra {
            journal.record(row.clone());
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(
            counters.dropped_queue_full.load(Ordering::Relaxed),
            extra as u64
        );
        drop(journal);
        // What was queued is written.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while counters.written.load(Ordering::Relaxed) < REFUSAL_QUEUE as u64 {
            assert!(std::time::Instant::now() < deadline, "not written in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(ledger.refusals(0, 10).await.unwrap().len(), REFUSAL_QUEUE);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
