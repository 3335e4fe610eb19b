//! The journal: what the request path writes to the ledger, and the
//! resolution of calls whose outcome is unknown.
//!
//! A settlement-affecting request is journalled before it is forwarded
//! (pending) and again before its answer leaves the gateway (done, refused or
//! unknown), keyed by (caller, msgid). A repeat of a finished request gets the
//! journalled reply without reaching the platform; a repeat of one in flight
//! waits for it, boundedly, then gets 409. An unknown outcome (timeout,
//! connection lost after sending, an unreadable answer) is resolved by the
//! gateway itself: a 2601 reversal naming the original msgid, repeated with
//! back-off until the platform acknowledges it — never by re-sending the
//! settlement. The same happens at start-up for every entry a crash left
//! pending or unknown, before `/readyz` turns ready.
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

use crate::identity::Caller;
use crate::metrics::RefusalJournalCounters;
use crate::state::Gateway;
use contracts::model::envelope::RequestEnvelope;
use contracts::model::reversal::{Reversal, ReversalInput};
use contracts::record::redact;
use contracts::{Answer, AnswerBody, DateTime, ErrorCode, Infno, Request, RequestBody};
use ledger::{Entry, Finish, Key, NewEntry, State};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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

/// A stable digest of a request: SHA-256 of its national encoding, so that
/// the same message sent again in any dialect, with any spacing, digests alike.
pub fn digest(request: &Request) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(adapters::national::encode_request(request));
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// The ledger key of a request from `caller`.
pub fn key(caller: &Caller, request: &Request) -> Key {
    Key {
        caller: caller.institution.code.clone(),
        msgid: request.envelope.msgid.clone().unwrap_or_default(),
    }
}

/// The pending entry of a request about to be forwarded to `region`.
pub fn new_entry(caller: &Caller, request: &Request, region: contracts::Admdvs) -> NewEntry {
    let envelope = &request.envelope;
    let text = |r: Option<contracts::Region>| r.map(|r| r.to_string()).unwrap_or_default();
    let (original_msgid, cancels_setl_id) = match &request.input {
        RequestBody::Reversal(r) => (r.data.omsgid.clone(), None),
        RequestBody::OutpatientSettleCancel(c)
        | RequestBody::InpatientSettleCancel(c)
        | RequestBody::PharmacySettleCancel(c) => (None, c.data.setl_id.clone()),
        _ => (None, None),
    };
    NewEntry {
        key: key(caller, request),
        infno: request.infno().code().to_owned(),
        institution: envelope.fixmedins_code.clone().unwrap_or_default(),
        insured: text(envelope.insuplc_admdvs),
        treatment: text(envelope.mdtrtarea_admvs),
        region: region.to_string(),
        digest: digest(request),
        original_msgid,
        cancels_setl_id,
        received_at_ms: now_ms(),
    }
}

/// What a finished exchange writes: the split's amounts and ids, and the
/// reply to replay — encoded in the caller's dialect *without* personal data.
pub fn finish(
    state: State,
    infno: Infno,
    answer: Option<&Answer>,
    dialect: &'static dyn adapters::Dialect,
    status: u16,
    error_code: Option<u16>,
    anomalies: Vec<String>,
) -> Finish {
    let mut finish = Finish {
        state,
        setl_id: None,
        mdtrt_id: None,
        insutype: None,
        med_type: None,
        clr_type: None,
        setl_time_ms: None,
        medfee_sumamt: None,
        fund_pay_sumamt: None,
        acct_pay: None,
        psn_cash_pay: None,
        error_code,
        anomalies,
        reply_status: status,
        reply_media_type: dialect.media_type().to_owned(),
        reply: Vec::new(),
        finished_at_ms: now_ms(),
    };
    if let Some(answer) = answer {
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
            finish.setl_id = info.setl_id.clone();
            finish.mdtrt_id = info.mdtrt_id.clone();
            finish.insutype = info.insutype.as_ref().map(|c| c.code().to_owned());
            finish.med_type = info.med_type.as_ref().map(|c| c.code().to_owned());
            finish.clr_type = info.clr_type.as_ref().map(|c| c.code().to_owned());
            finish.setl_time_ms = info.setl_time.map(DateTime::unix_millis);
            finish.medfee_sumamt = info.medfee_sumamt;
            finish.fund_pay_sumamt = info.fund_pay_sumamt;
            finish.acct_pay = info.acct_pay;
            finish.psn_cash_pay = info.psn_cash_pay;
        }
        if let Some(AnswerBody::OutpatientRegister(o) | AnswerBody::Admission(o)) = &answer.output {
            finish.mdtrt_id = o.data.mdtrt_id.clone();
        }
        let mut kept = answer.clone();
        if let Some(output) = kept.output.as_mut() {
            redact(output.record_mut());
        }
        redact(&mut kept.envelope);
        finish.reply = dialect.encode_answer(Some(infno), &kept);
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
        mdtrtarea_admvs: region(&entry.treatment),
        insuplc_admdvs: region(&entry.insured),
        fixmedins_code: Some(entry.institution.clone()),
        infver: Some("V1.0".into()),
        inf_time: Some(DateTime::now().truncated_to_seconds()),
        recer_sys_code: Some("YBXT".into()),
        ..Default::default()
    };
    let data = Reversal {
        psn_no: Some("-".into()),
        omsgid: Some(entry.key.msgid.clone()),
        oinfno: Some(entry.infno.clone()),
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

/// Reverses an entry whose outcome is unknown until its platform acknowledges,
/// then records it reversed. Runs in the background; never re-sends the original.
pub async fn resolve(gateway: Arc<Gateway>, entry: Entry) {
    let Some(ledger) = gateway.ledger.clone() else {
        return;
    };
    let Some(request) = reversal_for(&entry) else {
        return;
    };
    let Some(index) = contracts::Admdvs::parse(&entry.region)
        .ok()
        .and_then(|r| gateway.routes.route(r))
    else {
        tracing::error!(infno = %entry.infno, region = %entry.region, "unknown outcome in a region no longer configured; left for officers");
        return;
    };
    let target = &gateway.upstreams.regions[index];
    let body = bytes::Bytes::from(target.region.dialect.encode_request(&request));
    let mut pause = Duration::from_millis(200);
    loop {
        let attempt = ledger.note_attempt(&entry.key).await.unwrap_or(0);
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
        if acknowledged {
            match ledger.resolve(&entry.key, State::Reversed, now_ms()).await {
                Ok(()) => {
                    tracing::info!(infno = %entry.infno, region = %entry.region, attempt, "unknown outcome reversed")
                }
                Err(error) => {
                    tracing::error!(%error, "reversal acknowledged but not recorded; will retry")
                }
            }
            gateway.metrics.reversal("acknowledged");
            return;
        }
        gateway.metrics.reversal("retry");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(REVERSAL_BACKOFF_MS_MAX));
    }
}

/// At start-up: every entry a crash left pending or unknown is reversed (if
/// its transaction can be) before the gateway reports ready.
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
    let mut tasks = Vec::new();
    for entry in entries {
        let reversible = Infno::from_code(&entry.infno).is_some_and(|i| i.traits().reversible);
        if reversible {
            tasks.push(tokio::spawn(resolve(gateway.clone(), entry)));
        } else {
            tracing::warn!(infno = %entry.infno, "an unfinished call that 2601 cannot reverse; left for officers");
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    gateway.recovered.store(true, Ordering::Relaxed);
    tracing::info!("journal recovered: nothing pending or unknown");
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

/// Lower-case hex SHA-256 of the raw body.
pub fn body_digest(body: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
        digest: body_digest(body),
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

    #[test]
    fn the_digest_is_sha256_of_the_raw_bytes() {
        assert_eq!(
            body_digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
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
            digest: body_digest(b"x"),
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
