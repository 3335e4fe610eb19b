//! Cross-field rules.
//!
//! A hospital's **request** that breaks a rule is refused before it is
//! forwarded ([`validate_request`]). A platform's **answer** that breaks one is
//! not refused — the platform has already committed the settlement, and
//! refusing would strand the hospital — it is passed on with the
//! [`Anomaly`]s that [`check_answer`] finds, to be journalled, counted and
//! shown to clearing officers.

use crate::codes::{Admdvs, IdNumber, MdtrtCertType, PsnCertType};
use crate::error::{ErrorCode, Refusal};
use crate::message::{Answer, Request};
use crate::model::fee::{FeeDetail, FeeResult};
use crate::model::settlement::{SetlInfo, SettleRequest};
use crate::money::Money;
use crate::record::{first_missing, Path, Record, Secret};
use crate::transaction::{AnswerBody, Effect, Infno, RequestBody};

/// The most fee lines one message may carry.
pub const FEE_LINES_MAX: usize = 10_000;
/// The most rows a clearing page or verdict list may carry (as 3260 does).
pub const CLEARING_ROWS_MAX: usize = 100;

/// Which regions the caller of [`validate_request`] serves.
pub trait RegionSet {
    /// Whether a region code is one this gateway knows.
    fn knows(&self, admdvs: Admdvs) -> bool;
}

/// The three provinces of Beijing–Tianjin–Hebei, every division within them.
pub struct Jingjinji;

impl RegionSet for Jingjinji {
    fn knows(&self, admdvs: Admdvs) -> bool {
        admdvs.province().is_some()
    }
}

/// Checks a request: required fields, known regions, ID numbers, balances,
/// fee lines, and each transaction's own rules.
pub fn validate_request(request: &Request, regions: &dyn RegionSet) -> Result<(), Refusal> {
    let envelope = &request.envelope;
    if let Some(path) = first_missing(envelope, &Path::root()) {
        return Err(Refusal::new(ErrorCode::MissingField, path.as_str()));
    }
    if let Some(path) = first_missing(request.input.record(), &Path::root().key("input")) {
        return Err(Refusal::new(ErrorCode::MissingField, path.as_str()));
    }
    for (name, region) in [
        ("mdtrtarea_admvs", envelope.mdtrtarea_admvs),
        ("insuplc_admdvs", envelope.insuplc_admdvs),
    ] {
        let Some(region) = region else { continue };
        if !regions.knows(region.admdvs()) {
            return Err(Refusal::new(
                ErrorCode::UnknownRegion,
                format!("{name}={region}"),
            ));
        }
    }
    let data = Path::root().key("input").key("data");
    match &request.input {
        RequestBody::PersonLookup(input) => {
            let q = &input.data;
            if q.mdtrt_cert_type == Some(MdtrtCertType::IdCard) {
                check_id_number(q.mdtrt_cert_no.as_ref(), &data.key("mdtrt_cert_no"))?;
            }
            if q.psn_cert_type == Some(PsnCertType::ResidentId) {
                check_id_number(q.certno.as_ref(), &data.key("certno"))?;
            }
        }
        RequestBody::OutpatientRegister(input)
            if input.data.mdtrt_cert_type == Some(MdtrtCertType::IdCard) =>
        {
            check_id_number(
                input.data.mdtrt_cert_no.as_ref(),
                &data.key("mdtrt_cert_no"),
            )?;
        }
        RequestBody::OutpatientFeeUpload(input) | RequestBody::InpatientFeeUpload(input) => {
            check_fee_lines(&input.feedetail, request.infno())?;
        }
        RequestBody::OutpatientPreSettle(input)
        | RequestBody::OutpatientSettle(input)
        | RequestBody::InpatientPreSettle(input)
        | RequestBody::InpatientSettle(input) => {
            check_settle_request(&input.data, request.infno())?;
        }
        RequestBody::PharmacyPreSettle(input) | RequestBody::PharmacySettle(input) => {
            check_settle_request(&input.data, request.infno())?;
            check_fee_lines(&input.feedetail, request.infno())?;
            let lines = Money::sum(input.feedetail.iter().filter_map(|l| l.det_item_fee_sumamt));
            let stated = input.data.medfee_sumamt.unwrap_or_default();
            if !input.feedetail.is_empty() && lines != Some(stated) {
                return Err(Refusal::new(
                    ErrorCode::Unbalanced,
                    format!(
                        "input.data.medfee_sumamt {} is not the sum of the drug lines {}",
                        stated,
                        lines
                            .map(|m| m.to_string())
                            .unwrap_or_else(|| "(overflow)".into())
                    ),
                ));
            }
        }
        RequestBody::Reversal(input) => {
            let original = input.data.oinfno.as_deref().and_then(Infno::from_code);
            if !original.is_some_and(|i| i.traits().reversible) {
                return Err(Refusal::new(
                    ErrorCode::InvalidRequest,
                    "input.data.oinfno: not a reversible transaction (2102, 2103, 2207, 2208, 2304, 2305, 2401)",
                ));
            }
        }
        RequestBody::TotalsCheck(input) if input.data.stmt_enddate < input.data.stmt_begndate => {
            return Err(Refusal::new(
                ErrorCode::InvalidRequest,
                "input.data.stmt_enddate is before stmt_begndate",
            ));
        }
        RequestBody::ClearingFetch(input) => {
            let q = &input.data;
            let page_size = q.page_size.unwrap_or_default();
            if !(1..=CLEARING_ROWS_MAX as i64).contains(&page_size)
                || q.page_num.unwrap_or_default() < 1
            {
                return Err(Refusal::new(
                    ErrorCode::InvalidRequest,
                    "input.data: page_num from 1, page_size 1 to 100",
                ));
            }
            let month_given =
                q.trt_year.is_some() && q.trt_month.is_some_and(|m| (1..=12).contains(&m));
            if month_given == q.clr_date.is_some() {
                return Err(Refusal::new(
                    ErrorCode::InvalidRequest,
                    "input.data: give either trt_year and trt_month, or clr_date",
                ));
            }
        }
        RequestBody::ClearingConfirm(input) | RequestBody::ClearingRollback(input)
            if input.data.is_empty() || input.data.len() > CLEARING_ROWS_MAX =>
        {
            return Err(Refusal::new(
                ErrorCode::TooMany,
                "input.data: 1 to 100 rows a call",
            ));
        }
        _ => {}
    }
    Ok(())
}

fn check_id_number(number: Option<&Secret>, path: &Path) -> Result<(), Refusal> {
    IdNumber::parse(number.map(Secret::expose).unwrap_or_default())
        .map(|_| ())
        .map_err(|_| Refusal::new(ErrorCode::InvalidIdNumber, path.as_str()))
}

fn check_settle_request(data: &SettleRequest, infno: Infno) -> Result<(), Refusal> {
    let path = "input.data";
    let total = data.medfee_sumamt.unwrap_or_default();
    if total < Money::ZERO {
        return Err(Refusal::new(
            ErrorCode::InvalidValue,
            format!("{path}.medfee_sumamt is negative"),
        ));
    }
    if data.mdtrt_cert_type == Some(MdtrtCertType::IdCard) {
        check_id_number(
            data.mdtrt_cert_no.as_ref(),
            &Path::root().key("input").key("data").key("mdtrt_cert_no"),
        )?;
    }
    let parts = [
        data.fulamt_ownpay_amt,
        data.overlmt_selfpay,
        data.preselfpay_amt,
        data.inscp_scp_amt,
    ];
    let given = parts.iter().filter(|p| p.is_some()).count();
    if given == 0 {
        return Ok(());
    }
    if given < parts.len() {
        return Err(Refusal::new(
            ErrorCode::Unbalanced,
            format!("{path}: fulamt_ownpay_amt, overlmt_selfpay, preselfpay_amt and inscp_scp_amt go together ({infno})"),
        ));
    }
    let sum = Money::sum(parts.iter().flatten().copied());
    if sum != Some(total) {
        return Err(Refusal::new(
            ErrorCode::Unbalanced,
            format!(
                "{path}.medfee_sumamt {} ≠ fulamt_ownpay_amt + overlmt_selfpay + preselfpay_amt + inscp_scp_amt {}",
                total,
                sum.map(|m| m.to_string()).unwrap_or_else(|| "(overflow)".into())
            ),
        ));
    }
    Ok(())
}

/// Whether `cnt × pric` rounds to `det_item_fee_sumamt` (half a fen either way).
pub fn fee_line_adds_up(line: &FeeDetail) -> bool {
    // cnt has 4 decimals and pric 6: their product has 10; a fen is 10^8 of those.
    let (Some(cnt), Some(pric), Some(total)) = (line.cnt, line.pric, line.det_item_fee_sumamt)
    else {
        return false;
    };
    let product = i128::from(cnt.scaled()) * i128::from(pric.scaled());
    let stated = i128::from(total.fen()) * 100_000_000;
    (product - stated).abs() <= 50_000_000
}

fn check_fee_lines(lines: &[FeeDetail], infno: Infno) -> Result<(), Refusal> {
    if lines.len() > FEE_LINES_MAX {
        return Err(Refusal::new(
            ErrorCode::TooMany,
            format!("input.feedetail: at most {FEE_LINES_MAX} lines"),
        ));
    }
    let mut serials: Vec<&str> = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        if !fee_line_adds_up(line) {
            return Err(Refusal::new(
                ErrorCode::FeeLineMismatch,
                format!(
                    "input.feedetail[{index}]: cnt {} × pric {} ≠ det_item_fee_sumamt {}",
                    line.cnt.unwrap_or_default(),
                    line.pric.unwrap_or_default(),
                    line.det_item_fee_sumamt.unwrap_or_default()
                ),
            ));
        }
        let is_upload = matches!(
            infno,
            Infno::OutpatientFeeUpload | Infno::InpatientFeeUpload
        );
        if is_upload && line.mdtrt_id.as_deref().is_none_or(str::is_empty) {
            return Err(Refusal::new(
                ErrorCode::MissingField,
                format!("input.feedetail[{index}].mdtrt_id"),
            ));
        }
        if infno == Infno::OutpatientFeeUpload && line.cnt.is_some_and(|c| c.scaled() < 0) {
            return Err(Refusal::new(
                ErrorCode::InvalidValue,
                format!(
                    "input.feedetail[{index}].cnt: negative quantities are withdrawn with 2205"
                ),
            ));
        }
        serials.push(line.feedetl_sn.as_deref().unwrap_or_default());
    }
    serials.sort_unstable();
    if let Some(pair) = serials.windows(2).find(|w| w[0] == w[1]) {
        return Err(Refusal::new(
            ErrorCode::FeeLineMismatch,
            format!("input.feedetail: feedetl_sn {} given twice", pair[0]),
        ));
    }
    Ok(())
}

/// A rule a platform's answer breaks: passed on, journalled, counted, shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// The rule, stable for metrics: `medfee_split`, `person_part`, `fund_parts`, `scope_parts`, `cancel_sign`, `missing_setl_id`, `fee_result_parts`.
    pub rule: &'static str,
    /// What differs, by how much.
    pub detail: String,
}

fn sum_present(parts: &[Option<Money>]) -> Option<Money> {
    Money::sum(parts.iter().flatten().copied())
}

/// The rules of the reference's *Numbers and balances*, on a settlement split.
pub fn check_setlinfo(info: &SetlInfo, effect: Effect) -> Vec<Anomaly> {
    let mut found = Vec::new();
    let mut expect = |rule: &'static str,
                      left_name: &str,
                      left: Option<Money>,
                      right_name: &str,
                      right: Option<Money>| {
        if let (Some(l), Some(r)) = (left, right) {
            if l != r {
                let by = l.checked_sub(r).map(|d| d.to_string()).unwrap_or_default();
                found.push(Anomaly {
                    rule,
                    detail: format!("{left_name} {l} ≠ {right_name} {r} (off by {by})"),
                });
            }
        }
    };
    // Rule 2: the person's part is the account plus cash; where the platform
    // left psn_part_amt out, the sum stands in for it in rule 1.
    let account_and_cash = match (info.acct_pay, info.psn_cash_pay) {
        (Some(a), Some(c)) => a.checked_add(c),
        _ => None,
    };
    expect(
        "person_part",
        "psn_part_amt",
        info.psn_part_amt,
        "acct_pay + psn_cash_pay",
        account_and_cash,
    );
    let person = info.psn_part_amt.or(account_and_cash);
    // Rule 1. An absent hosp_part_amt is a hospital part of nothing: platforms
    // that never split one out leave it away, and the rule still binds the rest.
    let split = match (info.fund_pay_sumamt, person) {
        (Some(f), Some(p)) => f
            .checked_add(p)
            .and_then(|s| s.checked_add(info.hosp_part_amt.unwrap_or(Money::ZERO))),
        _ => None,
    };
    expect(
        "medfee_split",
        "medfee_sumamt",
        info.medfee_sumamt,
        "fund_pay_sumamt + psn_part_amt + hosp_part_amt",
        split,
    );
    // Rule 3, over the funds the platform sent.
    let funds = [
        info.hifp_pay,
        info.cvlserv_pay,
        info.hifes_pay,
        info.hifmi_pay,
        info.hifob_pay,
        info.maf_pay,
        info.oth_pay,
        info.hifdm_pay,
    ];
    if funds.iter().any(Option::is_some) {
        expect(
            "fund_parts",
            "fund_pay_sumamt",
            info.fund_pay_sumamt,
            "sum of the fund parts",
            sum_present(&funds),
        );
    }
    // Rule 4, when the platform sent the whole breakdown.
    let scope = [
        info.fulamt_ownpay_amt,
        info.overlmt_selfpay,
        info.preselfpay_amt,
        info.inscp_scp_amt,
    ];
    if scope.iter().all(Option::is_some) {
        expect(
            "scope_parts",
            "medfee_sumamt",
            info.medfee_sumamt,
            "fulamt_ownpay_amt + overlmt_selfpay + preselfpay_amt + inscp_scp_amt",
            sum_present(&scope),
        );
    }
    if info.medfee_sumamt.is_none() || info.fund_pay_sumamt.is_none() || person.is_none() {
        found.push(Anomaly {
            rule: "incomplete_split",
            detail: "medfee_sumamt, fund_pay_sumamt and the person's part must all be given".into(),
        });
    }
    let amounts = [
        info.medfee_sumamt,
        info.fund_pay_sumamt,
        info.psn_part_amt,
        info.acct_pay,
        info.psn_cash_pay,
    ];
    match effect {
        Effect::CancelSettlement if amounts.iter().flatten().any(|m| *m > Money::ZERO) => {
            found.push(Anomaly {
                rule: "cancel_sign",
                detail: "a cancel answers with amounts of zero or below".into(),
            });
        }
        Effect::Settle if amounts.iter().flatten().any(|m| *m < Money::ZERO) => {
            found.push(Anomaly {
                rule: "cancel_sign",
                detail: "a settlement answers with amounts of zero or above".into(),
            });
        }
        _ => {}
    }
    if matches!(effect, Effect::Settle | Effect::CancelSettlement)
        && info.setl_id.as_deref().is_none_or(str::is_empty)
    {
        found.push(Anomaly {
            rule: "missing_setl_id",
            detail: "a committed settlement names its setl_id".into(),
        });
    }
    found
}

/// The four parts of a classified fee line sum to its total.
pub fn check_fee_result(line: &FeeResult) -> Option<Anomaly> {
    let parts = [
        line.fulamt_ownpay_amt,
        line.overlmt_amt,
        line.preselfpay_amt,
        line.inscp_scp_amt,
    ];
    let total = line.det_item_fee_sumamt?;
    if !parts.iter().all(Option::is_some) {
        return None;
    }
    let sum = sum_present(&parts)?;
    (sum != total).then(|| Anomaly {
        rule: "fee_result_parts",
        detail: format!(
            "feedetl_sn {}: parts {} ≠ det_item_fee_sumamt {}",
            line.feedetl_sn.as_deref().unwrap_or_default(),
            sum,
            total
        ),
    })
}

/// The anomalies of a platform's answer to `infno`. A failure answer has none.
pub fn check_answer(infno: Infno, answer: &Answer) -> Vec<Anomaly> {
    if !answer.envelope.is_success() {
        return Vec::new();
    }
    let mut found = Vec::new();
    if let Some(output) = &answer.output {
        if let Some(path) = first_missing(output.record(), &Path::root().key("output")) {
            found.push(Anomaly {
                rule: "missing_field",
                detail: path.to_string(),
            });
        }
    }
    match &answer.output {
        Some(
            AnswerBody::OutpatientPreSettle(o)
            | AnswerBody::OutpatientSettle(o)
            | AnswerBody::OutpatientSettleCancel(o)
            | AnswerBody::InpatientPreSettle(o)
            | AnswerBody::InpatientSettle(o)
            | AnswerBody::InpatientSettleCancel(o)
            | AnswerBody::PharmacyPreSettle(o)
            | AnswerBody::PharmacySettle(o)
            | AnswerBody::PharmacySettleCancel(o),
        ) => found.extend(check_setlinfo(&o.setlinfo, infno.traits().effect)),
        Some(AnswerBody::OutpatientFeeUpload(o) | AnswerBody::InpatientFeeUpload(o)) => {
            found.extend(o.result.iter().filter_map(check_fee_result));
        }
        None if matches!(
            infno.traits().effect,
            Effect::Settle | Effect::CancelSettlement
        ) =>
        {
            found.push(Anomaly {
                rule: "missing_setl_id",
                detail: "a successful settlement answer without output".into(),
            });
        }
        _ => {}
    }
    found
}

/// Checks that the record tree holds nothing a generic walk cannot reach:
/// used by tests of the dialects to compare shapes.
pub fn field_count(record: &dyn Record) -> usize {
    use crate::record::FieldRef;
    let schema = record.schema();
    let mut count = record.extras().0.len();
    for index in 0..schema.fields.len() {
        count += match record.field(index) {
            FieldRef::Scalar(Some(_)) => 1,
            FieldRef::Scalar(None) | FieldRef::Record(None) => 0,
            FieldRef::Record(Some(child)) => 1 + field_count(child),
            FieldRef::List(list) => {
                (0..list.len())
                    .filter_map(|i| list.get(i))
                    .map(field_count)
                    .sum::<usize>()
                    + 1
            }
        };
    }
    count
}
