//! `GET /v1/signals?date=YYYY-MM-DD[&rule=R][&format=json|csv|xlsx][&pair=AAAAAA-BBBBBB]`:
//! the supervision signals detected on a day (Asia/Shanghai), for clearing
//! officers only (others: 403). JSON by default:
//! `{"signals": [{"id", "rule", "severity", "detected_at", "regions",
//! "institutions", "person_key", "mdtrt_ids", "setl_ids", "amounts", "detail"}]}`;
//! `format=csv|xlsx` exports them for joint checks, and `pair` keeps the
//! signals involving both regions of a pair (e.g. `110000-130000`). The
//! person is only ever the keyed hash.

use crate::config::{Role, RuleName};
use crate::export::{json_option, json_string};
use crate::identity::Caller;
use crate::report::xlsx::{workbook, Cell, Sheet};
use crate::settlements::{refuse, respond};
use crate::state::Gateway;
use bytes::Bytes;
use contracts::{Admdvs, Date, ErrorCode, Refusal};
use http::{Method, Response};
use http_body_util::Full;

/// The API's path.
pub const PATH: &str = "/v1/signals";

/// What a query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The day.
    pub date: Date,
    /// One rule only.
    pub rule: Option<RuleName>,
    /// `json`, `csv` or `xlsx`.
    pub format: String,
    /// Only signals involving both regions.
    pub pair: Option<(Admdvs, Admdvs)>,
}

/// Parses `AAAAAA-BBBBBB`.
pub fn pair(text: &str) -> Option<(Admdvs, Admdvs)> {
    let (a, b) = text.split_once('-')?;
    Some((Admdvs::parse(a).ok()?, Admdvs::parse(b).ok()?))
}

/// Parses the query string.
pub fn query(text: &str) -> Result<Query, Refusal> {
    let bad = |m: String| Refusal::new(ErrorCode::InvalidValue, m);
    let mut date = None;
    let mut rule = None;
    let mut format = "json".to_owned();
    let mut pair_of = None;
    for kv in text.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "date" => {
                date = Some(Date::parse(v).map_err(|_| bad(format!("date {v:?}: YYYY-MM-DD")))?)
            }
            "rule" => {
                rule = Some(
                    RuleName::parse(v)
                        .ok_or_else(|| bad(format!("rule {v:?} is not a supervision rule")))?,
                )
            }
            "format" if matches!(v, "json" | "csv" | "xlsx") => format = v.to_owned(),
            "format" => return Err(bad(format!("format {v:?}: json, csv or xlsx"))),
            "pair" => {
                pair_of =
                    Some(pair(v).ok_or_else(|| bad(format!("pair {v:?}: like 110000-130000")))?)
            }
            _ => return Err(bad(format!("unknown parameter {k:?}"))),
        }
    }
    Ok(Query {
        date: date.ok_or_else(|| bad("date=YYYY-MM-DD is required".into()))?,
        rule,
        format,
        pair: pair_of,
    })
}

/// Whether a signal involves both regions of `pair`.
pub fn involves(signal: &ledger::Signal, pair: (Admdvs, Admdvs)) -> bool {
    let has = |side: Admdvs| {
        signal
            .regions
            .iter()
            .any(|r| Admdvs::parse(r).is_ok_and(|r| r.within(side) || side.within(r)))
    };
    has(pair.0) && has(pair.1)
}

/// The signals of a query, from the ledger.
pub async fn select(
    ledger: &ledger::Ledger,
    query: &Query,
) -> Result<Vec<ledger::Signal>, ledger::LedgerError> {
    let mut signals = ledger.signals(&query.date.to_string()).await?;
    signals.retain(|s| query.rule.is_none_or(|r| r.as_str() == s.rule));
    if let Some(pair) = query.pair {
        signals.retain(|s| involves(s, pair));
    }
    Ok(signals)
}

fn json_list(out: &mut String, items: impl Iterator<Item = String>) {
    out.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(out, &item);
    }
    out.push(']');
}

/// `{"signals": [...]}`.
pub fn to_json(signals: &[ledger::Signal]) -> String {
    let mut out = String::from("{\"signals\":[");
    for (i, s) in signals.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"id\":");
        json_string(&mut out, &s.id);
        out.push_str(",\"rule\":");
        json_string(&mut out, &s.rule);
        out.push_str(",\"severity\":");
        json_string(&mut out, &s.severity);
        out.push_str(",\"detected_at\":");
        json_string(&mut out, &super::at(s.detected_at_ms));
        out.push_str(",\"regions\":");
        json_list(&mut out, s.regions.iter().cloned());
        out.push_str(",\"institutions\":");
        json_list(&mut out, s.institutions.iter().cloned());
        out.push_str(",\"person_key\":");
        json_option(&mut out, s.person_key.as_deref());
        out.push_str(",\"mdtrt_ids\":");
        json_list(&mut out, s.mdtrt_ids.iter().cloned());
        out.push_str(",\"setl_ids\":");
        json_list(&mut out, s.setl_ids.iter().cloned());
        out.push_str(",\"amounts\":");
        json_list(&mut out, s.amounts.iter().map(|m| m.to_yuan_string()));
        out.push_str(",\"detail\":");
        json_string(&mut out, &s.detail);
        out.push('}');
    }
    out.push_str("]}");
    out
}

const HEADER: [&str; 11] = [
    "id",
    "rule",
    "severity",
    "detected_at",
    "regions",
    "institutions",
    "person_key",
    "mdtrt_ids",
    "setl_ids",
    "amounts",
    "detail",
];

fn cells(s: &ledger::Signal) -> Vec<String> {
    vec![
        s.id.clone(),
        s.rule.clone(),
        s.severity.clone(),
        super::at(s.detected_at_ms),
        s.regions.join(" "),
        s.institutions.join(" "),
        s.person_key.clone().unwrap_or_default(),
        s.mdtrt_ids.join(" "),
        s.setl_ids.join(" "),
        s.amounts
            .iter()
            .map(|m| m.to_yuan_string())
            .collect::<Vec<_>>()
            .join(" "),
        s.detail.clone(),
    ]
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// CSV, UTF-8 with a byte-order mark, one row per signal.
pub fn to_csv(signals: &[ledger::Signal]) -> Vec<u8> {
    let mut out = String::from("\u{feff}");
    out.push_str(&HEADER.join(","));
    out.push('\n');
    for s in signals {
        let row: Vec<String> = cells(s).iter().map(|c| csv_field(c)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out.into_bytes()
}

/// XLSX, one sheet.
pub fn to_xlsx(signals: &[ledger::Signal], title: &str) -> Vec<u8> {
    let sheet = Sheet {
        name: title.chars().take(31).collect(),
        header: HEADER.iter().map(|h| (*h).to_owned()).collect(),
        rows: signals
            .iter()
            .map(|s| cells(s).into_iter().map(Cell::Text).collect())
            .collect(),
    };
    workbook(&[sheet])
}

/// Answers a request for `/v1/signals`.
pub async fn handle(
    gateway: &Gateway,
    caller: &Result<Caller, Refusal>,
    request: &http::Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let caller = match caller {
        Ok(caller) => caller,
        Err(refusal) => return refuse(gateway, refusal),
    };
    if caller.institution.role != Role::Officer {
        return refuse(
            gateway,
            &Refusal::new(
                ErrorCode::RoleNotAllowed,
                "signals are for clearing officers",
            ),
        );
    }
    if request.method() != Method::GET {
        return refuse(
            gateway,
            &Refusal::new(ErrorCode::MethodNotAllowed, "GET the signals"),
        );
    }
    if request.uri().path() != PATH {
        return refuse(gateway, &Refusal::new(ErrorCode::NotFound, "no such path"));
    }
    let query = match query(request.uri().query().unwrap_or_default()) {
        Ok(query) => query,
        Err(refusal) => return refuse(gateway, &refusal),
    };
    let Some(ledger) = gateway.ledger.as_ref() else {
        return refuse(
            gateway,
            &Refusal::new(ErrorCode::NotFound, "this gateway keeps no ledger"),
        );
    };
    let signals = match select(ledger, &query).await {
        Ok(signals) => signals,
        Err(error) => {
            tracing::error!(%error, "signals: the ledger failed");
            return refuse(
                gateway,
                &Refusal::new(
                    ErrorCode::LedgerUnavailable,
                    "the ledger cannot be used now; retry later",
                ),
            );
        }
    };
    let title = match query.pair {
        Some((a, b)) => format!("{} {a}-{b}", query.date),
        None => query.date.to_string(),
    };
    match query.format.as_str() {
        "csv" => respond(200, "text/csv; charset=utf-8", to_csv(&signals)),
        "xlsx" => respond(
            200,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            to_xlsx(&signals, &title),
        ),
        _ => respond(200, "application/json", to_json(&signals).into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_checked() {
        assert!(query("date=2026-11-25&rule=frequency&format=csv&pair=110000-130000").is_ok());
        for bad in [
            "",
            "date=2026-13-01",
            "date=2026-11-25&rule=nope",
            "date=2026-11-25&format=pdf",
            "date=2026-11-25&pair=11-13",
            "date=2026-11-25&x=1",
        ] {
            assert!(query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pair_keeps_signals_involving_both_regions() {
        let signal = |regions: &[&str]| ledger::Signal {
            id: "a".into(),
            day: "2026-11-25".into(),
            rule: "frequency".into(),
            severity: "medium".into(),
            detected_at_ms: 0,
            regions: regions.iter().map(|r| (*r).to_owned()).collect(),
            institutions: vec![],
            person_key: None,
            mdtrt_ids: vec![],
            setl_ids: vec![],
            amounts: vec![],
            detail: String::new(),
        };
        let bj_he = pair("110000-130000");
        assert!(bj_he.is_some_and(|p| involves(&signal(&["110105", "130602"]), p)));
        assert!(bj_he.is_some_and(|p| !involves(&signal(&["110105", "120104"]), p)));
    }
}
