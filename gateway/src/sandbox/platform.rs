//! A regional platform's stand-in: one mutual-TLS server per region, in the
//! region's own dialect, answering every transaction, with faults that can be
//! injected (added latency, error answers, the connection dropped after a
//! settlement was committed, garbage answers).
//!
//! Settlement splits here are the stand-in's simple rule (a fixed share of
//! the in-scope amount from the pooled fund); the published policies are the
//! policy engine's (`sandbox::policy`), which takes over as it lands.

use crate::sandbox::config::{Faults, Platform, SandboxConfig};
use bytes::Bytes;
use contracts::model::person::BaseInfo;
use contracts::model::settlement::{SetlDetail, SetlInfo, SettleRequest, SettlementOutput};
use contracts::model::visit::VisitIds;
use contracts::record::Stamp;
use contracts::{Answer, AnswerBody, DateTime, Effect, Money, Request, RequestBody};
use http::{Request as HttpRequest, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// The pooled fund's share of the in-scope amount in the stand-in's rule, in basis points.
pub const STAND_IN_FUND_SHARE_BP: i64 = 6_000;

/// One running platform's state.
struct State {
    platform: Platform,
    faults: Mutex<Faults>,
    serial: AtomicU64,
    /// Committed settlements by setl_id, to answer cancels with the negated split.
    settlements: Mutex<HashMap<String, SetlInfo>>,
    /// msgid of committed calls → setl_id, to undo on reversal.
    by_msgid: Mutex<HashMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
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

    fn answer(&self, request: &Request) -> Answer {
        let now = Stamp(DateTime::now());
        let mut envelope = contracts::model::envelope::AnswerEnvelope {
            infcode: Some(0),
            inf_refmsgid: Some(self.next_id()),
            refmsg_time: Some(now),
            respond_time: Some(now),
            ..Default::default()
        };
        let infno = request.infno();
        let msgid = request.envelope.msgid.clone().unwrap_or_default();
        let output = match &request.input {
            RequestBody::PersonLookup(_) => {
                let out = contracts::model::person::PersonLookupOutput {
                    baseinfo: Some(BaseInfo {
                        psn_no: Some(format!("P{}", self.next_id())),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                Some(AnswerBody::PersonLookup(out))
            }
            RequestBody::OutpatientRegister(_) | RequestBody::Admission(_) => {
                let ids = VisitIds {
                    mdtrt_id: Some(self.next_id()),
                    psn_no: Some("P0".into()),
                    ..Default::default()
                };
                let mut body = AnswerBody::empty(infno);
                if let AnswerBody::OutpatientRegister(o) | AnswerBody::Admission(o) = &mut body {
                    o.data = ids;
                }
                Some(body)
            }
            RequestBody::OutpatientPreSettle(i)
            | RequestBody::OutpatientSettle(i)
            | RequestBody::InpatientPreSettle(i)
            | RequestBody::InpatientSettle(i) => Some(self.settle(infno, &i.data, &msgid)),
            RequestBody::PharmacyPreSettle(i) | RequestBody::PharmacySettle(i) => {
                Some(self.settle(infno, &i.data, &msgid))
            }
            RequestBody::OutpatientSettleCancel(i)
            | RequestBody::InpatientSettleCancel(i)
            | RequestBody::PharmacySettleCancel(i) => {
                let original = i.data.setl_id.clone().unwrap_or_default();
                match lock(&self.settlements).remove(&original) {
                    Some(info) => {
                        let cancel = negate(&info, self.next_id());
                        lock(&self.by_msgid).insert(msgid, original);
                        let mut body = AnswerBody::empty(infno);
                        set_settlement(
                            &mut body,
                            SettlementOutput {
                                setlinfo: cancel,
                                ..Default::default()
                            },
                        );
                        Some(body)
                    }
                    None => {
                        envelope.infcode = Some(-1);
                        envelope.err_msg =
                            Some("结算记录不存在或已撤销 / no such settlement".into());
                        None
                    }
                }
            }
            RequestBody::Reversal(i) => {
                // Undo whatever the original msgid committed; acknowledge either way.
                let original = i.data.omsgid.clone().unwrap_or_default();
                if let Some(setl_id) = lock(&self.by_msgid).remove(&original) {
                    lock(&self.settlements).remove(&setl_id);
                }
                Some(AnswerBody::empty(infno))
            }
            _ => Some(AnswerBody::empty(infno)),
        };
        Answer { envelope, output }
    }

    fn settle(&self, infno: contracts::Infno, data: &SettleRequest, msgid: &str) -> AnswerBody {
        let total = data.medfee_sumamt.unwrap_or_default();
        let out_of_scope = [
            data.fulamt_ownpay_amt,
            data.overlmt_selfpay,
            data.preselfpay_amt,
        ]
        .iter()
        .flatten()
        .fold(0i64, |a, m| a + m.fen());
        let in_scope = data
            .inscp_scp_amt
            .map_or(total.fen() - out_of_scope, Money::fen);
        // Half-up to the fen; the person pays the rest, so the split always balances.
        let fund = (in_scope * STAND_IN_FUND_SHARE_BP + 5_000) / 10_000;
        let person = total.fen() - fund;
        let money = |fen: i64| Money::from_fen(fen);
        let committed = infno.traits().effect == Effect::Settle;
        let info = SetlInfo {
            mdtrt_id: data.mdtrt_id.clone(),
            setl_id: committed.then(|| self.next_id()),
            psn_no: data.psn_no.clone(),
            insutype: data.insutype.clone(),
            med_type: data.med_type.clone(),
            setl_time: Some(DateTime::now().truncated_to_seconds()),
            medfee_sumamt: Some(total),
            fulamt_ownpay_amt: data.fulamt_ownpay_amt,
            overlmt_selfpay: data.overlmt_selfpay,
            preselfpay_amt: data.preselfpay_amt,
            inscp_scp_amt: data.inscp_scp_amt,
            hifp_pay: money(fund),
            fund_pay_sumamt: money(fund),
            psn_part_amt: money(person),
            acct_pay: Some(Money::ZERO),
            psn_cash_pay: money(person),
            hosp_part_amt: Some(Money::ZERO),
            clr_optins: Some(self.platform.admdvs.to_string()),
            ..Default::default()
        };
        if let (true, Some(setl_id)) = (committed, info.setl_id.clone()) {
            lock(&self.settlements).insert(setl_id.clone(), info.clone());
            lock(&self.by_msgid).insert(msgid.to_owned(), setl_id);
        }
        let detail = SetlDetail {
            fund_pay_type: Some("310100".into()),
            fund_payamt: money(fund),
            ..Default::default()
        };
        let mut body = AnswerBody::empty(infno);
        set_settlement(
            &mut body,
            SettlementOutput {
                setlinfo: info,
                setldetail: vec![detail],
                ..Default::default()
            },
        );
        body
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

fn negate(info: &SetlInfo, setl_id: String) -> SetlInfo {
    let neg = |m: Option<Money>| m.map(Money::negated);
    SetlInfo {
        setl_id: Some(setl_id),
        setl_time: Some(DateTime::now().truncated_to_seconds()),
        medfee_sumamt: neg(info.medfee_sumamt),
        fulamt_ownpay_amt: neg(info.fulamt_ownpay_amt),
        overlmt_selfpay: neg(info.overlmt_selfpay),
        preselfpay_amt: neg(info.preselfpay_amt),
        inscp_scp_amt: neg(info.inscp_scp_amt),
        hifp_pay: neg(info.hifp_pay),
        fund_pay_sumamt: neg(info.fund_pay_sumamt),
        psn_part_amt: neg(info.psn_part_amt),
        acct_pay: neg(info.acct_pay),
        psn_cash_pay: neg(info.psn_cash_pay),
        hosp_part_amt: neg(info.hosp_part_amt),
        ..info.clone()
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
    let config = Arc::new(config);
    let mut tasks = Vec::new();
    for platform in config.platforms.clone() {
        tasks.push(tokio::spawn(run_platform(
            config.clone(),
            platform,
            tls.clone(),
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
