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

use crate::identity::Caller;
use crate::state::Gateway;
use contracts::model::envelope::RequestEnvelope;
use contracts::model::reversal::{Reversal, ReversalInput};
use contracts::record::redact;
use contracts::{Answer, AnswerBody, DateTime, Infno, Request, RequestBody};
use ledger::{Entry, Finish, Key, NewEntry, State};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
