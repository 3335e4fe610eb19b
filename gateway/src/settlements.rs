//! `GET /v1/settlements/{setl_id}`: one settlement as the gateway journalled
//! it, for regional platforms and clearing officers.
//!
//! * An officer sees every settlement.
//! * A platform sees a settlement only when its region is the insured or the
//!   treatment region; any other is answered exactly like an unknown id (404),
//!   so that a platform cannot probe which ids exist elsewhere.
//! * A hospital is refused (403): it must not browse other hospitals'
//!   settlements, and it has its own answers.
//!
//! The answer is a JSON object (amounts as yuan strings with two decimals,
//! times `yyyy-MM-dd HH:mm:ss` on the Shanghai clock, absent values `null`);
//! refusals are national answers (`infcode`, `err_msg`) with the catalogue's
//! code and status, like every other refusal of the gateway. No personal data:
//! the journal holds none. The request's `psn_no`, which the journal keeps for
//! the gateway's own reversals, is not shown either (nor in `ledger export`).

use crate::config::Role;
use crate::export::{json_option, json_string};
use crate::identity::Caller;
use crate::state::Gateway;
use adapters::Dialect;
use bytes::Bytes;
use contracts::{Admdvs, Answer, DateTime, ErrorCode, Money, Refusal};
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use ledger::{Entry, State};

/// The path prefix served here.
pub const PREFIX: &str = "/v1/settlements/";

/// The longest `setl_id` looked up (the ledger stores at most 128 bytes).
const SETL_ID_MAX: usize = 128;

pub(crate) fn respond(
    status: u16,
    media_type: &'static str,
    body: Vec<u8>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(media_type),
    );
    response
}

/// A refusal as a national JSON answer with the catalogue's status. Counted
/// in `jjj_refusals_total`; not journalled in the refusals table (a read
/// names no message, and this path has no rate limit that would bound it).
pub(crate) fn refuse(gateway: &Gateway, refusal: &Refusal) -> Response<Full<Bytes>> {
    gateway.metrics.refusal(refusal.code);
    let national = &adapters::national::National;
    respond(
        refusal.code.http_status(),
        national.media_type(),
        national.encode_answer(None, &Answer::refusal(refusal)),
    )
}

fn not_found(gateway: &Gateway) -> Response<Full<Bytes>> {
    refuse(
        gateway,
        &Refusal::new(ErrorCode::NotFound, "no settlement with this setl_id"),
    )
}

/// Whether `caller` may see `entry`.
fn visible(caller: &Caller, entry: &Entry) -> bool {
    let institution = &caller.institution;
    match institution.role {
        Role::Officer => true,
        Role::Platform => [&entry.new.insured, &entry.new.treatment]
            .into_iter()
            .any(|code| Admdvs::parse(code).is_ok_and(|region| region.within(institution.admdvs))),
        Role::Hospital => false,
    }
}

/// Answers `GET /v1/settlements/{setl_id}` (`path` is the request's path).
pub async fn get(
    gateway: &Gateway,
    caller: &Result<Caller, Refusal>,
    method: &Method,
    path: &str,
) -> Response<Full<Bytes>> {
    let caller = match caller {
        Ok(caller) => caller,
        Err(refusal) => return refuse(gateway, refusal),
    };
    if method != Method::GET {
        return refuse(
            gateway,
            &Refusal::new(ErrorCode::MethodNotAllowed, "settlements are read with GET"),
        );
    }
    if caller.institution.role == Role::Hospital {
        tracing::info!(caller = %caller.institution.code, "refused: a hospital asked for a settlement by id");
        return refuse(
            gateway,
            &Refusal::new(
                ErrorCode::RoleNotAllowed,
                "settlements are for platforms and officers",
            ),
        );
    }
    let setl_id = path.strip_prefix(PREFIX).unwrap_or_default();
    if setl_id.is_empty()
        || setl_id.len() > SETL_ID_MAX
        || setl_id.contains('/')
        || setl_id.chars().any(char::is_control)
    {
        return not_found(gateway);
    }
    let Some(ledger) = &gateway.ledger else {
        return refuse(
            gateway,
            &Refusal::new(ErrorCode::NotFound, "this gateway keeps no ledger"),
        );
    };
    let entry = match ledger.by_setl_id(setl_id).await {
        Ok(Some(entry)) => entry,
        Ok(None) => return not_found(gateway),
        Err(error) => {
            tracing::error!(%error, "ledger read failed for a settlement lookup");
            return refuse(
                gateway,
                &Refusal::new(
                    ErrorCode::LedgerUnavailable,
                    "the ledger cannot be read now; retry later",
                ),
            );
        }
    };
    if !visible(caller, &entry) {
        return not_found(gateway);
    }
    let cancelled_by = match ledger.cancels_of(setl_id).await {
        Ok(cancels) => cancels
            .into_iter()
            .find(|c| {
                matches!(c.state, State::Done | State::Confirmed)
                    && c.new.institution == entry.new.institution
            })
            .map(|c| c.new.key.msgid),
        Err(error) => {
            tracing::error!(%error, "ledger read failed for a settlement's cancels");
            return refuse(
                gateway,
                &Refusal::new(
                    ErrorCode::LedgerUnavailable,
                    "the ledger cannot be read now; retry later",
                ),
            );
        }
    };
    respond(
        200,
        "application/json",
        settlement_json(&entry, cancelled_by.as_deref()).into_bytes(),
    )
}

fn time(ms: Option<i64>) -> Option<String> {
    ms.and_then(DateTime::from_unix_millis)
        .map(|t| t.to_string())
}

/// The settlement as a JSON object.
pub fn settlement_json(entry: &Entry, cancelled_by: Option<&str>) -> String {
    let money = |m: Option<Money>| m.map(Money::to_yuan_string);
    let nonempty = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    let fields: [(&str, Option<String>); 21] = [
        ("setl_id", entry.answered.setl_id.clone()),
        ("msgid", Some(entry.new.key.msgid.clone())),
        ("infno", Some(entry.new.infno.clone())),
        ("state", Some(entry.state.as_str().to_owned())),
        ("institution", Some(entry.new.institution.clone())),
        ("insuplc_admdvs", nonempty(&entry.new.insured)),
        ("mdtrtarea_admvs", nonempty(&entry.new.treatment)),
        ("mdtrt_id", entry.answered.mdtrt_id.clone()),
        ("insutype", entry.answered.insutype.clone()),
        ("med_type", entry.answered.med_type.clone()),
        ("clr_type", entry.answered.clr_type.clone()),
        ("setl_time", time(entry.answered.setl_time_ms)),
        ("medfee_sumamt", money(entry.answered.medfee_sumamt)),
        ("fund_pay_sumamt", money(entry.answered.fund_pay_sumamt)),
        ("acct_pay", money(entry.answered.acct_pay)),
        ("psn_cash_pay", money(entry.answered.psn_cash_pay)),
        ("received_at", time(Some(entry.new.received_at_ms))),
        ("finished_at", time(entry.finished_at_ms())),
        ("resolved_at", time(entry.resolved_at_ms)),
        ("cancelled_by", cancelled_by.map(str::to_owned)),
        ("platform", nonempty(&entry.new.region)),
    ];
    let mut out = String::with_capacity(768);
    out.push('{');
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(&mut out, name);
        out.push(':');
        json_option(&mut out, value.as_deref());
    }
    out.push_str(",\"anomalies\":[");
    for (i, rule) in entry.answered.anomalies.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(&mut out, rule);
    }
    out.push_str("]}");
    out
}
