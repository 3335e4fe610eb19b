//! A regional platform's stand-in: one mutual-TLS server per region, in the
//! region's own dialect, answering every transaction, with faults that can be
//! injected (added latency, error answers, the connection dropped after a
//! settlement was committed, garbage answers).
//!
//! People come from the deterministic population (`sandbox::population`), and
//! splits from the insured region's published policy (`sandbox::policy`).
//! What a platform must remember — the psn_no it gave out, each person's
//! year-to-date totals, committed settlements and how to undo them, and one
//! event per settlement, cancel and reversal — is in its record
//! (`sandbox::record`, `DATA/<admdvs>.sqlite`), written before the answer
//! leaves, so a restarted sandbox carries on where it stopped. Nothing is
//! cached in memory: every answer reads the record. A hospital's level is
//! read from its code's last digit ([`level_of`]).
//!
//! Record work is blocking (SQLite, an fsync per commit): each answer is
//! computed on `tokio::task::spawn_blocking`.

use crate::sandbox::config::{Faults, Platform, SandboxConfig};
use crate::sandbox::policy::{Accumulators, Fees, Filing, Level, Owner, Policies, Visit};
use crate::sandbox::population::{self, Person};
use crate::sandbox::record::{Record, Settled, Tx};
use adapters::Dialect;
use bytes::Bytes;
use chrono::Datelike;
use contracts::model::envelope::AnswerEnvelope;
use contracts::model::fee::{FeeDetail, FeeResult};
use contracts::model::reconciliation::{
    DetailCheck, DetailCheckOutput, DetailDifference, TotalsCheck, TotalsCheckOutput, TotalsResult,
};
use contracts::model::reversal::Reversal;
use contracts::model::settlement::{SetlInfo, SettleRequest, SettlementOutput};
use contracts::model::visit::VisitIds;
use contracts::record::Stamp;
use contracts::statement::{Row, RowState};
use contracts::{
    Answer, AnswerBody, Date, DateTime, Effect, Infno, MdtrtCertType, MedType, Money, PsnCertType,
    Request, RequestBody,
};
use http::{Request as HttpRequest, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// How far a restarted platform's id serial jumps past the highest serial
/// its record holds: ids also carry the time to the second, so a repeat would
/// need this many unrecorded ids in the second before a restart and the same
/// second after it.
const SERIAL_GAP: u64 = 1_000_000;

/// One running platform's state.
struct State {
    platform: Platform,
    faults: Mutex<Faults>,
    serial: AtomicU64,
    /// The insured regions' policies.
    policies: Arc<Policies>,
    /// What the platform remembers.
    record: Record,
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

fn take_settlement(body: AnswerBody) -> Option<SettlementOutput> {
    match body {
        AnswerBody::OutpatientPreSettle(o)
        | AnswerBody::OutpatientSettle(o)
        | AnswerBody::OutpatientSettleCancel(o)
        | AnswerBody::InpatientPreSettle(o)
        | AnswerBody::InpatientSettle(o)
        | AnswerBody::InpatientSettleCancel(o)
        | AnswerBody::PharmacyPreSettle(o)
        | AnswerBody::PharmacySettle(o)
        | AnswerBody::PharmacySettleCancel(o) => Some(o),
        _ => None,
    }
}

/// A cancel's answer, kept with the settlement: national JSON of an answer
/// to the settling transaction holding `output`.
fn encode_undo(infno: Infno, output: SettlementOutput) -> Vec<u8> {
    let mut body = AnswerBody::empty(infno);
    set_settlement(&mut body, output);
    adapters::national::National.encode_answer(
        Some(infno),
        &Answer {
            envelope: AnswerEnvelope {
                infcode: Some(0),
                ..Default::default()
            },
            output: Some(body),
        },
    )
}

fn decode_undo(settled: &Settled) -> anyhow::Result<SettlementOutput> {
    let infno = Infno::from_code(&settled.infno).ok_or_else(|| {
        anyhow::anyhow!(
            "settlement {}: unknown transaction {:?}",
            settled.setl_id,
            settled.infno
        )
    })?;
    let answer = adapters::national::National
        .decode_answer(infno, &settled.undo_answer, &adapters::Limits::DEFAULT)
        .map_err(|r| {
            anyhow::anyhow!(
                "settlement {}: its cancel answer: {}",
                settled.setl_id,
                r.detail
            )
        })?;
    answer.output.and_then(take_settlement).ok_or_else(|| {
        anyhow::anyhow!(
            "settlement {}: its cancel answer holds no settlement",
            settled.setl_id
        )
    })
}

/// The statement row undoing `settled`: its amounts negated, made by
/// message `msgid` at `at`.
fn undo_row(settled: Row, msgid: &str, at: DateTime, state: RowState) -> Row {
    let negate = |m: Option<Money>| m.map(Money::negated);
    Row {
        omsgid: settled.msgid,
        msgid: Some(msgid.to_owned()).filter(|m| !m.is_empty()),
        setl_time: at,
        medfee_sumamt: negate(settled.medfee_sumamt),
        fund_pay_sumamt: negate(settled.fund_pay_sumamt),
        acct_pay: negate(settled.acct_pay),
        psn_cash_pay: negate(settled.psn_cash_pay),
        state,
        ..settled
    }
}

/// A period's net figures from statement rows: settlements counted +1,
/// cancels and reversals −1; amounts summed with their signs (absent as 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Figures {
    count: i64,
    medfee_sumamt: Money,
    fund_pay_sumamt: Money,
    acct_pay: Money,
    psn_cash_pay: Money,
}

impl Figures {
    fn of<'a>(rows: impl IntoIterator<Item = &'a Row>) -> Option<Figures> {
        let mut f = Figures::default();
        let add = |sum: Money, m: Option<Money>| sum.checked_add(m.unwrap_or(Money::ZERO));
        for row in rows {
            f.count += if row.state.is_undo() { -1 } else { 1 };
            f.medfee_sumamt = add(f.medfee_sumamt, row.medfee_sumamt)?;
            f.fund_pay_sumamt = add(f.fund_pay_sumamt, row.fund_pay_sumamt)?;
            f.acct_pay = add(f.acct_pay, row.acct_pay)?;
            f.psn_cash_pay = add(f.psn_cash_pay, row.psn_cash_pay)?;
        }
        Some(f)
    }
}

/// Compares an institution's figures with the platform's: the differences,
/// each naming both figures.
fn differences(pairs: &[(&str, String, String)]) -> Vec<String> {
    pairs
        .iter()
        .filter(|(_, theirs, ours)| theirs != ours)
        .map(|(name, theirs, ours)| format!("{name}: institution {theirs}, platform {ours}"))
        .collect()
}

fn required<T: Clone>(value: &Option<T>, name: &str) -> Result<T, String> {
    value
        .clone()
        .ok_or_else(|| format!("缺少 {name} / input.data.{name} is missing"))
}

fn period(begin: &Option<Date>, end: &Option<Date>) -> Result<(Date, Date), String> {
    let from = required(begin, "stmt_begndate")?;
    let to = required(end, "stmt_enddate")?;
    if from > to {
        return Err(format!(
            "对账起止日期有误 / stmt_begndate {from} is after stmt_enddate {to}"
        ));
    }
    Ok((from, to))
}

/// A fee upload's answer (2204, 2301): one classification per line, as
/// platforms answer it, each line wholly in the policy's scope.
fn classified(infno: Infno, lines: &[FeeDetail]) -> AnswerBody {
    let mut body = AnswerBody::empty(infno);
    if let AnswerBody::OutpatientFeeUpload(output) | AnswerBody::InpatientFeeUpload(output) =
        &mut body
    {
        output.result = lines
            .iter()
            .map(|line| FeeResult {
                feedetl_sn: line.feedetl_sn.clone(),
                det_item_fee_sumamt: line.det_item_fee_sumamt,
                cnt: line.cnt,
                pric: line.pric,
                fulamt_ownpay_amt: Some(Money::ZERO),
                overlmt_amt: Some(Money::ZERO),
                preselfpay_amt: Some(Money::ZERO),
                inscp_scp_amt: line.det_item_fee_sumamt,
                ..Default::default()
            })
            .collect();
    }
    body
}

/// A record failure, as a platform answer's err_msg.
fn record_failed(error: &anyhow::Error) -> String {
    tracing::error!(error = format!("{error:#}"), "sandbox record failed");
    format!("平台记录出错 / platform record failed: {error:#}")
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
                    Some(person) => self.lookup(&person).map(Some),
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
                self.cancel(request, &original, i.data.psn_no.as_deref(), &msgid)
                    .map(Some)
            }
            RequestBody::Reversal(i) => {
                // Undo whatever the original msgid committed, if the 2601
                // names its person; acknowledge when it committed nothing.
                self.reverse(request, &i.data, &msgid)
                    .map(|()| Some(AnswerBody::empty(infno)))
            }
            RequestBody::OutpatientFeeUpload(i) | RequestBody::InpatientFeeUpload(i) => {
                Ok(Some(classified(infno, &i.feedetail)))
            }
            RequestBody::TotalsCheck(i) => self.totals_check(request, &i.data).map(Some),
            RequestBody::DetailCheck(i) => self.detail_check(request, &i.data).map(Some),
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

    /// 1101: the person, with the account balance the record shows; the
    /// psn_no is remembered.
    fn lookup(&self, person: &Person) -> Result<AnswerBody, String> {
        let id = person.id.expose();
        let year = today().naive().year();
        let written = self.record.write(|tx| {
            let totals = tx.totals(id)?.unwrap_or_default().for_year(year);
            tx.remember_person(&person.psn_no, id)?;
            Ok(Ok::<_, String>(totals.balance(person.account_balance)))
        });
        let balance = written.map_err(|e| record_failed(&e))??;
        Ok(AnswerBody::PersonLookup(person.lookup_output(balance)))
    }

    /// The person a settlement names: by ID card, else by a psn_no this platform gave out.
    fn settling_person(&self, data: &SettleRequest) -> Result<Person, String> {
        let number = match data.mdtrt_cert_type {
            Some(MdtrtCertType::IdCard) => {
                data.mdtrt_cert_no.as_ref().map(|n| n.expose().to_owned())
            }
            _ => match &data.psn_no {
                Some(psn_no) => self
                    .record
                    .read(|tx| tx.person_of(psn_no))
                    .map_err(|e| record_failed(&e))?,
                None => None,
            },
        };
        number
            .as_deref()
            .and_then(|n| self.person(n))
            .ok_or_else(|| "未查询到参保人员信息 / person not found".to_owned())
    }

    fn settle(
        &self,
        request: &Request,
        data: &SettleRequest,
        msgid: &str,
    ) -> Result<AnswerBody, String> {
        let infno = request.infno();
        let commits = infno.traits().effect == Effect::Settle;
        let person = self.settling_person(data)?;
        let institution = request.envelope.fixmedins_code.clone().unwrap_or_default();
        if commits && institution.is_empty() {
            return Err("缺少定点医药机构编号 / fixmedins_code is missing".into());
        }
        let on = today();
        let med_type = match infno {
            Infno::InpatientPreSettle | Infno::InpatientSettle => {
                data.med_type.clone().unwrap_or(MedType::Inpatient)
            }
            Infno::PharmacyPreSettle | Infno::PharmacySettle => MedType::Pharmacy,
            _ => data.med_type.clone().unwrap_or(MedType::Outpatient),
        };
        let fees = Fees::from_request(data).ok_or("费用分项不全 / incomplete fee breakdown")?;
        let treatment = request
            .envelope
            .mdtrtarea_admvs
            .map_or(self.platform.admdvs, |r| r.admdvs());
        let visit = Visit {
            treatment,
            level: level_of(&institution),
            owner: Owner::City,
            med_type,
            fees,
            use_account: data.acct_used_flag.as_deref() == Some("1"),
            setl_date: on,
            filing: Filing::Filed,
        };
        let id = person.id.expose();
        let compute = |tx: &Tx<'_>| -> anyhow::Result<Result<AnswerBody, String>> {
            let before = tx
                .totals(id)?
                .unwrap_or_else(Accumulators::default)
                .for_year(on.naive().year());
            let settlement = match self.policies.settle(&person, &visit, &before) {
                Ok(settlement) => settlement,
                Err(e) => return Ok(Err(format!("结算失败 / cannot settle: {e}"))),
            };
            let setl_time = DateTime::now().truncated_to_seconds();
            let mut info = SetlInfo {
                mdtrt_id: data.mdtrt_id.clone(),
                setl_time: Some(setl_time),
                clr_optins: Some(self.platform.admdvs.to_string()),
                ..Default::default()
            };
            person.fill_setlinfo(&mut info);
            settlement.split.fill_setlinfo(&mut info);
            if commits {
                let setl_id = self.next_id();
                info.setl_id = Some(setl_id.clone());
                // What a cancel will answer: the split negated, its own id and time added then.
                let reverse = settlement.split.cancelled();
                let mut cancel = info.clone();
                reverse.fill_setlinfo(&mut cancel);
                cancel.setl_id = None;
                cancel.setl_time = None;
                let undo_answer = encode_undo(
                    infno,
                    SettlementOutput {
                        setlinfo: cancel,
                        setldetail: reverse.setldetail(),
                        ..Default::default()
                    },
                );
                tx.put_totals(id, &settlement.after)?;
                tx.insert_settlement(&Settled {
                    setl_id: setl_id.clone(),
                    msgid: msgid.to_owned(),
                    infno: infno.code().to_owned(),
                    id_number: id.to_owned(),
                    psn_no: Some(person.psn_no.clone()),
                    request_psn_no: data.psn_no.clone().filter(|p| !p.is_empty()),
                    fixmedins_code: institution.clone(),
                    delta: settlement.delta,
                    undo_answer,
                    undone: None,
                    undone_by: None,
                    undone_psn_no: None,
                })?;
                let code = |c: Option<&str>| c.map(str::to_owned);
                tx.insert_event(&Row {
                    setl_id: Some(setl_id),
                    msgid: Some(msgid.to_owned()).filter(|m| !m.is_empty()),
                    omsgid: None,
                    mdtrt_id: info.mdtrt_id.clone(),
                    fixmedins_code: institution.clone(),
                    // The person's insured division as the request named it
                    // (130600 within Hebei's 130000), else the platform's own.
                    insuplc_admdvs: request
                        .envelope
                        .insuplc_admdvs
                        .map(|r| r.admdvs())
                        .filter(|r| r.within(self.platform.admdvs))
                        .unwrap_or(self.platform.admdvs),
                    mdtrtarea_admvs: treatment,
                    insutype: code(info.insutype.as_ref().map(|c| c.code())),
                    med_type: code(info.med_type.as_ref().map(|c| c.code())),
                    clr_type: code(info.clr_type.as_ref().map(|c| c.code())),
                    setl_time,
                    medfee_sumamt: info.medfee_sumamt,
                    fund_pay_sumamt: info.fund_pay_sumamt,
                    acct_pay: info.acct_pay,
                    psn_cash_pay: info.psn_cash_pay,
                    state: RowState::Settled,
                })?;
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
            Ok(Ok(body))
        };
        let outcome = if commits {
            self.record.write(compute)
        } else {
            self.record.read(compute)
        };
        outcome.map_err(|e| record_failed(&e))?
    }

    /// 2208, 2305, 2103: cancels a settlement in effect by its setl_id
    /// (the psn_no the cancel names is recorded with it, not checked).
    fn cancel(
        &self,
        request: &Request,
        original: &str,
        psn_no: Option<&str>,
        msgid: &str,
    ) -> Result<AnswerBody, String> {
        let infno = request.infno();
        let institution = request.envelope.fixmedins_code.as_deref();
        let at = DateTime::now().truncated_to_seconds();
        let cancel_id = self.next_id();
        let written = self.record.write(|tx| {
            let Some(settled) = tx.settlement(original)? else {
                return Ok(Err("结算记录不存在或已撤销 / no such settlement".to_owned()));
            };
            if let Some(how) = settled.undone {
                return Ok(Err(format!(
                    "结算记录不存在或已撤销 / settlement {original} was already {how}"
                )));
            }
            if institution.is_some_and(|code| code != settled.fixmedins_code) {
                return Ok(Err(format!(
                    "非本机构结算 / settlement {original} was not made by this institution"
                )));
            }
            let mut output = decode_undo(&settled)?;
            let row = tx.settled_row(original)?.ok_or_else(|| {
                anyhow::anyhow!("settlement {original} has no settled row in the event log")
            })?;
            tx.revert_totals(&settled.id_number, &settled.delta)?;
            tx.mark_undone(
                original,
                RowState::Cancelled,
                msgid,
                Some(&cancel_id),
                psn_no,
            )?;
            tx.insert_event(&undo_row(row, msgid, at, RowState::Cancelled))?;
            output.setlinfo.setl_id = Some(cancel_id.clone());
            output.setlinfo.setl_time = Some(at);
            Ok(Ok(output))
        });
        let output = written.map_err(|e| record_failed(&e))??;
        let mut body = AnswerBody::empty(infno);
        set_settlement(&mut body, output);
        Ok(body)
    }

    /// 2601: undoes the settlement the message `omsgid` committed, if it is
    /// still in effect (and was made by the same institution, when the
    /// reversal names one). Like a platform, it refuses a 2601 without a
    /// psn_no, and one whose psn_no is not the person of the settlement it
    /// reverses (the psn_no the settling message named, or the platform's own
    /// for that person) — also when that settlement is already undone. A
    /// msgid that committed nothing changes nothing.
    fn reverse(&self, request: &Request, data: &Reversal, msgid: &str) -> Result<(), String> {
        let Some(psn_no) = data.psn_no.as_deref().filter(|p| !p.trim().is_empty()) else {
            return Err("缺少人员编号 / input.data.psn_no is missing".into());
        };
        let original = data.omsgid.as_deref().unwrap_or_default();
        let institution = request.envelope.fixmedins_code.as_deref();
        let at = DateTime::now().truncated_to_seconds();
        let written = self.record.write(|tx| {
            let Some(setl_id) = tx.setl_id_of_msgid(original)? else {
                return Ok(Ok(()));
            };
            let Some(settled) = tx.settlement(&setl_id)? else {
                return Ok(Ok(()));
            };
            if settled.msgid != original
                || institution.is_some_and(|code| code != settled.fixmedins_code)
            {
                return Ok(Ok(()));
            }
            if !settled.names_person(psn_no) {
                return Ok(Err(format!(
                    "人员编号与原交易不符 / input.data.psn_no is not the person of the settlement msgid {original} committed"
                )));
            }
            if settled.undone.is_some() {
                return Ok(Ok(()));
            }
            let row = tx.settled_row(&setl_id)?.ok_or_else(|| {
                anyhow::anyhow!("settlement {setl_id} has no settled row in the event log")
            })?;
            tx.revert_totals(&settled.id_number, &settled.delta)?;
            tx.mark_undone(&setl_id, RowState::Reversed, msgid, None, Some(psn_no))?;
            tx.insert_event(&undo_row(row, msgid, at, RowState::Reversed))?;
            Ok(Ok::<(), String>(()))
        });
        written.map_err(|e| record_failed(&e))?
    }

    /// The institution a reconciliation is about, and its rows in the period.
    fn rows_of(&self, request: &Request, from: Date, to: Date) -> Result<Vec<Row>, String> {
        let institution = request
            .envelope
            .fixmedins_code
            .clone()
            .filter(|c| !c.is_empty())
            .ok_or("缺少定点医药机构编号 / fixmedins_code is missing")?;
        self.record
            .read(|tx| tx.events(from, to, Some(&institution)))
            .map_err(|e| record_failed(&e))
    }

    /// 3201: the institution's totals for an insurance type and clearing
    /// type against the platform's events of the period, net of cancels
    /// and reversals. A row without a clearing type counts for any.
    fn totals_check(&self, request: &Request, data: &TotalsCheck) -> Result<AnswerBody, String> {
        let (from, to) = period(&data.stmt_begndate, &data.stmt_enddate)?;
        let insutype = required(&data.insutype, "insutype")?;
        let clr_type = required(&data.clr_type, "clr_type")?;
        let theirs = Figures {
            count: required(&data.fixmedins_setl_cnt, "fixmedins_setl_cnt")?,
            medfee_sumamt: required(&data.medfee_sumamt, "medfee_sumamt")?,
            fund_pay_sumamt: required(&data.fund_pay_sumamt, "fund_pay_sumamt")?,
            acct_pay: required(&data.acct_pay, "acct_pay")?,
            psn_cash_pay: Money::ZERO,
        };
        let rows = self.rows_of(request, from, to)?;
        let ours = Figures::of(rows.iter().filter(|r| {
            r.insutype.as_deref() == Some(insutype.code())
                && r.clr_type.as_deref().is_none_or(|c| c == clr_type.code())
        }))
        .ok_or("金额溢出 / amounts overflow")?;
        let found = differences(&[
            (
                "fixmedins_setl_cnt",
                theirs.count.to_string(),
                ours.count.to_string(),
            ),
            (
                "medfee_sumamt",
                theirs.medfee_sumamt.to_yuan_string(),
                ours.medfee_sumamt.to_yuan_string(),
            ),
            (
                "fund_pay_sumamt",
                theirs.fund_pay_sumamt.to_yuan_string(),
                ours.fund_pay_sumamt.to_yuan_string(),
            ),
            (
                "acct_pay",
                theirs.acct_pay.to_yuan_string(),
                ours.acct_pay.to_yuan_string(),
            ),
        ]);
        let (stmt_rslt, dscr) = if found.is_empty() {
            (
                "0",
                format!(
                    "平 / balanced: {} settlements, medfee_sumamt {}, fund_pay_sumamt {}, acct_pay {}",
                    ours.count,
                    ours.medfee_sumamt.to_yuan_string(),
                    ours.fund_pay_sumamt.to_yuan_string(),
                    ours.acct_pay.to_yuan_string()
                ),
            )
        } else {
            ("1", format!("不平 / not balanced: {}", found.join("; ")))
        };
        Ok(AnswerBody::TotalsCheck(TotalsCheckOutput {
            stmtinfo: TotalsResult {
                setl_optins: data.setl_optins.clone(),
                stmt_rslt: Some(stmt_rslt.to_owned()),
                stmt_rslt_dscr: Some(dscr),
                ..Default::default()
            },
            ..Default::default()
        }))
    }

    /// 3202: the institution's totals (all insurance types) against the
    /// platform's; balanced, an empty list; otherwise every event of the
    /// institution in the period, as the platform has it (`stmt_rslt` 1:
    /// the platform does not see the institution's detail file).
    fn detail_check(&self, request: &Request, data: &DetailCheck) -> Result<AnswerBody, String> {
        let (from, to) = period(&data.stmt_begndate, &data.stmt_enddate)?;
        let theirs = Figures {
            count: required(&data.fixmedins_setl_cnt, "fixmedins_setl_cnt")?,
            medfee_sumamt: required(&data.medfee_sumamt, "medfee_sumamt")?,
            fund_pay_sumamt: required(&data.fund_pay_sumamt, "fund_pay_sumamt")?,
            acct_pay: Money::ZERO,
            psn_cash_pay: required(&data.cash_payamt, "cash_payamt")?,
        };
        let rows = self.rows_of(request, from, to)?;
        let ours = Figures::of(&rows).ok_or("金额溢出 / amounts overflow")?;
        let balanced = theirs.count == ours.count
            && theirs.medfee_sumamt == ours.medfee_sumamt
            && theirs.fund_pay_sumamt == ours.fund_pay_sumamt
            && theirs.psn_cash_pay == ours.psn_cash_pay;
        let mut fileinfo = Vec::new();
        if !balanced {
            let people = self
                .record
                .read(|tx| {
                    rows.iter()
                        .map(|r| match &r.setl_id {
                            Some(id) => Ok(tx.settlement(id)?.and_then(|s| s.psn_no)),
                            None => Ok(None),
                        })
                        .collect::<anyhow::Result<Vec<_>>>()
                })
                .map_err(|e| record_failed(&e))?;
            for (row, psn_no) in rows.iter().zip(people) {
                let memo = match row.state {
                    RowState::Settled => format!("settled {}", row.setl_time),
                    how => format!(
                        "{how} {} by msgid {}",
                        row.setl_time,
                        row.msgid.as_deref().unwrap_or("-")
                    ),
                };
                fileinfo.push(DetailDifference {
                    psn_no,
                    mdtrt_id: row.mdtrt_id.clone(),
                    setl_id: row.setl_id.clone(),
                    msgid: row.settling_msgid().map(str::to_owned),
                    stmt_rslt: Some("1".to_owned()),
                    refd_setl_flag: Some(if row.state.is_undo() { "1" } else { "0" }.to_owned()),
                    memo: Some(memo),
                    medfee_sumamt: row.medfee_sumamt,
                    fund_pay_sumamt: row.fund_pay_sumamt,
                    acct_pay: row.acct_pay,
                    ..Default::default()
                });
            }
        }
        Ok(AnswerBody::DetailCheck(DetailCheckOutput {
            fileinfo,
            ..Default::default()
        }))
    }
}

/// What the connection handler should do with a request.
enum Act {
    Answer(Vec<u8>),
    Drop,
}

async fn respond(state: &Arc<State>, body: &[u8], admin: bool) -> Act {
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
    let infno = request.infno();
    let answering = state.clone();
    let answer = match tokio::task::spawn_blocking(move || answering.answer(&request)).await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::error!(%error, "sandbox answer failed");
            let refusal = contracts::Refusal::new(
                contracts::ErrorCode::Internal,
                "平台内部错误 / platform failed to answer",
            );
            Answer::refusal(&refusal)
        }
    };
    if infno.traits().effect == Effect::Settle && roll(faults.drop_after_commit_percent) {
        return Act::Drop;
    }
    Act::Answer(dialect.encode_answer(Some(infno), &answer))
}

/// Runs one platform until the process ends.
async fn run_platform(
    platform: Platform,
    record: Record,
    tls: Arc<rustls::ServerConfig>,
    policies: Arc<Policies>,
) -> anyhow::Result<()> {
    // Ids end in a serial number: continue after the highest the record
    // holds, with a margin of SERIAL_GAP for the ids it does not keep
    // (mdtrt_id, inf_refmsgid) given out since its last settlement.
    let serial = record
        .read(|tx| tx.last_serial())?
        .saturating_add(SERIAL_GAP);
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
        serial: AtomicU64::new(serial),
        policies,
        record,
    });
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
    // Every record is opened (and checked) before any platform listens.
    let mut records = Vec::new();
    for platform in &config.platforms {
        let data = config.data.clone();
        let admdvs = platform.admdvs;
        records.push(tokio::task::spawn_blocking(move || Record::open(&data, admdvs)).await??);
    }
    let mut tasks = Vec::new();
    for (platform, record) in config.platforms.iter().cloned().zip(records) {
        println!(
            "platform {} keeps its record in {}",
            platform.admdvs,
            record.path().display()
        );
        tasks.push(tokio::spawn(run_platform(
            platform,
            record,
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
