//! What clearing keeps beside the journal: the regions' statements as
//! uploaded, the platforms' verdicts on clearing rows (3261/3262), and the
//! days officers closed. Same database, same writer (so replicas share it),
//! same checks on write and on read.
//!
//! A closed day is immutable: every write for it (a statement, a verdict, a
//! second close) changes nothing and answers [`LedgerError::Conflict`]. The
//! guard is in the statement itself (`WHERE NOT EXISTS` a closed day), so it
//! holds inside the writer's transaction, also across replicas.

use crate::check::{day_text, Raw, Values};
use crate::ops::Val;
use crate::sql::{names, Kind};
use crate::LedgerError;

/// A region's statement for a day, as uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredStatement {
    /// The clearing day, `YYYY-MM-DD`.
    pub day: String,
    /// The region.
    pub admdvs: String,
    /// Who uploaded it (the platform's institution code).
    pub uploaded_by: String,
    /// When, Unix milliseconds.
    pub uploaded_at_ms: i64,
    /// SHA-256 of the body, hex.
    pub digest: String,
    /// Its rows.
    pub rows: u64,
    /// The CSV, UTF-8.
    pub body: String,
}

/// A day signed off by an officer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedDay {
    /// The clearing day, `YYYY-MM-DD`.
    pub day: String,
    /// The officer's institution code.
    pub closed_by: String,
    /// When, Unix milliseconds.
    pub closed_at_ms: i64,
    /// SHA-256 (hex) of the report signed off.
    pub digest: String,
    /// The report as closed (JSON).
    pub report: String,
}

/// A platform's verdict on one clearing row: `1` confirmed, `2` disputed,
/// `0` rolled back (open again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The insured region giving the verdict.
    pub admdvs: String,
    /// The settlement.
    pub setl_id: String,
    /// The settlement's clearing day, `YYYY-MM-DD`.
    pub day: String,
    /// `0`, `1` or `2`.
    pub cnfm_flag: String,
    /// The visit, as the platform named it.
    pub mdtrt_id: Option<String>,
    /// Why (for a dispute).
    pub memo: Option<String>,
    /// The platform's institution code.
    pub by: String,
    /// When, Unix milliseconds.
    pub at_ms: i64,
}

/// A clearing write, executed by the writer like a journal command.
#[derive(Debug)]
pub(crate) enum Write {
    Statement(StoredStatement),
    Close(ClosedDay),
    Verdict(Verdict),
}

pub(crate) const PUT_STATEMENT: &str = "INSERT INTO clearing_statements \
     (day, admdvs, uploaded_by, uploaded_at_ms, digest, row_count, body) \
     SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS TEXT), CAST($4 AS BIGINT), \
     CAST($5 AS TEXT), CAST($6 AS BIGINT), CAST($7 AS TEXT) \
     WHERE NOT EXISTS (SELECT 1 FROM clearing_days WHERE day = CAST($1 AS TEXT)) \
     ON CONFLICT (day, admdvs) DO UPDATE SET uploaded_by = excluded.uploaded_by, \
     uploaded_at_ms = excluded.uploaded_at_ms, digest = excluded.digest, \
     row_count = excluded.row_count, body = excluded.body";

pub(crate) const CLOSE_DAY: &str = "INSERT INTO clearing_days \
     (day, closed_by, closed_at_ms, digest, report) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (day) DO NOTHING";

pub(crate) const PUT_VERDICT: &str = "INSERT INTO clearing_verdicts \
     (admdvs, setl_id, day, cnfm_flag, mdtrt_id, memo, decided_by, decided_at_ms) \
     SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS TEXT), CAST($4 AS TEXT), \
     CAST($5 AS TEXT), CAST($6 AS TEXT), CAST($7 AS TEXT), CAST($8 AS BIGINT) \
     WHERE NOT EXISTS (SELECT 1 FROM clearing_days WHERE day = CAST($3 AS TEXT)) \
     ON CONFLICT (admdvs, setl_id) DO UPDATE SET day = excluded.day, \
     cnfm_flag = excluded.cnfm_flag, mdtrt_id = excluded.mdtrt_id, memo = excluded.memo, \
     decided_by = excluded.decided_by, decided_at_ms = excluded.decided_at_ms";

pub(crate) const HEARTBEAT: &str = "INSERT INTO ledger_heartbeat (id, at_ms) VALUES (1, $1) \
     ON CONFLICT (id) DO UPDATE SET at_ms = excluded.at_ms";

pub(crate) const STATEMENT_COLUMNS: &[(&str, Kind)] = &[
    ("day", Kind::Text),
    ("admdvs", Kind::Text),
    ("uploaded_by", Kind::Text),
    ("uploaded_at_ms", Kind::Int),
    ("digest", Kind::Text),
    ("row_count", Kind::Int),
    ("body", Kind::Text),
];

pub(crate) const DAY_COLUMNS: &[(&str, Kind)] = &[
    ("day", Kind::Text),
    ("closed_by", Kind::Text),
    ("closed_at_ms", Kind::Int),
    ("digest", Kind::Text),
    ("report", Kind::Text),
];

pub(crate) const VERDICT_COLUMNS: &[(&str, Kind)] = &[
    ("admdvs", Kind::Text),
    ("setl_id", Kind::Text),
    ("day", Kind::Text),
    ("cnfm_flag", Kind::Text),
    ("mdtrt_id", Kind::Text),
    ("memo", Kind::Text),
    ("decided_by", Kind::Text),
    ("decided_at_ms", Kind::Int),
];

/// `SELECT … FROM clearing_statements WHERE day = $1 ORDER BY admdvs`.
pub(crate) fn select_statements() -> String {
    format!(
        "SELECT {} FROM clearing_statements WHERE day = $1 ORDER BY admdvs",
        names(STATEMENT_COLUMNS)
    )
}

/// `SELECT … FROM clearing_days WHERE day = $1`.
pub(crate) fn select_day() -> String {
    format!(
        "SELECT {} FROM clearing_days WHERE day = $1",
        names(DAY_COLUMNS)
    )
}

/// The closed days' names and closing times.
pub(crate) const CLOSURE_COLUMNS: &[(&str, Kind)] =
    &[("day", Kind::Text), ("closed_at_ms", Kind::Int)];

/// `SELECT day, closed_at_ms FROM clearing_days WHERE day >= $1 ORDER BY day`.
pub(crate) fn select_closures() -> String {
    format!(
        "SELECT {} FROM clearing_days WHERE day >= $1 ORDER BY day",
        names(CLOSURE_COLUMNS)
    )
}

/// `SELECT … FROM clearing_verdicts WHERE day = $1 ORDER BY admdvs, setl_id`.
pub(crate) fn select_verdicts() -> String {
    format!(
        "SELECT {} FROM clearing_verdicts WHERE day = $1 ORDER BY admdvs, setl_id",
        names(VERDICT_COLUMNS)
    )
}

impl Write {
    /// The statement and its parameters.
    pub(crate) fn sql_and_params(&self) -> (&'static str, Vec<Val<'_>>) {
        match self {
            Write::Statement(s) => (
                PUT_STATEMENT,
                vec![
                    Val::Text(Some(&s.day)),
                    Val::Text(Some(&s.admdvs)),
                    Val::Text(Some(&s.uploaded_by)),
                    Val::Int(Some(s.uploaded_at_ms)),
                    Val::Text(Some(&s.digest)),
                    Val::Int(Some(i64::try_from(s.rows).unwrap_or(i64::MAX))),
                    Val::Text(Some(&s.body)),
                ],
            ),
            Write::Close(d) => (
                CLOSE_DAY,
                vec![
                    Val::Text(Some(&d.day)),
                    Val::Text(Some(&d.closed_by)),
                    Val::Int(Some(d.closed_at_ms)),
                    Val::Text(Some(&d.digest)),
                    Val::Text(Some(&d.report)),
                ],
            ),
            Write::Verdict(v) => (
                PUT_VERDICT,
                vec![
                    Val::Text(Some(&v.admdvs)),
                    Val::Text(Some(&v.setl_id)),
                    Val::Text(Some(&v.day)),
                    Val::Text(Some(&v.cnfm_flag)),
                    Val::Text(v.mdtrt_id.as_deref()),
                    Val::Text(v.memo.as_deref()),
                    Val::Text(Some(&v.by)),
                    Val::Int(Some(v.at_ms)),
                ],
            ),
        }
    }

    /// The answer when the statement changed no row: the day is closed.
    pub(crate) fn refused(&self) -> LedgerError {
        match self {
            Write::Statement(s) => {
                LedgerError::Conflict(format!("clearing day {} is closed", s.day))
            }
            Write::Close(d) => {
                LedgerError::Conflict(format!("clearing day {} is already closed", d.day))
            }
            Write::Verdict(v) => LedgerError::Conflict(format!("clearing day {} is closed", v.day)),
        }
    }
}

fn short(field: &str, text: &str, required: bool) -> Result<(), LedgerError> {
    if (required && text.is_empty()) || text.len() > 128 || text.chars().any(char::is_control) {
        return Err(LedgerError::Invalid(format!(
            "{field} must be 1 to 128 characters without control characters"
        )));
    }
    Ok(())
}

/// Checks a write before it reaches the writer.
pub(crate) fn check(write: &Write) -> Result<(), LedgerError> {
    match write {
        Write::Statement(s) => {
            day_text("day", &s.day)?;
            short("admdvs", &s.admdvs, true)?;
            short("uploaded_by", &s.uploaded_by, true)?;
            short("digest", &s.digest, true)
        }
        Write::Close(d) => {
            day_text("day", &d.day)?;
            short("closed_by", &d.closed_by, true)?;
            short("digest", &d.digest, true)
        }
        Write::Verdict(v) => {
            day_text("day", &v.day)?;
            short("admdvs", &v.admdvs, true)?;
            short("setl_id", &v.setl_id, true)?;
            short("by", &v.by, true)?;
            if !matches!(v.cnfm_flag.as_str(), "0" | "1" | "2") {
                return Err(LedgerError::Invalid("cnfm_flag is 0, 1 or 2".into()));
            }
            if let Some(memo) = &v.memo {
                if memo.len() > 1000 {
                    return Err(LedgerError::Invalid("memo is at most 1000 bytes".into()));
                }
            }
            Ok(())
        }
    }
}

pub(crate) fn statement(values: Vec<Raw>) -> Result<StoredStatement, LedgerError> {
    let mut v = Values::new("clearing_statements", values);
    Ok(StoredStatement {
        day: v.required()?,
        admdvs: v.required()?,
        uploaded_by: v.required()?,
        uploaded_at_ms: v.required_int()?,
        digest: v.required()?,
        rows: u64::try_from(v.required_int()?)
            .map_err(|_| LedgerError::Corrupt("clearing_statements: negative row_count".into()))?,
        body: v.required()?,
    })
}

pub(crate) fn closed_day(values: Vec<Raw>) -> Result<ClosedDay, LedgerError> {
    let mut v = Values::new("clearing_days", values);
    Ok(ClosedDay {
        day: v.required()?,
        closed_by: v.required()?,
        closed_at_ms: v.required_int()?,
        digest: v.required()?,
        report: v.required()?,
    })
}

pub(crate) fn closure(values: Vec<Raw>) -> Result<(String, i64), LedgerError> {
    let mut v = Values::new("clearing_days", values);
    Ok((v.required()?, v.required_int()?))
}

pub(crate) fn verdict(values: Vec<Raw>) -> Result<Verdict, LedgerError> {
    let mut v = Values::new("clearing_verdicts", values);
    Ok(Verdict {
        admdvs: v.required()?,
        setl_id: v.required()?,
        day: v.required()?,
        cnfm_flag: v.required()?,
        mdtrt_id: v.text()?,
        memo: v.text()?,
        by: v.required()?,
        at_ms: v.required_int()?,
    })
}
