//! The clearing API and the officers' page, over mutual TLS:
//!
//! - `GET /v1/clearing/{date}[?format=json|csv|xlsx]` (officers and
//!   platforms): the day's report, live while the day is open, the signed-off
//!   report once it is closed;
//! - `POST /v1/clearing/{date}/statements/{admdvs}` (a platform, for its own
//!   region): the region's statement for the day, CSV as
//!   `contracts/statement.md` says; checked in full (a malformed one is
//!   refused with its line and column, nothing kept); a new upload replaces
//!   the previous one while the day is open;
//! - `POST /v1/clearing/{date}/close` (officers): signs the day off — the
//!   report is frozen with who closed it, when, and its digest; a closed day
//!   refuses every change (409);
//! - `/clearing/`: the officers' page.
//!
//! Refusals are national JSON answers (`infcode`, `err_msg`) with the
//! catalogue's code and HTTP status, like every refusal of the gateway.

use crate::clearing::command::{build, regions_of};
use crate::config::Role;
use crate::identity::Caller;
use crate::report::{Closure, Report, Viewer};
use crate::settlements::{refuse, respond};
use crate::state::Gateway;
use bytes::Bytes;
use contracts::statement::Reader;
use contracts::{Admdvs, Date, DateTime, ErrorCode, Refusal};
use http::{Method, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use ledger::{ClosedDay, StoredStatement};
use std::collections::BTreeSet;
use std::io::Cursor;

/// The API's path prefix.
pub const PREFIX: &str = "/v1/clearing/";
/// The page's path prefix.
pub const PAGE: &str = "/clearing/";

/// The largest statement accepted in one upload.
pub const STATEMENT_BYTES_MAX: usize = 512 * 1024 * 1024;

const INDEX_HTML: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const STYLE_CSS: &str = include_str!("page/style.css");

/// Serves the officers' page (any identified caller may load the page; the
/// data behind it is guarded by the API).
pub fn page(
    gateway: &Gateway,
    caller: &Result<Caller, Refusal>,
    path: &str,
) -> Response<Full<Bytes>> {
    if let Err(refusal) = caller {
        return refuse(gateway, refusal);
    }
    let (media, body) = match path.strip_prefix(PAGE).unwrap_or_default() {
        "" | "index.html" => ("text/html; charset=utf-8", INDEX_HTML),
        "app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "style.css" => ("text/css; charset=utf-8", STYLE_CSS),
        _ => return refuse(gateway, &Refusal::new(ErrorCode::NotFound, "no such page")),
    };
    respond(200, media, body.as_bytes().to_vec())
}

fn unavailable(gateway: &Gateway, error: &ledger::LedgerError) -> Response<Full<Bytes>> {
    tracing::error!(%error, "clearing: the ledger failed");
    refuse(
        gateway,
        &Refusal::new(
            ErrorCode::LedgerUnavailable,
            "the ledger cannot be used now; retry later",
        ),
    )
}

/// Answers a request under `/v1/clearing/`.
pub async fn handle(
    gateway: &Gateway,
    caller: &Result<Caller, Refusal>,
    request: http::Request<Incoming>,
) -> Response<Full<Bytes>> {
    let caller = match caller {
        Ok(caller) => caller,
        Err(refusal) => return refuse(gateway, refusal),
    };
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let rest = path.strip_prefix(PREFIX).unwrap_or_default();
    let parts: Vec<&str> = rest.split('/').collect();
    let Ok(day) = Date::parse(parts.first().copied().unwrap_or_default()) else {
        return refuse(
            gateway,
            &Refusal::new(ErrorCode::NotFound, "expected /v1/clearing/YYYY-MM-DD"),
        );
    };
    let role = caller.institution.role;
    if role == Role::Hospital {
        return refuse(
            gateway,
            &Refusal::new(
                ErrorCode::RoleNotAllowed,
                "clearing is for platforms and officers",
            ),
        );
    }
    let Some(ledger) = gateway.ledger.as_ref() else {
        return refuse(
            gateway,
            &Refusal::new(ErrorCode::NotFound, "this gateway keeps no ledger"),
        );
    };
    match (&method, &parts[1..]) {
        (&Method::GET, []) => {
            let format = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("format="))
                .unwrap_or("json");
            report(gateway, ledger, caller, day, format).await
        }
        (&Method::POST, ["statements", admdvs]) => {
            if role != Role::Platform {
                return refuse(
                    gateway,
                    &Refusal::new(
                        ErrorCode::RoleNotAllowed,
                        "statements are uploaded by regional platforms",
                    ),
                );
            }
            let Ok(region) = Admdvs::parse(admdvs) else {
                return refuse(
                    gateway,
                    &Refusal::new(ErrorCode::NotFound, "no such region"),
                );
            };
            if region != caller.institution.admdvs {
                return refuse(
                    gateway,
                    &Refusal::new(
                        ErrorCode::RegionMismatch,
                        format!(
                            "{} uploads statements for {} only",
                            caller.institution.code, caller.institution.admdvs
                        ),
                    ),
                );
            }
            let body = match Limited::new(request.into_body(), STATEMENT_BYTES_MAX)
                .collect()
                .await
            {
                Ok(body) => body.to_bytes(),
                Err(_) => {
                    return refuse(
                        gateway,
                        &Refusal::new(
                            ErrorCode::TooLarge,
                            format!("a statement is at most {STATEMENT_BYTES_MAX} bytes"),
                        ),
                    )
                }
            };
            upload(gateway, ledger, caller, day, region, body).await
        }
        (&Method::POST, ["close"]) => {
            if role != Role::Officer {
                return refuse(
                    gateway,
                    &Refusal::new(
                        ErrorCode::RoleNotAllowed,
                        "only clearing officers close a day",
                    ),
                );
            }
            close(gateway, ledger, caller, day).await
        }
        (_, [] | ["close"] | ["statements", _]) => refuse(
            gateway,
            &Refusal::new(
                ErrorCode::MethodNotAllowed,
                "GET the report; POST statements and close",
            ),
        ),
        _ => refuse(
            gateway,
            &Refusal::new(ErrorCode::NotFound, "no such clearing path"),
        ),
    }
}

/// The day's live report from the journal and the stored statements (with
/// `closing_at_ms`, as it is when the day is closed then).
async fn live(
    gateway: &Gateway,
    ledger: &ledger::Ledger,
    day: Date,
    closing_at_ms: Option<i64>,
) -> Result<Report, Response<Full<Bytes>>> {
    let regions = regions_of(&gateway.config);
    let gateway_csv = crate::clearing::command::gateway_csv(ledger, day, closing_at_ms)
        .await
        .map_err(|e| unavailable(gateway, &e))?;
    let earlier = crate::clearing::command::earlier(ledger, day, tokio::runtime::Handle::current())
        .await
        .map_err(|e| unavailable(gateway, &e))?;
    let statements = ledger
        .statements(&day.to_string())
        .await
        .map_err(|e| unavailable(gateway, &e))?;
    let sources: Vec<(Admdvs, Cursor<Vec<u8>>)> = statements
        .into_iter()
        .filter_map(|s| {
            Admdvs::parse(&s.admdvs)
                .ok()
                .map(|code| (code, Cursor::new(s.body.into_bytes())))
        })
        .collect();
    // Reconciling reads every row on its own threads: off the runtime's workers.
    let built = tokio::task::spawn_blocking(move || {
        build(day, &regions, earlier, Cursor::new(gateway_csv), sources)
    })
    .await
    .unwrap_or_else(|join| Err(anyhow::anyhow!("reconciliation stopped: {join}")));
    let mut report = built.map_err(|error| {
        tracing::error!(%error, "clearing: a stored source does not reconcile");
        refuse(
            gateway,
            &Refusal::new(ErrorCode::Internal, format!("{error:#}")),
        )
    })?;
    report.disputes = ledger
        .verdicts(&day.to_string())
        .await
        .map_err(|e| unavailable(gateway, &e))?
        .into_iter()
        .filter(|v| v.cnfm_flag == "2")
        .map(|v| crate::report::Dispute {
            at: DateTime::from_unix_millis(v.at_ms)
                .map(|t| t.truncated_to_seconds().to_string())
                .unwrap_or_default(),
            admdvs: v.admdvs,
            setl_id: v.setl_id,
            mdtrt_id: v.mdtrt_id,
            memo: v.memo,
        })
        .collect();
    Ok(report)
}

async fn report(
    gateway: &Gateway,
    ledger: &ledger::Ledger,
    caller: &Caller,
    day: Date,
    format: &str,
) -> Response<Full<Bytes>> {
    let viewer = Viewer::of(caller);
    let stored = match ledger.closed_day(&day.to_string()).await {
        Ok(stored) => stored,
        Err(error) => return unavailable(gateway, &error),
    };
    let (json, report) = match stored {
        // A closed day is answered from what was signed off.
        Some(closed) => (Some(closed.report), None),
        None => match live(gateway, ledger, day, None).await {
            Ok(report) => (None, Some(report)),
            Err(response) => return response,
        },
    };
    let name = |ext: &str| format!("attachment; filename=\"clearing-{day}.{ext}\"");
    match (format, json, report) {
        ("json", Some(json), _) => respond(200, "application/json", viewer.inject(&json)),
        ("json", None, Some(mut report)) => {
            report.viewer = Some(viewer);
            respond(200, "application/json", report.to_json())
        }
        ("csv" | "xlsx", Some(_), _) => match live(gateway, ledger, day, None).await {
            // The frozen JSON is the record; downloads are rebuilt from the
            // same journal and statements, which a closed day no longer changes.
            Ok(mut report) => {
                report.closure = closure_of(ledger, day).await;
                download(&report, format, &name(format))
            }
            Err(response) => response,
        },
        ("csv" | "xlsx", None, Some(report)) => download(&report, format, &name(format)),
        _ => refuse(
            gateway,
            &Refusal::new(ErrorCode::InvalidRequest, "format is json, csv or xlsx"),
        ),
    }
}

async fn closure_of(ledger: &ledger::Ledger, day: Date) -> Option<Closure> {
    ledger
        .closed_day(&day.to_string())
        .await
        .ok()
        .flatten()
        .map(|c| closure_from(&c))
}

fn download(report: &Report, format: &str, disposition: &str) -> Response<Full<Bytes>> {
    let (media, bytes) = if format == "csv" {
        ("text/csv; charset=utf-8", report.to_csv())
    } else {
        (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            report.to_xlsx(),
        )
    };
    let mut response = respond(200, media, bytes);
    if let Ok(value) = http::HeaderValue::from_str(disposition) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_DISPOSITION, value);
    }
    response
}

async fn upload(
    gateway: &Gateway,
    ledger: &ledger::Ledger,
    caller: &Caller,
    day: Date,
    region: Admdvs,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let regions = regions_of(&gateway.config);
    let closed = match crate::export::closed_before(ledger, day).await {
        Ok(closed) => closed,
        Err(error) => return unavailable(gateway, &error),
    };
    // Checked in full before anything is kept.
    let rows = match check_statement(&body, day, &closed, &regions, region) {
        Ok(rows) => rows,
        Err(error) => {
            tracing::info!(caller = %caller.institution.code, %region, %error, "statement refused");
            return refuse(gateway, &Refusal::new(ErrorCode::Malformed, error));
        }
    };
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return refuse(
            gateway,
            &Refusal::new(ErrorCode::WrongEncoding, "not UTF-8"),
        );
    };
    let digest = contracts::hex::sha256(text.as_bytes());
    let stored = StoredStatement {
        day: day.to_string(),
        admdvs: region.to_string(),
        uploaded_by: caller.institution.code.clone(),
        uploaded_at_ms: DateTime::now().unix_millis(),
        digest: digest.clone(),
        rows,
        body: text,
    };
    match ledger.put_statement(stored).await {
        Ok(()) => {
            tracing::info!(caller = %caller.institution.code, %region, %day, rows, "statement stored");
            let json = serde_json::json!({
                "date": day.to_string(),
                "admdvs": region.to_string(),
                "rows": rows,
                "digest": digest,
            });
            respond(200, "application/json", json.to_string().into_bytes())
        }
        Err(ledger::LedgerError::Conflict(_)) => refuse(
            gateway,
            &Refusal::new(
                ErrorCode::DayClosed,
                format!("{day} is closed; send late rows with the next open day's statement"),
            ),
        ),
        Err(error) => unavailable(gateway, &error),
    }
}

/// Reads a whole statement, checking every row's day (the day's own, or a
/// late row of an earlier `closed` day) and region; the number of rows.
pub fn check_statement(
    body: &[u8],
    day: Date,
    closed: &BTreeSet<Date>,
    regions: &crate::reconcile::Regions,
    region: Admdvs,
) -> Result<u64, String> {
    let own = regions.index(region);
    let mut reader = Reader::new(body).map_err(|e| e.to_string())?;
    let mut rows = 0;
    while let Some(row) = reader.next_row().map_err(|e| e.to_string())? {
        let line = reader.line();
        if let Some(why) = crate::reconcile::misplaced(day, row.setl_time, closed) {
            return Err(format!(
                "line {line}, column {}: {why}",
                reader.column("setl_time")
            ));
        }
        if own.is_none() || regions.of(row.insuplc_admdvs) != own {
            return Err(format!(
                "line {line}, column {}: {} is not insured in {region}",
                reader.column("insuplc_admdvs"),
                row.insuplc_admdvs
            ));
        }
        rows += 1;
    }
    Ok(rows)
}

async fn close(
    gateway: &Gateway,
    ledger: &ledger::Ledger,
    caller: &Caller,
    day: Date,
) -> Response<Full<Bytes>> {
    // Rows that come from now on are late: they go to the next open day.
    // What came before is journalled once the writer has committed what it
    // holds (the heartbeat goes through it behind everything queued).
    let closing_at_ms = DateTime::now().unix_millis();
    if let Err(error) = ledger.ping().await {
        return unavailable(gateway, &error);
    }
    let mut report = match live(gateway, ledger, day, Some(closing_at_ms)).await {
        Ok(report) => report,
        Err(response) => return response,
    };
    let digest = contracts::hex::sha256(&report.to_json());
    let closure = Closure {
        by: caller.institution.code.clone(),
        at: DateTime::now().truncated_to_seconds().to_string(),
        digest,
    };
    report.closure = Some(closure.clone());
    let closed = ClosedDay {
        day: day.to_string(),
        closed_by: closure.by.clone(),
        closed_at_ms: closing_at_ms,
        digest: closure.digest.clone(),
        report: String::from_utf8_lossy(&report.to_json()).into_owned(),
    };
    match ledger.close_day(closed).await {
        Ok(()) => {
            tracing::info!(officer = %closure.by, %day, digest = %closure.digest, "clearing day closed");
            let json = serde_json::json!({ "status": "closed", "closed": closure });
            respond(200, "application/json", json.to_string().into_bytes())
        }
        Err(ledger::LedgerError::Conflict(_)) => refuse(
            gateway,
            &Refusal::new(ErrorCode::DayClosed, format!("{day} is already closed")),
        ),
        Err(error) => unavailable(gateway, &error),
    }
}

/// The report's closure from the ledger's record of a closed day.
fn closure_from(closed: &ClosedDay) -> Closure {
    Closure {
        by: closed.closed_by.clone(),
        at: DateTime::from_unix_millis(closed.closed_at_ms)
            .map(|t| t.truncated_to_seconds().to_string())
            .unwrap_or_default(),
        digest: closed.digest.clone(),
    }
}
