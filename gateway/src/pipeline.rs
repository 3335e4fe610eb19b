//! The path of one message, read top to bottom:
//!
//! ```text
//! identify ─▶ limit(institution) ─▶ decode(caller's dialect) ─▶ validate ─▶ authorize
//!   ─▶ route ─▶ limit(region) ─▶ encode(platform's dialect) ─▶ upstream call
//!   ─▶ decode(platform's dialect) ─▶ check answer ─▶ encode(caller's dialect)
//! ```
//!
//! Every step either passes the exchange on or stops it with a [`Stop`]; the
//! one place that turns a stop into an answer is [`reply`], in the caller's
//! own dialect, with the catalogue's HTTP status.

use crate::config::Role;
use crate::identity::Caller;
use crate::limit::Scope;
use crate::metrics::Outcome;
use crate::state::Gateway;
use crate::upstream::Failure;
use adapters::Dialect;
use bytes::Bytes;
use contracts::transaction::Sender;
use contracts::validate::{check_answer, validate_request};
use contracts::{Answer, ErrorCode, Infno, Refusal, Request};
use std::time::{Duration, Instant};

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
    gateway: &Gateway,
    caller: &Result<Caller, Refusal>,
    dialect: &'static dyn Dialect,
    body: &[u8],
    traceparent: Option<&str>,
) -> Reply {
    let started = Instant::now();
    let mut infno = None;
    let outcome = run(gateway, caller, dialect, body, traceparent, &mut infno).await;
    reply(gateway, dialect, infno, outcome, started)
}

async fn run(
    gateway: &Gateway,
    caller: &Result<Caller, Refusal>,
    dialect: &'static dyn Dialect,
    body: &[u8],
    traceparent: Option<&str>,
    infno: &mut Option<Infno>,
) -> Result<Answer, Stop> {
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
    // limit: the caller's own rate, before any work is spent on it.
    if let Err(wait) = gateway.limiters.admit_institution(caller.index) {
        gateway.metrics.limited(Scope::Institution);
        return Err(Stop {
            refusal: Refusal::new(
                ErrorCode::RateLimited,
                format!("institution {}", institution.code),
            ),
            retry_after: Some(wait),
        });
    }
    // decode and validate.
    let request = dialect.decode_request(body, &gateway.decode_limits)?;
    *infno = Some(request.infno());
    validate_request(&request, &gateway.routes)?;
    // authorize: the content must agree with the caller's identity.
    authorize(gateway, caller, &request)?;
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
    if let Err(wait) = gateway.limiters.admit_region(target.region.admdvs.value()) {
        gateway.metrics.limited(Scope::Region);
        return Err(Stop {
            refusal: Refusal::new(
                ErrorCode::RateLimited,
                format!("insured region {}", target.region.admdvs),
            ),
            retry_after: Some(wait),
        });
    }
    // upstream: in the platform's dialect, and back.
    let traits = request.infno().traits();
    let outgoing = Bytes::from(target.region.dialect.encode_request(&request));
    let answer_bytes = gateway.upstreams.call(region, traits.pace, outgoing, traceparent).await.map_err(|failure| {
        gateway.metrics.upstream_failure(region, failure);
        tracing::warn!(infno = %request.infno(), region = %target.region.admdvs, failure = failure.label(), "platform call failed");
        Stop::from(upstream_refusal(failure, &target.region.name))
    })?;
    let answer = target.region.dialect.decode_answer(request.infno(), &answer_bytes, &gateway.decode_limits).map_err(|refusal| {
        tracing::warn!(infno = %request.infno(), region = %target.region.admdvs, code = refusal.code.slug(), "platform answer unreadable");
        Stop::from(Refusal::new(ErrorCode::UpstreamBadAnswer, format!("{}: {}", target.region.name, refusal.detail)))
    })?;
    for anomaly in check_answer(request.infno(), &answer) {
        gateway.metrics.anomaly(anomaly.rule);
        tracing::warn!(infno = %request.infno(), region = %target.region.admdvs, institution = %institution.code, rule = anomaly.rule, "platform answer passed on with an anomaly");
    }
    Ok(answer)
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
    if request.infno().traits().sender == Sender::Platform {
        return Err(Refusal::new(ErrorCode::InvalidRequest, "clearing exchange (3260–3262) is served from the gateway's ledger, which is not enabled"));
    }
    Ok(())
}

/// Turns the outcome into the caller's answer: the one place refusals become replies.
fn reply(
    gateway: &Gateway,
    dialect: &'static dyn Dialect,
    infno: Option<Infno>,
    outcome: Result<Answer, Stop>,
    started: Instant,
) -> Reply {
    match outcome {
        Ok(answer) => {
            gateway
                .metrics
                .request(infno, Outcome::Answered, started.elapsed());
            Reply {
                status: 200,
                body: dialect.encode_answer(infno, &answer),
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
                body: dialect.encode_answer(infno, &Answer::refusal(&stop.refusal)),
                media_type: dialect.media_type(),
                retry_after: stop
                    .retry_after
                    .map(|wait| wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
                    .map(|s| s.max(1)),
            }
        }
    }
}
