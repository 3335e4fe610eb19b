//! A day of realistic traffic: each institution's HIS, in its own dialect,
//! serving patients insured in other regions — outpatient, chronic
//! outpatient, inpatient stays, pharmacy purchases — with cancels, reversals
//! after calls whose outcome is unknown, and a few bad messages.

use crate::client::Client;
use crate::demo::world::{province, Institution, Kind};
use crate::sandbox::population::with_check_character;
use adapters::Dialect;
use bytes::Bytes;
use contracts::model::envelope::RequestEnvelope;
use contracts::model::fee::{FeeDetail, FeeUploadInput};
use contracts::model::person::{PersonLookupInput, PersonQuery};
use contracts::model::reversal::{Reversal, ReversalInput};
use contracts::model::settlement::{
    PharmacySettleInput, SettleInput, SettleRequest, SettlementCancelInput, SettlementRef,
};
use contracts::model::visit::{
    Admission, AdmissionInput, Discharge, DischargeInput, OutpatientRegistration,
    OutpatientRegistrationInput,
};
use contracts::sample::Rng;
use contracts::{
    Admdvs, Answer, AnswerBody, DateTime, Infno, Insutype, MdtrtCertType, MedType, Money, Price,
    PsnCertType, Quantity, Region, Request, RequestBody, Secret,
};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// What the day produced, from the hospitals' side.
#[derive(Debug, Default)]
pub struct Tally {
    /// Calls answered by a platform (infcode 0).
    pub answered: u64,
    /// Calls a platform answered with an error (infcode ≠ 0).
    pub platform_errors: u64,
    /// Refusals by the gateway, by error slug.
    pub refused: BTreeMap<&'static str, u64>,
    /// Settlements by scenario.
    pub settlements: BTreeMap<&'static str, u64>,
    /// Cancels that succeeded.
    pub cancels: u64,
    /// Settlements whose outcome was unknown and were reversed by the hospital.
    pub reversed: u64,
    /// Calls that went wrong on the client's side (connection refused…).
    pub transport_errors: u64,
}

/// One institution's HIS.
pub struct His {
    /// Who.
    pub institution: Institution,
    /// Its client.
    pub client: Client,
    /// The gateway's base URL.
    pub base: String,
    /// Message sequence.
    pub sequence: u32,
    /// Its randomness.
    pub rng: Rng,
}

/// How a call ended. Short-lived and moved once: boxing the answer would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    Answer(Answer),
    Refused,
    Unknown,
}

fn money(fen: i64) -> Option<Money> {
    Money::from_fen(fen)
}

const REGION_CODES: [&str; 6] = ["110105", "110108", "120104", "120116", "130602", "130102"];

impl His {
    fn msgid(&mut self) -> String {
        self.sequence = (self.sequence + 1) % 10_000;
        format!(
            "{}{}{:04}",
            self.institution.code,
            DateTime::now().to_compact(),
            self.sequence
        )
    }

    fn envelope(&mut self, insured: Admdvs) -> RequestEnvelope {
        RequestEnvelope {
            msgid: Some(self.msgid()),
            mdtrtarea_admvs: Some(Region::new(self.institution.admdvs)),
            insuplc_admdvs: Some(Region::new(insured)),
            recer_sys_code: Some("YBXT".into()),
            infver: Some("V1.0".into()),
            opter_type: Some("1".into()),
            opter: Some("1001".into()),
            opter_name: Some(Secret::new("收费员")),
            inf_time: Some(DateTime::now().truncated_to_seconds()),
            fixmedins_code: Some(self.institution.code.clone()),
            fixmedins_name: Some(self.institution.name.clone()),
            sign_no: Some("100001".into()),
            ..Default::default()
        }
    }

    /// A patient insured in a region other than this institution's.
    fn patient(&mut self, chronic: bool) -> (String, Admdvs) {
        let own = province(self.institution.admdvs);
        let insured = loop {
            let code = *self.rng.pick(&REGION_CODES);
            if let Ok(a) = Admdvs::parse(code) {
                if a.province() != Some(own) {
                    break a;
                }
            }
        };
        let address = *self.rng.pick(&REGION_CODES);
        let year = self.rng.between(1945, 2004);
        let month = self.rng.between(1, 12);
        let day = self.rng.between(1, 28);
        let scheme = self.rng.below(10);
        let disease = if chronic {
            *self.rng.pick(&[5u64, 6, 7])
        } else {
            self.rng.below(4)
        };
        let sex = self.rng.below(10);
        let first17 = format!("{address}{year:04}{month:02}{day:02}{scheme}{disease}{sex}");
        (with_check_character(&first17).unwrap_or_default(), insured)
    }

    async fn call(&mut self, request: &Request, tally: &Mutex<Tally>) -> Outcome {
        let dialect = match adapters::dialect(self.institution.dialect) {
            Ok(d) => d,
            Err(_) => &adapters::national::National,
        };
        let path = if dialect.name() == "national" {
            crate::server::NATIONAL_PATH.to_owned()
        } else {
            format!("/v1/messages/{}", dialect.name())
        };
        let body = Bytes::from(dialect.encode_request(request));
        self.send(request.infno(), dialect, &path, body, tally)
            .await
    }

    async fn send(
        &mut self,
        infno: Infno,
        dialect: &'static dyn adapters::Dialect,
        path: &str,
        body: Bytes,
        tally: &Mutex<Tally>,
    ) -> Outcome {
        let url = format!("{}{path}", self.base);
        // Over its rate, a HIS waits as Retry-After says and sends again (a few times).
        let mut tries = 0;
        let received = loop {
            let received = match self
                .client
                .post(&url, dialect.media_type(), body.clone())
                .await
            {
                Ok(r) => r,
                Err(_) => {
                    lock(tally).transport_errors += 1;
                    return Outcome::Unknown;
                }
            };
            tries += 1;
            if received.status != 429 || tries > 5 {
                break received;
            }
            *lock(tally)
                .refused
                .entry("rate_limited (retried)")
                .or_default() += 1;
            let seconds = received
                .retry_after
                .as_deref()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 5);
            tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
        };
        let answer = dialect.decode_answer(infno, &received.body, &adapters::Limits::DEFAULT);
        match (received.status, answer) {
            (200, Ok(answer)) => {
                let mut t = lock(tally);
                if answer.envelope.is_success() {
                    t.answered += 1;
                } else {
                    t.platform_errors += 1;
                }
                Outcome::Answer(answer)
            }
            (504, _) => {
                *lock(tally).refused.entry("upstream_timeout").or_default() += 1;
                Outcome::Unknown
            }
            (_, Ok(answer)) => {
                let code = answer
                    .envelope
                    .infcode
                    .and_then(|c| u16::try_from(c).ok())
                    .and_then(contracts::ErrorCode::from_number);
                let slug = code.map_or("unknown", |c| c.slug());
                *lock(tally).refused.entry(slug).or_default() += 1;
                Outcome::Refused
            }
            (_, Err(_)) => {
                *lock(tally).refused.entry("unreadable").or_default() += 1;
                Outcome::Refused
            }
        }
    }

    fn request(&mut self, insured: Admdvs, input: RequestBody) -> Request {
        Request {
            envelope: self.envelope(insured),
            input,
        }
    }

    async fn lookup(&mut self, id: &str, insured: Admdvs, tally: &Mutex<Tally>) -> Option<String> {
        let query = PersonQuery {
            mdtrt_cert_type: Some(MdtrtCertType::IdCard),
            mdtrt_cert_no: Some(Secret::new(id)),
            psn_cert_type: Some(PsnCertType::ResidentId),
            certno: Some(Secret::new(id)),
            ..Default::default()
        };
        let request = self.request(
            insured,
            RequestBody::PersonLookup(PersonLookupInput {
                data: query,
                ..Default::default()
            }),
        );
        match self.call(&request, tally).await {
            Outcome::Answer(Answer {
                output: Some(AnswerBody::PersonLookup(out)),
                ..
            }) => out.baseinfo.and_then(|b| b.psn_no),
            _ => None,
        }
    }

    fn fee_lines(
        &mut self,
        psn_no: &str,
        mdtrt_id: Option<&str>,
        batch: &str,
        lines: usize,
    ) -> (Vec<FeeDetail>, i64) {
        let mut out = Vec::new();
        let mut total = 0;
        for n in 0..lines {
            let count = self.rng.between(1, 6);
            let price_fen = self.rng.between(150, 48_000);
            let line_fen = count * price_fen;
            total += line_fen;
            out.push(FeeDetail {
                feedetl_sn: Some(format!("{batch}-{n:03}")),
                mdtrt_id: mdtrt_id.map(str::to_owned),
                psn_no: Some(psn_no.to_owned()),
                chrg_bchno: Some(batch.to_owned()),
                fee_ocur_time: Some(DateTime::now().truncated_to_seconds()),
                med_list_codg: Some(format!("XA10BAE{:06}", self.rng.below(1_000_000))),
                medins_list_codg: Some(format!("YP{:06}", self.rng.below(1_000_000))),
                det_item_fee_sumamt: money(line_fen),
                cnt: Quantity::from_scaled(count * 10_000),
                pric: Price::from_scaled(price_fen * 10_000),
                ..Default::default()
            });
        }
        (out, total)
    }

    fn settle_data(
        &mut self,
        id: &str,
        psn_no: &str,
        mdtrt_id: Option<String>,
        med_type: Option<MedType>,
        total: i64,
        batch: &str,
    ) -> SettleRequest {
        let preself = total / 20;
        SettleRequest {
            psn_no: Some(psn_no.to_owned()),
            mdtrt_cert_type: Some(MdtrtCertType::IdCard),
            mdtrt_cert_no: Some(Secret::new(id)),
            med_type,
            medfee_sumamt: money(total),
            psn_setlway: Some("01".into()),
            mdtrt_id,
            chrg_bchno: Some(batch.to_owned()),
            insutype: Some(Insutype::EmployeeBasic),
            acct_used_flag: Some(if self.rng.chance(60) { "1" } else { "0" }.into()),
            invono: Some(format!("INV{}", self.msgid())),
            fulamt_ownpay_amt: money(0),
            overlmt_selfpay: money(0),
            preselfpay_amt: money(preself),
            inscp_scp_amt: money(total - preself),
            ..Default::default()
        }
    }

    /// Counts a committed settlement or cancel (the clearing itself comes
    /// from reconciling the day: see `demo::reconcile_day`).
    fn book(
        &self,
        answer: &Answer,
        scenario: &'static str,
        tally: &Mutex<Tally>,
    ) -> Option<String> {
        let info = match &answer.output {
            Some(
                AnswerBody::OutpatientSettle(o)
                | AnswerBody::InpatientSettle(o)
                | AnswerBody::PharmacySettle(o),
            ) => &o.setlinfo,
            Some(
                AnswerBody::OutpatientSettleCancel(o)
                | AnswerBody::InpatientSettleCancel(o)
                | AnswerBody::PharmacySettleCancel(o),
            ) => &o.setlinfo,
            _ => return None,
        };
        let mut t = lock(tally);
        let sign = if info.medfee_sumamt.is_some_and(|m| m.fen() < 0) {
            -1
        } else {
            1
        };
        if sign > 0 {
            *t.settlements.entry(scenario).or_default() += 1;
        } else {
            t.cancels += 1;
        }
        info.setl_id.clone()
    }

    async fn reverse(
        &mut self,
        insured: Admdvs,
        psn_no: &str,
        original: &Request,
        tally: &Mutex<Tally>,
    ) {
        let data = Reversal {
            psn_no: Some(psn_no.to_owned()),
            omsgid: original.envelope.msgid.clone(),
            oinfno: Some(original.infno().code().to_owned()),
            ..Default::default()
        };
        let request = self.request(
            insured,
            RequestBody::Reversal(ReversalInput {
                data,
                ..Default::default()
            }),
        );
        if let Outcome::Answer(a) = self.call(&request, tally).await {
            if a.envelope.is_success() {
                lock(tally).reversed += 1;
            }
        }
    }

    async fn settle(
        &mut self,
        insured: Admdvs,
        psn_no: &str,
        request: Request,
        scenario: &'static str,
        tally: &Mutex<Tally>,
    ) -> Option<String> {
        match self.call(&request, tally).await {
            Outcome::Answer(answer) if answer.envelope.is_success() => {
                self.book(&answer, scenario, tally)
            }
            Outcome::Unknown => {
                // Did it happen? Only a reversal makes both sides agree again.
                self.reverse(insured, psn_no, &request, tally).await;
                None
            }
            _ => None,
        }
    }

    async fn cancel(
        &mut self,
        insured: Admdvs,
        psn_no: &str,
        mdtrt_id: Option<String>,
        setl_id: String,
        infno: Infno,
        tally: &Mutex<Tally>,
    ) {
        let data = SettlementRef {
            setl_id: Some(setl_id),
            mdtrt_id: mdtrt_id.or(Some("0".into())),
            psn_no: Some(psn_no.to_owned()),
            ..Default::default()
        };
        let input = SettlementCancelInput {
            data,
            ..Default::default()
        };
        let body = match infno {
            Infno::InpatientSettle => RequestBody::InpatientSettleCancel(input),
            Infno::PharmacySettle => RequestBody::PharmacySettleCancel(input),
            _ => RequestBody::OutpatientSettleCancel(input),
        };
        let request = self.request(insured, body);
        if let Outcome::Answer(answer) = self.call(&request, tally).await {
            self.book(&answer, "cancel", tally);
        }
    }

    /// Settles, and cancels what settled in `cancel_percent`% of cases (the
    /// cancel of the settlement's own transaction, for the same visit).
    async fn settle_then_maybe_cancel(
        &mut self,
        insured: Admdvs,
        psn_no: &str,
        request: Request,
        scenario: &'static str,
        cancel_percent: u64,
        tally: &Mutex<Tally>,
    ) {
        let settled = request.infno();
        let mdtrt_id = match &request.input {
            RequestBody::OutpatientSettle(i) | RequestBody::InpatientSettle(i) => {
                i.data.mdtrt_id.clone()
            }
            RequestBody::PharmacySettle(i) => i.data.mdtrt_id.clone(),
            _ => None,
        };
        let setl_id = self.settle(insured, psn_no, request, scenario, tally).await;
        if let (Some(setl_id), true) = (setl_id, self.rng.chance(cancel_percent)) {
            self.cancel(insured, psn_no, mdtrt_id, setl_id, settled, tally)
                .await;
        }
    }

    async fn outpatient(&mut self, chronic: bool, tally: &Mutex<Tally>) {
        let (id, insured) = self.patient(chronic);
        let Some(psn_no) = self.lookup(&id, insured, tally).await else {
            return;
        };
        let registration = OutpatientRegistration {
            psn_no: Some(psn_no.clone()),
            insutype: Some(Insutype::EmployeeBasic),
            begntime: Some(DateTime::now().truncated_to_seconds()),
            mdtrt_cert_type: Some(MdtrtCertType::IdCard),
            mdtrt_cert_no: Some(Secret::new(id.as_str())),
            ipt_otp_no: Some(format!("MZ{}", self.msgid())),
            dept_code: Some("A03".into()),
            dept_name: Some("内科".into()),
            ..Default::default()
        };
        let request = self.request(
            insured,
            RequestBody::OutpatientRegister(OutpatientRegistrationInput {
                data: registration,
                ..Default::default()
            }),
        );
        let mdtrt_id = match self.call(&request, tally).await {
            Outcome::Answer(Answer {
                output: Some(AnswerBody::OutpatientRegister(o)),
                ..
            }) => o.data.mdtrt_id,
            _ => return,
        };
        let batch = format!("CB{}", self.msgid());
        let lines = 2 + self.rng.below(4) as usize;
        let (feedetail, total) = self.fee_lines(&psn_no, mdtrt_id.as_deref(), &batch, lines);
        let upload = self.request(
            insured,
            RequestBody::OutpatientFeeUpload(FeeUploadInput {
                feedetail,
                ..Default::default()
            }),
        );
        self.call(&upload, tally).await;
        let med_type = Some(if chronic {
            MedType::ChronicOutpatient
        } else {
            MedType::Outpatient
        });
        let mut pre = self.settle_data(
            &id,
            &psn_no,
            mdtrt_id.clone(),
            med_type.clone(),
            total,
            &batch,
        );
        pre.fulamt_ownpay_amt = None;
        pre.overlmt_selfpay = None;
        pre.preselfpay_amt = None;
        pre.inscp_scp_amt = None;
        let pre = self.request(
            insured,
            RequestBody::OutpatientPreSettle(SettleInput {
                data: pre,
                ..Default::default()
            }),
        );
        self.call(&pre, tally).await;
        let mut data = self.settle_data(&id, &psn_no, mdtrt_id, med_type, total, &batch);
        if self.rng.chance(2) && self.institution.dialect == "national" {
            // A HIS bug: an amount with three decimals. The gateway must refuse it.
            data.medfee_sumamt = None;
            let mut request = self.request(
                insured,
                RequestBody::OutpatientSettle(SettleInput {
                    data,
                    ..Default::default()
                }),
            );
            request.envelope.msgid = Some(self.msgid());
            let text =
                String::from_utf8_lossy(&adapters::national::National.encode_request(&request))
                    .replacen(
                        "\"psn_setlway\"",
                        "\"medfee_sumamt\":12.345,\"psn_setlway\"",
                        1,
                    );
            self.send(
                Infno::OutpatientSettle,
                &adapters::national::National,
                crate::server::NATIONAL_PATH,
                Bytes::from(text),
                tally,
            )
            .await;
            return;
        }
        let scenario = if chronic {
            "chronic outpatient"
        } else {
            "outpatient"
        };
        let request = self.request(
            insured,
            RequestBody::OutpatientSettle(SettleInput {
                data,
                ..Default::default()
            }),
        );
        self.settle_then_maybe_cancel(insured, &psn_no, request, scenario, 8, tally)
            .await;
    }

    async fn inpatient(&mut self, tally: &Mutex<Tally>) {
        let (id, insured) = self.patient(false);
        let Some(psn_no) = self.lookup(&id, insured, tally).await else {
            return;
        };
        let admission = Admission {
            psn_no: Some(psn_no.clone()),
            insutype: Some(Insutype::EmployeeBasic),
            begntime: Some(DateTime::now().truncated_to_seconds()),
            mdtrt_cert_type: Some(MdtrtCertType::IdCard),
            mdtrt_cert_no: Some(Secret::new(id.as_str())),
            med_type: Some(MedType::Inpatient),
            ipt_no: Some(format!("ZY{}", self.msgid())),
            atddr_no: Some("D009".into()),
            adm_dept_codg: Some("A03.04".into()),
            adm_dept_name: Some("心血管内科".into()),
            dscg_maindiag_code: Some("I25.103".into()),
            dscg_maindiag_name: Some(Secret::new("冠状动脉粥样硬化性心脏病")),
            ..Default::default()
        };
        let request = self.request(
            insured,
            RequestBody::Admission(AdmissionInput {
                mdtrtinfo: admission,
                ..Default::default()
            }),
        );
        let mdtrt_id = match self.call(&request, tally).await {
            Outcome::Answer(Answer {
                output: Some(AnswerBody::Admission(o)),
                ..
            }) => o.data.mdtrt_id,
            _ => return,
        };
        let batch = format!("ZB{}", self.msgid());
        let mut total = 0;
        for day in 0..3 {
            let (feedetail, day_total) =
                self.fee_lines(&psn_no, mdtrt_id.as_deref(), &format!("{batch}{day}"), 4);
            total += day_total;
            let upload = self.request(
                insured,
                RequestBody::InpatientFeeUpload(FeeUploadInput {
                    feedetail,
                    ..Default::default()
                }),
            );
            self.call(&upload, tally).await;
        }
        let discharge = Discharge {
            mdtrt_id: mdtrt_id.clone(),
            psn_no: Some(psn_no.clone()),
            endtime: Some(DateTime::now().truncated_to_seconds()),
            dscg_way: Some("1".into()),
            ..Default::default()
        };
        let request = self.request(
            insured,
            RequestBody::Discharge(DischargeInput {
                dscginfo: discharge,
                ..Default::default()
            }),
        );
        self.call(&request, tally).await;
        let data = self.settle_data(&id, &psn_no, mdtrt_id, None, total, &batch);
        let pre = self.request(
            insured,
            RequestBody::InpatientPreSettle(SettleInput {
                data: data.clone(),
                ..Default::default()
            }),
        );
        self.call(&pre, tally).await;
        let request = self.request(
            insured,
            RequestBody::InpatientSettle(SettleInput {
                data,
                ..Default::default()
            }),
        );
        self.settle_then_maybe_cancel(insured, &psn_no, request, "inpatient", 5, tally)
            .await;
    }

    async fn pharmacy(&mut self, tally: &Mutex<Tally>) {
        let (id, insured) = self.patient(false);
        let Some(psn_no) = self.lookup(&id, insured, tally).await else {
            return;
        };
        let batch = format!("YD{}", self.msgid());
        let lines = 1 + self.rng.below(3) as usize;
        let (feedetail, total) = self.fee_lines(&psn_no, None, &batch, lines);
        let data = self.settle_data(&id, &psn_no, None, Some(MedType::Pharmacy), total, &batch);
        let pre = self.request(
            insured,
            RequestBody::PharmacyPreSettle(PharmacySettleInput {
                data: data.clone(),
                feedetail: feedetail.clone(),
                ..Default::default()
            }),
        );
        self.call(&pre, tally).await;
        let request = self.request(
            insured,
            RequestBody::PharmacySettle(PharmacySettleInput {
                data,
                feedetail,
                ..Default::default()
            }),
        );
        self.settle_then_maybe_cancel(insured, &psn_no, request, "pharmacy", 6, tally)
            .await;
    }

    /// A message that contradicts the caller's identity: another institution's code.
    async fn impostor(&mut self, tally: &Mutex<Tally>) {
        let (id, insured) = self.patient(false);
        let query = PersonQuery {
            mdtrt_cert_type: Some(MdtrtCertType::IdCard),
            mdtrt_cert_no: Some(Secret::new(id)),
            ..Default::default()
        };
        let mut request = self.request(
            insured,
            RequestBody::PersonLookup(PersonLookupInput {
                data: query,
                ..Default::default()
            }),
        );
        request.envelope.fixmedins_code = Some("H11010899999".into());
        self.call(&request, tally).await;
    }

    /// One patient's visit, of a kind that fits the institution.
    pub async fn one_visit(&mut self, tally: &Mutex<Tally>) {
        match (self.institution.kind, self.rng.below(100)) {
            (Kind::Pharmacy, _) => self.pharmacy(tally).await,
            (Kind::Hospital, 0..=1) => self.impostor(tally).await,
            (Kind::Hospital, 2..=49) => self.outpatient(false, tally).await,
            (Kind::Hospital, 50..=74) => self.outpatient(true, tally).await,
            (Kind::Hospital, _) => self.inpatient(tally).await,
        }
    }
}

/// A fee line of an injected pattern: fixed, so that a bill can repeat.
fn fixed_line(
    psn_no: &str,
    mdtrt_id: Option<&str>,
    batch: &str,
    code: &str,
    count: i64,
) -> (FeeDetail, i64) {
    let price_fen = 1_250;
    (
        FeeDetail {
            feedetl_sn: Some(format!("{batch}-001")),
            mdtrt_id: mdtrt_id.map(str::to_owned),
            psn_no: Some(psn_no.to_owned()),
            chrg_bchno: Some(batch.to_owned()),
            fee_ocur_time: Some(DateTime::now().truncated_to_seconds()),
            med_list_codg: Some(code.to_owned()),
            medins_list_codg: Some("YPDEMO01".into()),
            det_item_fee_sumamt: money(count * price_fen),
            cnt: Quantity::from_scaled(count * 10_000),
            pric: Price::from_scaled(price_fen * 10_000),
            ..Default::default()
        },
        count * price_fen,
    )
}

impl His {
    /// An injected admission of `id` (supervision's `concurrent_inpatient`).
    pub async fn inject_admission(
        &mut self,
        id: &str,
        insured: Admdvs,
        tally: &Mutex<Tally>,
    ) -> bool {
        let Some(psn_no) = self.lookup(id, insured, tally).await else {
            return false;
        };
        let admission = Admission {
            psn_no: Some(psn_no),
            insutype: Some(Insutype::EmployeeBasic),
            begntime: Some(DateTime::now().truncated_to_seconds()),
            mdtrt_cert_type: Some(MdtrtCertType::IdCard),
            mdtrt_cert_no: Some(Secret::new(id)),
            med_type: Some(MedType::Inpatient),
            ipt_no: Some(format!("ZY{}", self.msgid())),
            atddr_no: Some("D009".into()),
            adm_dept_codg: Some("A03.04".into()),
            adm_dept_name: Some("心血管内科".into()),
            dscg_maindiag_code: Some("I25.103".into()),
            dscg_maindiag_name: Some(Secret::new("冠状动脉粥样硬化性心脏病")),
            ..Default::default()
        };
        let request = self.request(
            insured,
            RequestBody::Admission(AdmissionInput {
                mdtrtinfo: admission,
                ..Default::default()
            }),
        );
        matches!(self.call(&request, tally).await, Outcome::Answer(a) if a.envelope.is_success())
    }

    /// An injected outpatient visit of `id` with one fixed fee line of `code`
    /// and, if given, the invoice number `invono`.
    pub async fn inject_visit(
        &mut self,
        id: &str,
        insured: Admdvs,
        code: &str,
        invono: Option<&str>,
        tally: &Mutex<Tally>,
    ) -> bool {
        let Some(psn_no) = self.lookup(id, insured, tally).await else {
            return false;
        };
        let registration = OutpatientRegistration {
            psn_no: Some(psn_no.clone()),
            insutype: Some(Insutype::EmployeeBasic),
            begntime: Some(DateTime::now().truncated_to_seconds()),
            mdtrt_cert_type: Some(MdtrtCertType::IdCard),
            mdtrt_cert_no: Some(Secret::new(id)),
            ipt_otp_no: Some(format!("MZ{}", self.msgid())),
            dept_code: Some("A03".into()),
            dept_name: Some("内科".into()),
            ..Default::default()
        };
        let request = self.request(
            insured,
            RequestBody::OutpatientRegister(OutpatientRegistrationInput {
                data: registration,
                ..Default::default()
            }),
        );
        let mdtrt_id = match self.call(&request, tally).await {
            Outcome::Answer(Answer {
                output: Some(AnswerBody::OutpatientRegister(o)),
                ..
            }) => o.data.mdtrt_id,
            _ => return false,
        };
        let batch = format!("CB{}", self.msgid());
        let (line, total) = fixed_line(&psn_no, mdtrt_id.as_deref(), &batch, code, 4);
        let upload = self.request(
            insured,
            RequestBody::OutpatientFeeUpload(FeeUploadInput {
                feedetail: vec![line],
                ..Default::default()
            }),
        );
        self.call(&upload, tally).await;
        let mut data = self.settle_data(
            id,
            &psn_no,
            mdtrt_id,
            Some(MedType::Outpatient),
            total,
            &batch,
        );
        if let Some(invono) = invono {
            data.invono = Some(invono.to_owned());
        }
        let request = self.request(
            insured,
            RequestBody::OutpatientSettle(SettleInput {
                data,
                ..Default::default()
            }),
        );
        self.settle(insured, &psn_no, request, "outpatient", tally)
            .await
            .is_some()
    }

    /// An injected pharmacy purchase of `count` of drug `code` by `id`.
    pub async fn inject_purchase(
        &mut self,
        id: &str,
        insured: Admdvs,
        code: &str,
        count: i64,
        tally: &Mutex<Tally>,
    ) -> bool {
        let Some(psn_no) = self.lookup(id, insured, tally).await else {
            return false;
        };
        let batch = format!("YD{}", self.msgid());
        let (line, total) = fixed_line(&psn_no, None, &batch, code, count);
        let data = self.settle_data(id, &psn_no, None, Some(MedType::Pharmacy), total, &batch);
        let request = self.request(
            insured,
            RequestBody::PharmacySettle(PharmacySettleInput {
                data,
                feedetail: vec![line],
                ..Default::default()
            }),
        );
        self.settle(insured, &psn_no, request, "pharmacy", tally)
            .await
            .is_some()
    }
}

/// Locks a tally (a poisoned lock still holds good counts).
pub fn lock(tally: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    match tally.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
