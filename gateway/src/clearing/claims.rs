//! Claims exchange between platforms (3260, 3261, 3262), answered by the
//! gateway from its journal: the insured region's platform fetches the
//! clearing detail of its people treated in other regions for a day or a
//! month, at most 100 rows a call; confirms (`cnfm_flag` 1) or disputes
//! (`cnfm_flag` 2) rows; and may roll a verdict back. Disputes appear in the
//! day's report. A closed day refuses verdicts.
//!
//! A row is a settlement, cancel or reversal of the period (cancels and
//! reversals negative, as in the clearing); `optins_pay_sumamt` is what the
//! insured region owes for it: the funds' share plus the personal account.
//! `certno` stays empty: the gateway keeps no personal data; the insured
//! region knows its people from `mdtrt_id` and `setl_id`.

use crate::identity::Caller;
use crate::state::Gateway;
use chrono::Datelike;
use contracts::model::clearing::{ClearingPage, ClearingRow};
use contracts::model::envelope::AnswerEnvelope;
use contracts::record::Stamp;
use contracts::statement::Row;
use contracts::{
    Admdvs, Answer, AnswerBody, Date, DateTime, ErrorCode, Infno, Refusal, Region, Request,
    RequestBody,
};
use ledger::{Ledger, Verdict};
use std::collections::HashMap;

/// The most rows or verdicts one call carries.
pub const PAGE_MAX: i64 = 100;

fn ledger_down(error: &ledger::LedgerError) -> Refusal {
    tracing::error!(%error, "claims exchange: the ledger failed");
    Refusal::new(
        ErrorCode::LedgerUnavailable,
        "the ledger cannot be used now; retry later",
    )
}

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal::new(ErrorCode::InvalidRequest, message)
}

/// Answers a 3260, 3261 or 3262 from `caller` (a platform).
pub async fn answer(
    gateway: &Gateway,
    caller: &Caller,
    request: &Request,
) -> Result<Answer, Refusal> {
    let Some(ledger) = gateway.ledger.as_ref() else {
        return Err(invalid(
            "clearing exchange (3260–3262) is served from the gateway's ledger, which is not enabled",
        ));
    };
    let region = caller.institution.admdvs;
    let body = match &request.input {
        RequestBody::ClearingFetch(input) => fetch(ledger, region, &input.data).await?,
        RequestBody::ClearingConfirm(input) => {
            verdicts(ledger, caller, &input.data, false).await?;
            AnswerBody::empty(Infno::ClearingConfirm)
        }
        RequestBody::ClearingRollback(input) => {
            verdicts(ledger, caller, &input.data, true).await?;
            AnswerBody::empty(Infno::ClearingRollback)
        }
        _ => return Err(invalid("not a clearing exchange")),
    };
    let now = Stamp(DateTime::now());
    Ok(Answer {
        envelope: AnswerEnvelope {
            infcode: Some(0),
            refmsg_time: Some(now),
            respond_time: Some(now),
            ..Default::default()
        },
        output: Some(body),
    })
}

/// The days of the period asked: one clearing day, or a month up to today.
fn period(query: &contracts::model::clearing::ClearingQuery) -> Result<Vec<Date>, Refusal> {
    if let Some(day) = query.clr_date {
        return Ok(vec![day]);
    }
    let (Some(year), Some(month)) = (query.trt_year, query.trt_month) else {
        return Err(invalid("give clr_date, or trt_year and trt_month"));
    };
    let (Ok(year), Ok(month)) = (i32::try_from(year), u32::try_from(month)) else {
        return Err(invalid("trt_year and trt_month out of range"));
    };
    let today = DateTime::now().date();
    let first = Date::from_ymd(year, month, 1).ok_or_else(|| invalid("no such month"))?;
    let mut days = Vec::new();
    let mut day = first.naive();
    while day.month() == month
        && Date::from_ymd(day.year(), day.month(), day.day()).is_some_and(|d| d <= today)
    {
        if let Some(d) = Date::from_ymd(day.year(), day.month(), day.day()) {
            days.push(d);
        }
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    Ok(days)
}

/// Whether a journal row is one the insured region `region` owes for.
fn owed_by(row: &Row, region: Admdvs, treatment: Option<Admdvs>) -> bool {
    row.insuplc_admdvs.within(region)
        && !row.mdtrtarea_admvs.within(region)
        && treatment.is_none_or(|t| row.mdtrtarea_admvs.within(t))
        && row.setl_id.is_some()
        && row.medfee_sumamt.is_some()
}

async fn fetch(
    ledger: &Ledger,
    region: Admdvs,
    query: &contracts::model::clearing::ClearingQuery,
) -> Result<AnswerBody, Refusal> {
    let page_size = query.page_size.unwrap_or(PAGE_MAX);
    let page_num = query.page_num.unwrap_or(1);
    if !(1..=PAGE_MAX).contains(&page_size) || page_num < 1 {
        return Err(invalid(format!(
            "page_size is 1 to {PAGE_MAX}, page_num from 1"
        )));
    }
    let treatment = query.mdtrtarea_admvs.map(|r| r.admdvs());
    let mut rows: Vec<Row> = Vec::new();
    let mut flags: HashMap<String, String> = HashMap::new();
    for day in period(query)? {
        let day_rows = crate::export::day_rows(ledger, day)
            .await
            .map_err(|e| ledger_down(&e))?;
        rows.extend(
            day_rows
                .into_iter()
                .filter(|r| owed_by(r, region, treatment)),
        );
        for verdict in ledger
            .verdicts(&day.to_string())
            .await
            .map_err(|e| ledger_down(&e))?
        {
            if verdict.admdvs == region.to_string() {
                flags.insert(verdict.setl_id, verdict.cnfm_flag);
            }
        }
    }
    let total = rows.len();
    let skip = usize::try_from((page_num - 1).saturating_mul(page_size)).unwrap_or(usize::MAX);
    let take = usize::try_from(page_size).unwrap_or(0);
    let data = rows
        .into_iter()
        .skip(skip)
        .take(take)
        .map(|row| {
            let optins = row
                .fund_pay_sumamt
                .unwrap_or_default()
                .checked_add(row.acct_pay.unwrap_or_default());
            let setl_id = row.setl_id.clone().unwrap_or_default();
            ClearingRow {
                certno: None,
                mdtrt_id: Some(row.mdtrt_id.clone().unwrap_or_default()),
                cnfm_flag: Some(flags.get(&setl_id).cloned().unwrap_or_else(|| "0".into())),
                setl_id: Some(setl_id),
                mdtrtarea_admvs: Some(Region::new(row.mdtrtarea_admvs)),
                mdtrt_setl_time: Some(row.setl_time),
                medfee_sumamt: row.medfee_sumamt,
                optins_pay_sumamt: optins,
                ..Default::default()
            }
        })
        .collect();
    Ok(AnswerBody::ClearingFetch(ClearingPage {
        recordcounts: i64::try_from(total).ok(),
        data,
        ..Default::default()
    }))
}

async fn verdicts(
    ledger: &Ledger,
    caller: &Caller,
    items: &[contracts::model::clearing::ClearingVerdict],
    rollback: bool,
) -> Result<(), Refusal> {
    let region = caller.institution.admdvs;
    if items.is_empty() || items.len() > usize::try_from(PAGE_MAX).unwrap_or(100) {
        return Err(Refusal::new(
            ErrorCode::TooMany,
            format!("1 to {PAGE_MAX} rows a call"),
        ));
    }
    // Check every row before recording any.
    let mut checked = Vec::with_capacity(items.len());
    for item in items {
        let setl_id = item.setl_id.clone().unwrap_or_default();
        let flag = item.cnfm_flag.clone().unwrap_or_default();
        if !rollback && flag != "1" && flag != "2" {
            return Err(Refusal::new(
                ErrorCode::InvalidValue,
                format!("cnfm_flag of {setl_id} is 1 (confirm) or 2 (dispute)"),
            ));
        }
        let entry = ledger
            .by_setl_id(&setl_id)
            .await
            .map_err(|e| ledger_down(&e))?
            .filter(|e| Admdvs::parse(&e.new.insured).is_ok_and(|r| r.within(region)))
            .ok_or_else(|| {
                Refusal::new(
                    ErrorCode::NotFound,
                    format!("no settlement {setl_id} of a person insured in {region}"),
                )
            })?;
        let day = entry
            .answered
            .setl_time_ms
            .or(entry.finished_at_ms())
            .and_then(DateTime::from_unix_millis)
            .map(DateTime::date)
            .ok_or_else(|| {
                Refusal::new(
                    ErrorCode::NotFound,
                    format!("{setl_id} has no settlement time"),
                )
            })?;
        if ledger
            .closed_day(&day.to_string())
            .await
            .map_err(|e| ledger_down(&e))?
            .is_some()
        {
            return Err(Refusal::new(
                ErrorCode::DayClosed,
                format!("{day} is closed: {setl_id} can no longer be confirmed or disputed"),
            ));
        }
        checked.push(Verdict {
            admdvs: region.to_string(),
            setl_id,
            day: day.to_string(),
            cnfm_flag: if rollback { "0".into() } else { flag },
            mdtrt_id: item.mdtrt_id.clone(),
            memo: item.memo.clone(),
            by: caller.institution.code.clone(),
            at_ms: DateTime::now().unix_millis(),
        });
    }
    for verdict in checked {
        match ledger.put_verdict(verdict).await {
            Ok(()) => {}
            Err(ledger::LedgerError::Conflict(why)) => {
                return Err(Refusal::new(ErrorCode::DayClosed, why))
            }
            Err(error) => return Err(ledger_down(&error)),
        }
    }
    Ok(())
}
