//! What cross-region supervision keeps beside the journal (migration 4):
//! the signals officers read ([`Signal`]), the few facts the rules' windows
//! need to survive a restart ([`SupervisionEvent`], pruned beyond the longest
//! window), and each institution's daily settlement counts, the baseline of
//! `institution_surge` ([`DailyCount`]). Same database, same writer, same
//! checks on write and read. The person is only ever a keyed hash: no ID
//! number or name ever reaches these tables.

use crate::check::{day_text, Raw, Values};
use crate::ops::Val;
use crate::sql::{names, Kind};
use crate::{LedgerError, Money};

/// One supervision signal, with its evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// Unique and stable: the same finding written twice is one row.
    pub id: String,
    /// The Asia/Shanghai day it was detected, `YYYY-MM-DD`.
    pub day: String,
    /// The rule's name (`duplicate_bill`, …).
    pub rule: String,
    /// `low`, `medium` or `high`.
    pub severity: String,
    /// When, Unix milliseconds.
    pub detected_at_ms: i64,
    /// Region codes involved (insured and treatment).
    pub regions: Vec<String>,
    /// Institution codes involved.
    pub institutions: Vec<String>,
    /// The person as a keyed hash (HMAC-SHA256, hex); `None` for rules about institutions.
    pub person_key: Option<String>,
    /// Visit ids involved.
    pub mdtrt_ids: Vec<String>,
    /// Settlement ids involved.
    pub setl_ids: Vec<String>,
    /// Amounts involved (the settlements' totals).
    pub amounts: Vec<Money>,
    /// What was found, in words and figures (no personal data).
    pub detail: String,
}

/// One fact a supervision window keeps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SupervisionEvent {
    /// Unique id (a repeat of the same id is a no-op).
    pub id: String,
    /// When it was observed, Unix milliseconds.
    pub at_ms: i64,
    /// `admission`, `discharge`, `admission_cancel`, `settlement`, `cancel`, `reversal`.
    pub kind: String,
    /// The person's keyed hash, hex.
    pub person_key: Option<String>,
    /// The institution's code.
    pub institution: String,
    /// The insured region.
    pub insured: Option<String>,
    /// The treatment region.
    pub treatment: Option<String>,
    /// The sender's msgid (for reversals).
    pub msgid: Option<String>,
    /// The visit id.
    pub mdtrt_id: Option<String>,
    /// The settlement id.
    pub setl_id: Option<String>,
    /// Kind of care (`med_type`), or the transaction for a settlement.
    pub med_type: Option<String>,
    /// The settlement's total.
    pub amount: Option<Money>,
    /// The invoice number.
    pub invono: Option<String>,
    /// A digest of the bill's fee lines, hex.
    pub bill: Option<String>,
    /// Drugs bought: `code:scaled_quantity` separated by `;`.
    pub drugs: Option<String>,
    /// Start or end of a stay, Unix milliseconds.
    pub begin_ms: Option<i64>,
}

/// An institution's settlements on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyCount {
    /// The institution's code.
    pub institution: String,
    /// The Asia/Shanghai day, `YYYY-MM-DD`.
    pub day: String,
    /// How many settlements.
    pub settlements: i64,
    /// Their total.
    pub amount: Money,
}

/// What supervision keeps of a finished call, written with the finish
/// ([`crate::Ledger::finish_observed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The fact its windows need.
    pub event: SupervisionEvent,
    /// Added to the institution's count of the day (a cross-region settlement).
    pub count: Option<DailyCount>,
}

/// A supervision write, executed by the writer like a journal command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Write {
    Signal(SignalRow),
    Event(SupervisionEvent),
    /// Sets the bill of an event kept without one: (id, bill).
    Bill(String, String),
    /// Adds to the day's count.
    Count(DailyCount),
    /// Sets the day's count (seeding a baseline).
    SetCount(DailyCount),
    /// Deletes events observed before this time.
    Prune(i64),
}

/// A [`Signal`] with its lists joined, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignalRow {
    signal: Signal,
    regions: String,
    institutions: String,
    mdtrt_ids: String,
    setl_ids: String,
    amounts: String,
}

const PUT_SIGNAL: &str = "INSERT INTO supervision_signals (id, day, rule, severity, \
     detected_at_ms, regions, institutions, person_key, mdtrt_ids, setl_ids, amounts, detail) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING";

const PUT_EVENT: &str = "INSERT INTO supervision_events (id, at_ms, kind, person_key, \
     institution, insured, treatment, msgid, mdtrt_id, setl_id, med_type, amount, invono, bill, \
     drugs, begin_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
     ON CONFLICT (id) DO NOTHING";

const ADD_COUNT: &str = "INSERT INTO supervision_daily (institution, day, settlements, amount) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (institution, day) DO UPDATE SET \
     settlements = supervision_daily.settlements + excluded.settlements, \
     amount = supervision_daily.amount + excluded.amount";

const SET_COUNT: &str = "INSERT INTO supervision_daily (institution, day, settlements, amount) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (institution, day) DO UPDATE SET \
     settlements = excluded.settlements, amount = excluded.amount";

const SET_BILL: &str = "UPDATE supervision_events SET bill = $2 WHERE id = $1";

const PRUNE: &str = "DELETE FROM supervision_events WHERE at_ms < $1";

pub(crate) const SIGNAL_COLUMNS: &[(&str, Kind)] = &[
    ("id", Kind::Text),
    ("day", Kind::Text),
    ("rule", Kind::Text),
    ("severity", Kind::Text),
    ("detected_at_ms", Kind::Int),
    ("regions", Kind::Text),
    ("institutions", Kind::Text),
    ("person_key", Kind::Text),
    ("mdtrt_ids", Kind::Text),
    ("setl_ids", Kind::Text),
    ("amounts", Kind::Text),
    ("detail", Kind::Text),
];

pub(crate) const EVENT_COLUMNS: &[(&str, Kind)] = &[
    ("id", Kind::Text),
    ("at_ms", Kind::Int),
    ("kind", Kind::Text),
    ("person_key", Kind::Text),
    ("institution", Kind::Text),
    ("insured", Kind::Text),
    ("treatment", Kind::Text),
    ("msgid", Kind::Text),
    ("mdtrt_id", Kind::Text),
    ("setl_id", Kind::Text),
    ("med_type", Kind::Text),
    ("amount", Kind::Int),
    ("invono", Kind::Text),
    ("bill", Kind::Text),
    ("drugs", Kind::Text),
    ("begin_ms", Kind::Int),
];

pub(crate) const DAILY_COLUMNS: &[(&str, Kind)] = &[
    ("institution", Kind::Text),
    ("day", Kind::Text),
    ("settlements", Kind::Int),
    ("amount", Kind::Int),
];

/// `SELECT … FROM supervision_signals WHERE day = $1`.
pub(crate) fn select_signals() -> String {
    format!(
        "SELECT {} FROM supervision_signals WHERE day = $1 ORDER BY detected_at_ms, id",
        names(SIGNAL_COLUMNS)
    )
}

/// `SELECT … FROM supervision_events WHERE at_ms >= $1`, oldest first.
pub(crate) fn select_events() -> String {
    format!(
        "SELECT {} FROM supervision_events WHERE at_ms >= $1 ORDER BY at_ms, id",
        names(EVENT_COLUMNS)
    )
}

/// `SELECT … FROM supervision_daily WHERE day >= $1`.
pub(crate) fn select_daily() -> String {
    format!(
        "SELECT {} FROM supervision_daily WHERE day >= $1 ORDER BY institution, day",
        names(DAILY_COLUMNS)
    )
}

fn fen(money: Option<Money>) -> Option<i64> {
    money.map(Money::fen)
}

impl Write {
    /// The statement and its parameters.
    pub(crate) fn sql_and_params(&self) -> (&'static str, Vec<Val<'_>>) {
        match self {
            Write::Signal(row) => {
                let s = &row.signal;
                (
                    PUT_SIGNAL,
                    vec![
                        Val::Text(Some(&s.id)),
                        Val::Text(Some(&s.day)),
                        Val::Text(Some(&s.rule)),
                        Val::Text(Some(&s.severity)),
                        Val::Int(Some(s.detected_at_ms)),
                        Val::Text(Some(&row.regions)),
                        Val::Text(Some(&row.institutions)),
                        Val::Text(s.person_key.as_deref()),
                        Val::Text(Some(&row.mdtrt_ids)),
                        Val::Text(Some(&row.setl_ids)),
                        Val::Text(Some(&row.amounts)),
                        Val::Text(Some(&s.detail)),
                    ],
                )
            }
            Write::Event(e) => (
                PUT_EVENT,
                vec![
                    Val::Text(Some(&e.id)),
                    Val::Int(Some(e.at_ms)),
                    Val::Text(Some(&e.kind)),
                    Val::Text(e.person_key.as_deref()),
                    Val::Text(Some(&e.institution)),
                    Val::Text(e.insured.as_deref()),
                    Val::Text(e.treatment.as_deref()),
                    Val::Text(e.msgid.as_deref()),
                    Val::Text(e.mdtrt_id.as_deref()),
                    Val::Text(e.setl_id.as_deref()),
                    Val::Text(e.med_type.as_deref()),
                    Val::Int(fen(e.amount)),
                    Val::Text(e.invono.as_deref()),
                    Val::Text(e.bill.as_deref()),
                    Val::Text(e.drugs.as_deref()),
                    Val::Int(e.begin_ms),
                ],
            ),
            Write::Count(c) | Write::SetCount(c) => (
                if matches!(self, Write::Count(_)) {
                    ADD_COUNT
                } else {
                    SET_COUNT
                },
                vec![
                    Val::Text(Some(&c.institution)),
                    Val::Text(Some(&c.day)),
                    Val::Int(Some(c.settlements)),
                    Val::Int(Some(c.amount.fen())),
                ],
            ),
            Write::Bill(id, bill) => (SET_BILL, vec![Val::Text(Some(id)), Val::Text(Some(bill))]),
            Write::Prune(before_ms) => (PRUNE, vec![Val::Int(Some(*before_ms))]),
        }
    }
}

fn invalid(message: String) -> LedgerError {
    LedgerError::Invalid(message)
}

/// Text as the supervision tables take it: at most `max` bytes, no control characters.
fn text(field: &str, value: &str, required: bool, max: usize) -> Result<(), LedgerError> {
    if (required && value.is_empty()) || value.len() > max || value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{field} must be {} to {max} bytes without control characters",
            u8::from(required)
        )));
    }
    Ok(())
}

fn optional(field: &str, value: Option<&str>) -> Result<(), LedgerError> {
    value.map_or(Ok(()), |v| text(field, v, false, 128))
}

/// A list joined with commas; each item a code (no comma), at most 64 items.
fn joined(field: &str, items: &[String]) -> Result<String, LedgerError> {
    if items.len() > 64 {
        return Err(invalid(format!("{field} has more than 64 items")));
    }
    for item in items {
        text(field, item, true, 128)?;
        if item.contains(',') {
            return Err(invalid(format!("{field} items cannot contain commas")));
        }
    }
    Ok(items.join(","))
}

fn hex_key(value: Option<&str>) -> Result<(), LedgerError> {
    match value {
        Some(key)
            if key.len() != 64
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Err(invalid(
                "person_key is a lower-case hex HMAC-SHA256 (64 characters)".into(),
            ))
        }
        _ => Ok(()),
    }
}

/// Checks a signal and joins its lists.
pub(crate) fn signal_row(signal: Signal) -> Result<Write, LedgerError> {
    text("id", &signal.id, true, 128)?;
    day_text("day", &signal.day)?;
    text("rule", &signal.rule, true, 64)?;
    text("severity", &signal.severity, true, 16)?;
    hex_key(signal.person_key.as_deref())?;
    text("detail", &signal.detail, false, 2000)?;
    let amounts: Vec<String> = signal.amounts.iter().map(|m| m.fen().to_string()).collect();
    Ok(Write::Signal(SignalRow {
        regions: joined("regions", &signal.regions)?,
        institutions: joined("institutions", &signal.institutions)?,
        mdtrt_ids: joined("mdtrt_ids", &signal.mdtrt_ids)?,
        setl_ids: joined("setl_ids", &signal.setl_ids)?,
        amounts: joined("amounts", &amounts)?,
        signal,
    }))
}

/// Checks an event.
pub(crate) fn check_event(e: &SupervisionEvent) -> Result<(), LedgerError> {
    text("id", &e.id, true, 128)?;
    text("kind", &e.kind, true, 32)?;
    text("institution", &e.institution, true, 128)?;
    hex_key(e.person_key.as_deref())?;
    for (field, value) in [
        ("insured", &e.insured),
        ("treatment", &e.treatment),
        ("msgid", &e.msgid),
        ("mdtrt_id", &e.mdtrt_id),
        ("setl_id", &e.setl_id),
        ("med_type", &e.med_type),
        ("invono", &e.invono),
        ("bill", &e.bill),
    ] {
        optional(field, value.as_deref())?;
    }
    if let Some(drugs) = &e.drugs {
        text("drugs", drugs, false, 4000)?;
    }
    Ok(())
}

/// The writes of what supervision keeps of a finished call: the parts
/// that pass the checks (a part that does not is left out, with a warning
/// that names the check, never the data).
pub(crate) fn feed(observed: Observed) -> Vec<Write> {
    let mut writes = Vec::with_capacity(2);
    match check_event(&observed.event) {
        Ok(()) => writes.push(Write::Event(observed.event)),
        Err(error) => tracing::warn!(%error, "supervision event left out of the finish"),
    }
    if let Some(count) = observed.count {
        match check_count(&count) {
            Ok(()) => writes.push(Write::Count(count)),
            Err(error) => tracing::warn!(%error, "supervision count left out of the finish"),
        }
    }
    writes
}

/// Checks a bill update.
pub(crate) fn bill(id: &str, bill: &str) -> Result<Write, LedgerError> {
    text("id", id, true, 128)?;
    text("bill", bill, true, 128)?;
    Ok(Write::Bill(id.to_owned(), bill.to_owned()))
}

/// Checks a daily count.
pub(crate) fn check_count(c: &DailyCount) -> Result<(), LedgerError> {
    text("institution", &c.institution, true, 128)?;
    day_text("day", &c.day)
}

fn split(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn signal(values: Vec<Raw>) -> Result<Signal, LedgerError> {
    let mut v = Values::new("supervision_signals", values);
    let id = v.required()?;
    let day = v.required()?;
    let rule = v.required()?;
    let severity = v.required()?;
    let detected_at_ms = v.required_int()?;
    let regions = split(&v.required()?);
    let institutions = split(&v.required()?);
    let person_key = v.text()?;
    let mdtrt_ids = split(&v.required()?);
    let setl_ids = split(&v.required()?);
    let amounts = split(&v.required()?)
        .iter()
        .map(|fen| {
            fen.parse::<i64>()
                .ok()
                .and_then(Money::from_fen)
                .ok_or_else(|| LedgerError::Corrupt("supervision_signals: a bad amount".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let detail = v.required()?;
    Ok(Signal {
        id,
        day,
        rule,
        severity,
        detected_at_ms,
        regions,
        institutions,
        person_key,
        mdtrt_ids,
        setl_ids,
        amounts,
        detail,
    })
}

pub(crate) fn event(values: Vec<Raw>) -> Result<SupervisionEvent, LedgerError> {
    let mut v = Values::new("supervision_events", values);
    Ok(SupervisionEvent {
        id: v.required()?,
        at_ms: v.required_int()?,
        kind: v.required()?,
        person_key: v.text()?,
        institution: v.required()?,
        insured: v.text()?,
        treatment: v.text()?,
        msgid: v.text()?,
        mdtrt_id: v.text()?,
        setl_id: v.text()?,
        med_type: v.text()?,
        amount: v.money()?,
        invono: v.text()?,
        bill: v.text()?,
        drugs: v.text()?,
        begin_ms: v.int()?,
    })
}

pub(crate) fn daily(values: Vec<Raw>) -> Result<DailyCount, LedgerError> {
    let mut v = Values::new("supervision_daily", values);
    Ok(DailyCount {
        institution: v.required()?,
        day: v.required()?,
        settlements: v.required_int()?,
        amount: v.money()?.ok_or_else(|| {
            LedgerError::Corrupt("supervision_daily: a required column is null".into())
        })?,
    })
}
