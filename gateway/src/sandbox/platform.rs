//! A regional platform's stand-in: one mutual-TLS server per region, in the
//! region's own dialect, answering every transaction, with faults that can be
//! injected (added latency, error answers, the connection dropped after a
//! settlement was committed, garbage answers).
//!
//! People come from the deterministic population (`sandbox::population`), and
//! splits from the insured region's published policy (`sandbox::policy`), with
//! each person's year-to-date totals kept per platform. A hospital's level is
//! read from its code's last digit ([`level_of`]).

use crate::sandbox::config::{Faults, Platform, SandboxConfig};
use crate::sandbox::policy::{
    Accumulators, Delta, Fees, Filing, Level, Owner, Policies, Split, Visit,
};
use crate::sandbox::population::{self, Person};
use bytes::Bytes;
use chrono::Datelike;
use contracts::model::envelope::AnswerEnvelope;
use contracts::model::settlement::{SetlInfo, SettleRequest, SettlementOutput};
use contracts::model::visit::VisitIds;
use contracts::record::Stamp;
use contracts::{
    Answer, AnswerBody, Date, DateTime, Effect, Infno, MdtrtCertType, MedType, PsnCertType,
    Request, RequestBody,
};
use http::{Request as HttpRequest, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// A committed settlement, kept to answer its cancel or reversal.
#[derive(Debug, Clone)]
struct Committed {
    info: SetlInfo,
    split: Split,
    person: String,
    delta: Delta,
}

/// One running platform's state.
struct State {
    platform: Platform,
    faults: Mutex<Faults>,
    serial: AtomicU64,
    /// The insured regions' policies.
    policies: Arc<Policies>,
    /// Person numbers this platform gave out, and the ID number each stands for.
    people: Mutex<HashMap<String, String>>,
    /// Year-to-date totals by ID number.
    totals: Mutex<HashMap<String, Accumulators>>,
    /// Committed settlements by setl_id.
    settlements: Mutex<HashMap<String, Committed>>,
    /// msgid of committed calls → setl_id, to undo on reversal.
    by_msgid: Mutex<HashMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Today on the Shanghai clock.
fn today() -> Date {
    DateTime::now().date()
}

/// The sandbox reads a hospital's level from its code's last digit:
/// 1, 4, 7 → 一级; 2, 5, 8 → 二级; anything else → 三级.
pub fn level_of(code: &str) -> Level {
    match code.bytes().last() {
        Some(b'1' | b'4' | b'7') => Level::One,
        Some(b'2' | b'5' | b'8') => Level::Two,
        _ => Level::Three,
    }
}

fn set_settlement(body: &mut AnswerBody, output: SettlementOutput) {
    match body {
        AnswerBody::OutpatientPreSettle(o)
        | AnswerBody::OutpatientSettle(o)
        | AnswerBody::OutpatientSettleCancel(o)
        | AnswerBody::InpatientPreSettle(o)
        | AnswerBody::InpatientSettle(o)
        | AnswerBody::InpatientSettleCancel(o)
        | AnswerBody::PharmacyPreSettle(o)
        | AnswerBody::PharmacySettle(o)
        | AnswerBody::PharmacySettleCancel(o) => *o = output,
        _ => {}
    }
}

impl State {
    fn next_id(&self) -> String {
        let n = self.serial.fetch_add(1, Ordering::Relaxed);
        format!(
            "{}{}{:010}",
            self.platform.admdvs,
            DateTime::now().to_compact(),
            n
        )
    }

    fn person(&self, number: &str) -> Option<Person> {
        population::person(number, self.platform.admdvs, today())
    }

    fn totals_of(&self, number: &str, on: Date) -> Accumulators {
        lock(&self.totals)
            .get(number)
            .map_or_else(Accumulators::default, |t| t.for_year(on.naive().year()))
    }

    fn revert(&self, committed: &Committed) {
        if let Some(totals) = lock(&self.totals).get_mut(&committed.person) {
            totals.revert(&committed.delta);
        }
    }

    fn answer(&self, request: &Request) -> Answer {
        let now = Stamp(DateTime::now());
        let mut envelope = AnswerEnvelope {
            infcode: Some(0),
            inf_refmsgid: Some(self.next_id()),
            refmsg_time: Some(now),
            respond_time: Some(now),
            ..Default::default()
        };
        let infno = request.infno();
        let msgid = request.envelope.msgid.clone().unwrap_or_default();
        let outcome: Result<Option<AnswerBody>, String> = match &request.input {
            RequestBody::PersonLookup(i) => {
                let number = match (&i.data.mdtrt_cert_type, &i.data.psn_cert_type) {
                    (Some(MdtrtCertType::IdCard), _) => i.data.mdtrt_cert_no.as_ref(),
                    (_, Some(PsnCertType::ResidentId)) => i.data.certno.as_ref(),
                    _ => None,
                };
                match number.and_then(|n| self.person(n.expose())) {
                    Some(person) => {
                        let balance = self
                            .totals_of(person.id.expose(), today())
                            .balance(person.account_balance);
                        lock(&self.people)
                            .insert(person.psn_no.clone(), person.id.expose().to_owned());
                        Ok(Some(AnswerBody::PersonLookup(
                            person.lookup_output(balance),
                        )))
                    }
                    None => Err("未查询到参保人员信息 / person not found".into()),
                }
            }
            RequestBody::OutpatientRegister(_) | RequestBody::Admission(_) => {
                let psn_no = match &request.input {
                    RequestBody::OutpatientRegister(i) => i.data.psn_no.clone(),
                    RequestBody::Admission(i) => i.mdtrtinfo.psn_no.clone(),
                    _ => None,
                };
                let mut body = AnswerBody::empty(infno);
                if let AnswerBody::OutpatientRegister(o) | AnswerBody::Admission(o) = &mut body {
                    o.data = VisitIds {
                        mdtrt_id: Some(self.next_id()),
                        psn_no,
                        ..Default::default()
                    };
                }
                Ok(Some(body))
            }
            RequestBody::OutpatientPreSettle(i)
            | RequestBody::OutpatientSettle(i)
            | RequestBody::InpatientPreSettle(i)
            | RequestBody::InpatientSettle(i) => self.settle(request, &i.data, &msgid).map(Some),
            RequestBody::PharmacyPreSettle(i) | RequestBody::PharmacySettle(i) => {
                self.settle(request, &i.data, &msgid).map(Some)
            }
            RequestBody::OutpatientSettleCancel(i)
            | RequestBody::InpatientSettleCancel(i)
            | RequestBody::PharmacySettleCancel(i) => {
                let original = i.data.setl_id.clone().unwrap_or_default();
                let committed = lock(&self.settlements).remove(&original);
                match committed {
                    Some(committed) => {
                        self.revert(&committed);
                        let reverse = committed.split.cancelled();
                        let mut cancel = committed.info.clone();
                        reverse.fill_setlinfo(&mut cancel);
                        cancel.setl_id = Some(self.next_id());
                        cancel.setl_time = Some(DateTime::now().truncated_to_seconds());
                        lock(&self.by_msgid).insert(msgid, original);
                        let mut body = AnswerBody::empty(infno);
                        set_settlement(
                            &mut body,
                            SettlementOutput {
                                setlinfo: cancel,
                                setldetail: reverse.setldetail(),
                                ..Default::default()
                            },
                        );
                        Ok(Some(body))
                    }
                    None => Err("结算记录不存在或已撤销 / no such settlement".into()),
                }
            }
            RequestBody::Reversal(i) => {
                // Undo whatever the original msgid committed; acknowledge either way.
                let original = i.data.omsgid.clone().unwrap_or_default();
                let setl_id = lock(&self.by_msgid).remove(&original);
                let committed = setl_id.and_then(|id| lock(&self.settlements).remove(&id));
                if let Some(committed) = committed {
                    self.revert(&committed);
                }
                Ok(Some(AnswerBody::empty(infno)))
            }
            _ => Ok(Some(AnswerBody::empty(infno))),
        };
        match outcome {
            Ok(output) => Answer { envelope, output },
            Err(why) => {
                envelope.infcode = Some(-1);
                envelope.err_msg = Some(why);
                Answer {
                    envelope,
                    output: None,
                }
            }
        }
    }

    fn settle(
        &self,
        request: &Request,
        data: &SettleRequest,
        msgid: &str,
    ) -> Result<AnswerBody, String> {
        let infno = request.infno();
        let number = match data.mdtrt_cert_type {
            Some(MdtrtCertType::IdCard) => {
                data.mdtrt_cert_no.as_ref().map(|n| n.expose().to_owned())
            }
            _ => data
                .psn_no
                .as_ref()
                .and_then(|p| lock(&self.people).get(p).cloned()),
        };
        let person = number
            .as_deref()
            .and_then(|n| self.person(n))
            .ok_or("未查询到参保人员信息 / person not found")?;
        let on = today();
        let med_type = match infno {
            Infno::InpatientPreSettle | Infno::InpatientSettle => {
                data.med_type.clone().unwrap_or(MedType::Inpatient)
            }
            Infno::PharmacyPreSettle | Infno::PharmacySettle => MedType::Pharmacy,
            _ => data.med_type.clone().unwrap_or(MedType::Outpatient),
        };
        let fees = Fees::from_request(data).ok_or("费用分项不全 / incomplete fee breakdown")?;
        let visit = Visit {
            treatment: request
                .envelope
                .mdtrtarea_admvs
                .map_or(self.platform.admdvs, |r| r.admdvs()),
            level: level_of(
                request
                    .envelope
                    .fixmedins_code
                    .as_deref()
                    .unwrap_or_default(),
            ),
            owner: Owner::City,
            med_type,
            fees,
            use_account: data.acct_used_flag.as_deref() == Some("1"),
            setl_date: on,
            filing: Filing::Filed,
        };
        let before = self.totals_of(person.id.expose(), on);
        let settlement = self
            .policies
            .settle(&person, &visit, &before)
            .map_err(|e| format!("结算失败 / cannot settle: {e}"))?;
        let mut info = SetlInfo {
            mdtrt_id: data.mdtrt_id.clone(),
            setl_time: Some(DateTime::now().truncated_to_seconds()),
            clr_optins: Some(self.platform.admdvs.to_string()),
            ..Default::default()
        };
        person.fill_setlinfo(&mut info);
        settlement.split.fill_setlinfo(&mut info);
        if infno.traits().effect == Effect::Settle {
            let setl_id = self.next_id();
            info.setl_id = Some(setl_id.clone());
            lock(&self.totals).insert(person.id.expose().to_owned(), settlement.after);
            lock(&self.by_msgid).insert(msgid.to_owned(), setl_id.clone());
            let record = Committed {
                info: info.clone(),
                split: settlement.split.clone(),
                person: person.id.expose().to_owned(),
                delta: settlement.delta,
            };
            lock(&self.settlements).insert(setl_id, record);
        }
        let mut body = AnswerBody::empty(infno);
        set_settlement(
            &mut body,
            SettlementOutput {
                setlinfo: info,
                setldetail: settlement.split.setldetail(),
                ..Default::default()
            },
        );
        Ok(body)
    }
}

/// What the connection handler should do with a request.
enum Act {
    Answer(Vec<u8>),
    Drop,
}

async fn respond(state: &State, body: &[u8], admin: bool) -> Act {
    let dialect = state.platform.dialect;
    if admin {
        // Fault injection at run time: the body is a TOML fragment of `Faults`.
        let text = String::from_utf8_lossy(body);
        return match toml::from_str::<Faults>(&text) {
            Ok(faults) => {
                *lock(&state.faults) = faults;
                Act::Answer(b"faults set\n".to_vec())
            }
            Err(error) => Act::Answer(format!("bad faults: {error}\n").into_bytes()),
        };
    }
    let faults = lock(&state.faults).clone();
    if faults.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(faults.latency_ms)).await;
    }
    let roll = |percent: u8| {
        percent > 0 && (state.serial.fetch_add(1, Ordering::Relaxed) % 100) < u64::from(percent)
    };
    if roll(faults.garbage_percent) {
        return Act::Answer(b"\x00garbage\xff".to_vec());
    }
    let request = match dialect.decode_request(body, &adapters::Limits::DEFAULT) {
        Ok(request) => request,
        Err(refusal) => {
            return Act::Answer(dialect.encode_answer(None, &Answer::refusal(&refusal)))
        }
    };
    if roll(faults.error_percent) {
        let refusal = contracts::Refusal::new(
            contracts::ErrorCode::Internal,
            "模拟平台故障 / simulated platform fault",
        );
        return Act::Answer(
            dialect.encode_answer(Some(request.infno()), &Answer::refusal(&refusal)),
        );
    }
    let answer = state.answer(&request);
    if request.infno().traits().effect == Effect::Settle && roll(faults.drop_after_commit_percent) {
        return Act::Drop;
    }
    Act::Answer(dialect.encode_answer(Some(request.infno()), &answer))
}

/// Runs one platform until the process ends.
async fn run_platform(
    config: Arc<SandboxConfig>,
    platform: Platform,
    tls: Arc<rustls::ServerConfig>,
    policies: Arc<Policies>,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(platform.listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", platform.listen))?;
    println!(
        "platform {} ({}, {}) listening on https://{}",
        platform.admdvs,
        platform.name,
        platform.dialect.name(),
        listener.local_addr()?
    );
    let state = Arc::new(State {
        faults: Mutex::new(platform.faults.clone()),
        platform,
        serial: AtomicU64::new(0),
        policies,
        people: Mutex::new(HashMap::new()),
        totals: Mutex::new(HashMap::new()),
        settlements: Mutex::new(HashMap::new()),
        by_msgid: Mutex::new(HashMap::new()),
    });
    let _ = config;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(tls_stream) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper::service::service_fn(move |request: HttpRequest<Incoming>| {
                let state = state.clone();
                async move {
                    let admin = request.uri().path() == "/admin/faults";
                    let body = match Limited::new(request.into_body(), 16 * 1024 * 1024)
                        .collect()
                        .await
                    {
                        Ok(collected) => collected.to_bytes(),
                        Err(_) => Bytes::new(),
                    };
                    match respond(&state, &body, admin).await {
                        Act::Answer(bytes) => {
                            let mut response = Response::new(Full::new(Bytes::from(bytes)));
                            response.headers_mut().insert(
                                http::header::CONTENT_TYPE,
                                http::HeaderValue::from_static(state.platform.dialect.media_type()),
                            );
                            *response.status_mut() = StatusCode::OK;
                            Ok(response)
                        }
                        Act::Drop => Err(std::io::Error::other(
                            "dropped after commit (injected fault)",
                        )),
                    }
                }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(tls_stream), service)
                .await;
        });
    }
}

/// Runs every configured platform until SIGTERM or SIGINT.
pub async fn run(config: SandboxConfig) -> anyhow::Result<()> {
    let tls = crate::tls::server_config(&config.ca, &config.cert, &config.key)?;
    let policies = Arc::new(Policies::builtin()?);
    let config = Arc::new(config);
    let mut tasks = Vec::new();
    for platform in config.platforms.clone() {
        tasks.push(tokio::spawn(run_platform(
            config.clone(),
            platform,
            tls.clone(),
            policies.clone(),
        )));
    }
    tokio::select! {
        () = crate::telemetry::termination() => Ok(()),
        finished = async {
            for task in tasks {
                task.await??;
            }
            Ok::<(), anyhow::Error>(())
        } => finished,
    }
}
