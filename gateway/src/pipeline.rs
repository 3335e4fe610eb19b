//! The path of one message, read top to bottom:
//!
//! ```text
//! identify ─▶ limit(institution) ─▶ decode(caller's dialect) ─▶ validate ─▶ authorize
//!   ─▶ route ─▶ limit(region) ─▶ journal(pending) ─▶ encode(platform's dialect) ─▶ upstream call
//!   ─▶ decode(platform's dialect) ─▶ check answer ─▶ encode(caller's dialect) ─▶ journal(final)
//! ```
//!
//! Every step either passes the exchange on or stops it with a [`Stop`]; the
//! one place that turns a stop into an answer is [`reply`], in the caller's
//! own dialect, with the catalogue's HTTP status.

use crate::config::Role;
use crate::identity::Caller;
use crate::journal;
use crate::limit::Scope;
use crate::metrics::Outcome;
use crate::state::Gateway;
use crate::telemetry::{self, span};
use crate::upstream::Failure;
use adapters::Dialect;
use bytes::Bytes;
use contracts::transaction::Sender;
use contracts::validate::{check_answer, validate_request};
use contracts::{Answer, ErrorCode, Infno, Refusal, Request, RequestBody};
use ledger::{Begin, State};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// What the HTTP layer sends back.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body, in the caller's dialect.
    pub body: Vec<u8>,
    /// Its media type.
    pub media_type: &'static str,
    /// Seconds to wait, for a 429.
    pub retry_after: Option<u64>,
}

/// Why a message stopped before an answer from the platform.
#[derive(Debug)]
pub struct Stop {
    refusal: Refusal,
    retry_after: Option<Duration>,
}

/// How a message ended well. Built once per message and moved once.
#[allow(clippy::large_enum_variant)]
pub enum Done {
    /// The platform's answer, and its encoding for the caller.
    Answered(Answer, Vec<u8>),
    /// A repeat of a finished message: the journalled reply.
    Replay(ledger::Entry),
}

impl From<Refusal> for Stop {
    fn from(refusal: Refusal) -> Stop {
        Stop {
            refusal,
            retry_after: None,
        }
    }
}

/// Handles one message from `caller` in `dialect`.
pub async fn message(
    gateway: &Arc<Gateway>,
    caller: &Result<Caller, Refusal>,
    dialect: &'static dyn Dialect,
    body: &[u8],
    traceparent: Option<&str>,
) -> Reply {
    let started = Instant::now();
    let received_at_ms = journal::now_ms();
    let mut seen = journal::Seen::default();
    // The request's span: codes only, never the message's content.
    let request_span = span!(
        "request",
        otel.kind = "server",
        jjj.dialect = dialect.name(),
        jjj.institution = tracing::field::Empty,
        jjj.infno = tracing::field::Empty,
        jjj.insured_region = tracing::field::Empty,
        jjj.treatment_region = tracing::field::Empty,
        jjj.outcome = tracing::field::Empty,
        jjj.error_code = tracing::field::Empty,
        jjj.infcode = tracing::field::Empty,
    );
    telemetry::adopt(&request_span, traceparent);
    if let Ok(caller) = caller {
        request_span.record("jjj.institution", caller.institution.code.as_str());
    }
    // Boxed: the pipeline's state is kilobytes (the decoded request, the
    // journal's and the upstream's futures); inline it would be copied into
    // the span's wrapper and again by each layer that moves this future.
    let outcome = Box::pin(run(gateway, caller, dialect, body, traceparent, &mut seen))
        .instrument(request_span.clone())
        .await;
    if telemetry::on() {
        record_outcome(&request_span, &seen, &outcome);
    }
    if let (Err(stop), Ok(caller)) = (&outcome, caller) {
        journal_refusal(
            gateway,
            caller,
            &seen,
            stop.refusal.code,
            body,
            received_at_ms,
        );
    }
    request_span.in_scope(|| reply(gateway, dialect, seen.infno, outcome, started))
}

/// What the request's span says of its end: the transaction and regions
/// named, the outcome, the error code, the platform's infcode.
fn record_outcome(span: &tracing::Span, seen: &journal::Seen, outcome: &Result<Done, Stop>) {
    if let Some(infno) = seen.infno {
        span.record("jjj.infno", infno.code());
    }
    if let Some(region) = &seen.insured {
        span.record("jjj.insured_region", region.as_str());
    }
    if let Some(region) = &seen.treatment {
        span.record("jjj.treatment_region", region.as_str());
    }
    match outcome {
        Ok(Done::Answered(answer, _)) => {
            span.record("jjj.outcome", "answered");
            if let Some(infcode) = answer.envelope.infcode.filter(|&c| c != 0) {
                span.record("jjj.infcode", infcode);
            }
        }
        Ok(Done::Replay(_)) => {
            span.record("jjj.outcome", "replayed");
        }
        Err(stop) => {
            let code = stop.refusal.code;
            let failed = code.http_status() >= 500;
            span.record("jjj.outcome", if failed { "failed" } else { "refused" });
            span.record("jjj.error_code", code.slug());
            telemetry::failed(span, code.slug());
        }
    }
}

/// Hands a refusal of an identified caller to the refusal journal's queue
/// (never waits for the disk); 429 and 5xx are not journalled
/// ([`journal::journals_refusal`]).
fn journal_refusal(
    gateway: &Gateway,
    caller: &Caller,
    seen: &journal::Seen,
    code: ErrorCode,
    body: &[u8],
    received_at_ms: i64,
) {
    if !journal::journals_refusal(code) {
        return;
    }
    if let Some(refusals) = &gateway.refusals {
        refusals.record(journal::refusal_row(
            caller,
            seen,
            code,
            body,
            received_at_ms,
        ));
    }
}

async fn run(
    gateway: &Arc<Gateway>,
    caller: &Result<Caller, Refusal>,
    dialect: &'static dyn Dialect,
    body: &[u8],
    traceparent: Option<&str>,
    seen: &mut journal::Seen,
) -> Result<Done, Stop> {
    // identify: the TLS handshake verified the certificate; it must name a caller.
    let caller = caller
        .as_ref()
        .map_err(|refusal| Stop::from(refusal.clone()))?;
    let institution = &caller.institution;
    if institution.role == Role::Officer {
        return Err(
            Refusal::new(ErrorCode::RoleNotAllowed, "officers use the clearing API").into(),
        );
    }
    // limit: the caller's own rate was checked by limit::InstitutionLimitLayer.
    // decode and validate; authorize: the content must agree with the caller's identity.
    let request = span!("decode", jjj.dialect = dialect.name()).in_scope(|| {
        let request = dialect.decode_request(body, &gateway.decode_limits)?;
        *seen = journal::Seen::of(&request);
        validate_request(&request, &gateway.routes)?;
        authorize(gateway, caller, &request)?;
        Ok::<_, Refusal>(request)
    })?;
    // claims exchange between platforms (3260–3262): answered from the journal here.
    if request.infno().traits().sender == Sender::Platform {
        // Boxed, as the other rare paths' futures: held inline, they would
        // make every message's future larger, and it is moved several times.
        let answer = Box::pin(crate::clearing::claims::answer(gateway, caller, &request)).await?;
        let body =
            span!("encode").in_scope(|| dialect.encode_answer(Some(request.infno()), &answer));
        return Ok(Done::Answered(answer, body));
    }
    // route: to the insured region's platform.
    let insured = request.envelope.insuplc_admdvs.map(|r| r.admdvs());
    let region = insured
        .and_then(|admdvs| gateway.routes.route(admdvs))
        .ok_or_else(|| {
            Refusal::new(
                ErrorCode::UnknownRegion,
                "insuplc_admdvs has no configured platform",
            )
        })?;
    let target = &gateway.upstreams.regions[region];
    let admitted = span!("limit", jjj.scope = "region")
        .in_scope(|| gateway.limiters.admit_region(target.region.admdvs.value()));
    if let Err(wait) = admitted {
        gateway.metrics.limited(Scope::Region);
        return Err(Stop {
            refusal: Refusal::new(
                ErrorCode::RateLimited,
                format!("insured region {}", target.region.admdvs),
            ),
            retry_after: Some(wait),
        });
    }
    crate::supervision::screen(gateway, &request).await?;
    // journal(pending): nothing settlement-affecting is forwarded without its entry.
    let traits = request.infno().traits();
    let ledger = gateway.ledger.as_ref().filter(|_| traits.journalled);
    let key = journal::key(caller, &request);
    // The request in the national dialect, of which the journal takes its
    // digest: encoded once, and sent as it is to a platform that speaks it.
    let mut national = None;
    if let Some(ledger) = ledger {
        let encoded = adapters::national::encode_request(&request);
        let entry = journal::new_entry(caller, &request, &encoded, target.region.admdvs)?;
        national = Some(encoded);
        match ledger
            .begin(entry)
            .instrument(span!("journal", jjj.phase = "pending"))
            .await
        {
            Ok(Begin::Fresh) => {}
            Ok(Begin::Finished(entry)) => return Ok(Done::Replay(entry)),
            Ok(Begin::InFlight) => return Box::pin(wait_for_repeat(ledger, &key)).await,
            Ok(Begin::Reused) => {
                return Err(Refusal::new(
                    ErrorCode::MsgidReused,
                    "this msgid was used for another message",
                )
                .into())
            }
            Err(error) => {
                tracing::error!(%error, "journal unavailable: settlement refused before forwarding");
                return Err(Refusal::new(
                    ErrorCode::LedgerUnavailable,
                    "nothing was forwarded; retry later",
                )
                .into());
            }
        }
    }
    // upstream: in the platform's dialect, and back. The platform sees this
    // call's own span as the parent (or, with tracing off, the caller's header).
    let upstream_span = span!(
        "upstream",
        otel.kind = "client",
        jjj.region = %target.region.admdvs,
        jjj.platform_dialect = target.region.dialect.name(),
        jjj.failure = tracing::field::Empty,
    );
    let outgoing = upstream_span.in_scope(|| {
        Bytes::from(match national {
            Some(encoded) if target.region.dialect.name() == adapters::national::NAME => encoded,
            _ => target.region.dialect.encode_request(&request),
        })
    });
    let propagated = telemetry::traceparent(&upstream_span);
    let called = gateway
        .upstreams
        .call(
            region,
            traits.pace,
            outgoing,
            propagated.as_deref().or(traceparent),
        )
        .instrument(upstream_span.clone())
        .await;
    if let Err(failure) = &called {
        upstream_span.record("jjj.failure", failure.label());
        telemetry::failed(&upstream_span, failure.label());
    }
    let decoded = upstream_span.in_scope(|| match called {
        Ok(bytes) => target.region.dialect.decode_answer(request.infno(), &bytes, &gateway.decode_limits).map_err(|refusal| {
            tracing::warn!(infno = %request.infno(), region = %target.region.admdvs, code = refusal.code.slug(), "platform answer unreadable");
            // The platform may have acted on it: the outcome is unknown.
            (Refusal::new(ErrorCode::UpstreamBadAnswer, format!("{}: {}", target.region.name, refusal.detail)), true)
        }),
        Err(failure) => {
            gateway.metrics.upstream_failure(region, failure);
            tracing::warn!(infno = %request.infno(), region = %target.region.admdvs, failure = failure.label(), "platform call failed");
            Err((upstream_refusal(failure, &target.region.name), failure.outcome_unknown() || matches!(failure, Failure::Status(_))))
        }
    });
    drop(upstream_span);
    let answer = match decoded {
        Ok(answer) => answer,
        Err((refusal, unknown)) => {
            if let Some(ledger) = ledger {
                let state = if unknown {
                    State::Unknown
                } else {
                    State::Refused
                };
                let told = Answer::refusal(&refusal);
                let record = journal::finish(
                    state,
                    &told,
                    dialect.encode_answer_redacted(Some(request.infno()), &told),
                    dialect,
                    refusal.code.http_status(),
                    Some(refusal.code.number()),
                    Vec::new(),
                );
                let written = ledger
                    .finish(&key, record)
                    .instrument(span!("journal", jjj.phase = "final"))
                    .await;
                if unknown || written.is_err() {
                    spawn_resolution(gateway, ledger, &key);
                }
            }
            return Err(refusal.into());
        }
    };
    let anomalies = check_answer(request.infno(), &answer);
    for anomaly in &anomalies {
        gateway.metrics.anomaly(anomaly.rule);
        tracing::warn!(infno = %request.infno(), region = %target.region.admdvs, institution = %institution.code, rule = anomaly.rule, "platform answer passed on with an anomaly");
    }
    // journal(final): before the answer leaves the gateway. A platform's own
    // refusal (infcode not 0) is journalled refused, with its code: nothing took effect.
    // What supervision keeps of it goes into the same write.
    let fact = crate::supervision::observe(gateway, &request, &answer);
    // encode(caller's dialect): for the caller, and without personal data for
    // the journal, in one pass.
    let (body, redacted) = span!("encode").in_scope(|| match ledger {
        Some(_) => {
            let (body, redacted) =
                dialect.encode_answer_and_redacted(Some(request.infno()), &answer);
            (body, Some(redacted))
        }
        None => (dialect.encode_answer(Some(request.infno()), &answer), None),
    });
    if let (Some(ledger), Some(redacted)) = (ledger, redacted) {
        let rules = anomalies.iter().map(|a| a.rule.to_owned()).collect();
        let (state, error_code) = if answer.envelope.is_success() {
            (State::Done, None)
        } else {
            let code = answer.envelope.infcode.and_then(|c| u16::try_from(c).ok());
            (State::Refused, code)
        };
        let record = journal::finish(state, &answer, redacted, dialect, 200, error_code, rules);
        let observed = fact.as_ref().and_then(crate::supervision::journalled);
        let written = ledger
            .finish_observed(&key, record, observed)
            .instrument(span!("journal", jjj.phase = "final"))
            .await;
        if let Err(error) = written {
            // The platform has committed, the journal cannot say so: the hospital
            // must not believe either outcome. The gateway reverses it.
            tracing::error!(%error, "journal unavailable after the platform answered; reversing");
            spawn_resolution(gateway, ledger, &key);
            return Err(Refusal::new(ErrorCode::UpstreamTimeout, "the journal failed after the platform answered; the gateway reverses this call, send a new message").into());
        }
        if let (RequestBody::Reversal(reversal), true) =
            (&request.input, answer.envelope.is_success())
        {
            let original = ledger::Key {
                caller: key.caller.clone(),
                msgid: reversal.data.omsgid.clone().unwrap_or_default(),
            };
            if let Err(error) = ledger
                .resolve(&original, State::Reversed, journal::now_ms())
                .await
            {
                tracing::info!(%error, "the reversed call was not journalled here or is already resolved");
            }
        }
    }
    crate::supervision::hand(gateway, fact, ledger.is_some());
    Ok(Done::Answered(answer, body))
}

/// A repeat of a message still in flight waits for it, boundedly.
async fn wait_for_repeat(ledger: &ledger::Ledger, key: &ledger::Key) -> Result<Done, Stop> {
    let deadline = Instant::now() + Duration::from_millis(journal::IN_FLIGHT_WAIT_MS_MAX);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok(Some(entry)) = ledger.get(key).await {
            if entry.state != State::Pending {
                return Ok(Done::Replay(entry));
            }
        }
    }
    Err(Refusal::new(
        ErrorCode::InFlight,
        "the same msgid is still being processed",
    )
    .into())
}

fn spawn_resolution(gateway: &Arc<Gateway>, ledger: &ledger::Ledger, key: &ledger::Key) {
    let (gateway, ledger, key) = (gateway.clone(), ledger.clone(), key.clone());
    tokio::spawn(async move {
        match ledger.get(&key).await {
            Ok(Some(entry)) => journal::resolve(gateway, entry).await,
            _ => tracing::error!(
                "an unknown outcome could not be read back; start-up recovery will reverse it"
            ),
        }
    });
}

/// The refusal the hospital sees when its platform could not answer.
fn upstream_refusal(failure: Failure, region: &str) -> Refusal {
    match failure {
        Failure::Unreachable => Refusal::new(ErrorCode::UpstreamUnreachable, format!("{region}: no platform address answers; nothing was sent")),
        Failure::Timeout => Refusal::new(ErrorCode::UpstreamTimeout, format!("{region}: no answer in time; the outcome is unknown, send a reversal (2601) before retrying")),
        Failure::Lost => Refusal::new(ErrorCode::UpstreamTimeout, format!("{region}: connection lost after sending; the outcome is unknown, send a reversal (2601) before retrying")),
        Failure::Status(status) => Refusal::new(ErrorCode::UpstreamBadAnswer, format!("{region}: HTTP {status}")),
    }
}

/// The content rules of DESIGN.md's *Identity and roles*.
fn authorize(gateway: &Gateway, caller: &Caller, request: &Request) -> Result<(), Refusal> {
    let institution = &caller.institution;
    let envelope = &request.envelope;
    let named = envelope.fixmedins_code.as_deref().unwrap_or_default();
    let treatment = envelope.mdtrtarea_admvs.map(|r| r.admdvs());
    // A region code and the caller's agree when one lies within the other (110000 and 110105).
    let same_region =
        |code: contracts::Admdvs, own: contracts::Admdvs| code.within(own) || own.within(code);
    match institution.role {
        Role::Hospital => {
            if request.infno().traits().sender == Sender::Platform {
                return Err(Refusal::new(
                    ErrorCode::RoleNotAllowed,
                    format!("{} is for platforms", request.infno()),
                ));
            }
            if named != institution.code {
                return Err(Refusal::new(
                    ErrorCode::InstitutionMismatch,
                    "fixmedins_code is not the caller's own code",
                ));
            }
            if !treatment.is_some_and(|t| same_region(t, institution.admdvs)) {
                return Err(Refusal::new(
                    ErrorCode::RegionMismatch,
                    format!(
                        "mdtrtarea_admvs must be the caller's region {}",
                        institution.admdvs
                    ),
                ));
            }
        }
        Role::Platform => {
            if !treatment.is_some_and(|t| t.within(institution.admdvs)) {
                return Err(Refusal::new(
                    ErrorCode::RegionMismatch,
                    format!("a platform acts only for its region {}", institution.admdvs),
                ));
            }
            if request.infno().traits().sender == Sender::Institution {
                let acts_for = gateway.directory.get(named).map(|c| c.institution.clone());
                if !acts_for.is_some_and(|i| {
                    i.role == Role::Hospital && i.admdvs.within(institution.admdvs)
                }) {
                    return Err(Refusal::new(
                        ErrorCode::InstitutionMismatch,
                        "fixmedins_code is not an institution of the platform's region",
                    ));
                }
            }
        }
        Role::Officer => {
            return Err(Refusal::new(
                ErrorCode::RoleNotAllowed,
                "officers use the clearing API",
            ))
        }
    }
    Ok(())
}

/// The answer to a caller over its own rate (for [`crate::limit::InstitutionLimitLayer`]):
/// 429 with `Retry-After`, in `dialect`, counted like every other refusal.
pub fn limited(
    gateway: &Gateway,
    dialect: &'static dyn Dialect,
    institution: &str,
    wait: Duration,
) -> Reply {
    let stop = Stop {
        refusal: Refusal::new(ErrorCode::RateLimited, format!("institution {institution}")),
        retry_after: Some(wait),
    };
    reply(gateway, dialect, None, Err(stop), Instant::now())
}

/// Turns the outcome into the caller's answer: the one place refusals become replies.
fn reply(
    gateway: &Gateway,
    dialect: &'static dyn Dialect,
    infno: Option<Infno>,
    outcome: Result<Done, Stop>,
    started: Instant,
) -> Reply {
    match outcome {
        Ok(Done::Replay(entry)) => {
            gateway
                .metrics
                .request(infno, Outcome::Answered, started.elapsed());
            match entry.reply {
                Some(reply) => Reply {
                    status: reply.status,
                    body: reply.bytes,
                    media_type: dialect.media_type(),
                    retry_after: None,
                },
                // Resolved after a crash, before any reply was written: say what happened.
                None => {
                    let refusal = Refusal::new(
                        ErrorCode::UpstreamTimeout,
                        format!(
                            "this message's outcome was unknown and it is now {}",
                            entry.state
                        ),
                    );
                    Reply {
                        status: refusal.code.http_status(),
                        body: span!("encode")
                            .in_scope(|| dialect.encode_answer(infno, &Answer::refusal(&refusal))),
                        media_type: dialect.media_type(),
                        retry_after: None,
                    }
                }
            }
        }
        Ok(Done::Answered(_, body)) => {
            gateway
                .metrics
                .request(infno, Outcome::Answered, started.elapsed());
            Reply {
                status: 200,
                body,
                media_type: dialect.media_type(),
                retry_after: None,
            }
        }
        Err(stop) => {
            let code = stop.refusal.code;
            let outcome = if code.http_status() >= 500 {
                Outcome::Failed
            } else {
                Outcome::Refused
            };
            gateway.metrics.request(infno, outcome, started.elapsed());
            gateway.metrics.refusal(code);
            if code.http_status() == 403 {
                tracing::warn!(infno = ?infno, code = code.slug(), detail = %stop.refusal.detail, "refused: content contradicts the caller's identity");
            } else {
                tracing::info!(infno = ?infno, code = code.slug(), detail = %stop.refusal.detail, "refused");
            }
            Reply {
                status: code.http_status(),
                body: span!("encode")
                    .in_scope(|| dialect.encode_answer(infno, &Answer::refusal(&stop.refusal))),
                media_type: dialect.media_type(),
                retry_after: stop
                    .retry_after
                    .map(|wait| wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
                    .map(|s| s.max(1)),
            }
        }
    }
}
