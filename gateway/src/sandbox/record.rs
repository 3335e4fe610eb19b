//! A platform stand-in's record: everything it must remember across a
//! restart, in one SQLite file per platform, `DATA/<admdvs>.sqlite`.
//!
//! - `people`: the psn_no this platform gave out (1101) and the ID number
//!   each stands for;
//! - `totals`: each person's year-to-date accumulators, one row per person
//!   and year (the newest year is the one in use);
//! - `settlements`: every committed settlement with what undoing it needs:
//!   the person (the platform's psn_no for them, and the psn_no the settling
//!   message named, which a 2601 reversing it must name too), the policy
//!   engine's `Delta`, and the answer a cancel gives (national JSON of its
//!   `SettlementOutput`, amounts already negated); `undone` says whether it
//!   was cancelled or reversed, `undone_by` by which message and
//!   `undone_psn_no` the psn_no that message named;
//! - `msgids`: the settling message's msgid → setl_id, for 2601;
//! - `events`: one row per settlement, cancel and reversal, with exactly the
//!   columns of the daily statement (`contracts/statement.md`; amounts kept
//!   in integer fen), from which the statement and the answers to 3201 and
//!   3202 are made.
//!
//! The file is in WAL mode with `synchronous=FULL`: a transaction is on disk
//! when its commit returns, and a second process (the `--statement` command)
//! reads while the sandbox writes. Each answer that changes anything is one
//! transaction, committed before the answer leaves.
//!
//! The connection sits behind a `Mutex`: a sandbox needs no more, and the
//! lock also makes read-compute-write of a person's totals atomic. Callers
//! in async code run record work on `tokio::task::spawn_blocking`.

use crate::sandbox::policy::{Accumulators, Care, Delta, PoolToDate};
use anyhow::Context;
use contracts::statement::{Row, RowState};
use contracts::{Admdvs, Date, DateTime, Money};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The schema's version, in `PRAGMA user_version`. Version 2 added
/// `settlements.request_psn_no` and `settlements.undone_psn_no`.
const VERSION: i64 = 2;

/// From version 1 to 2: the psn_no the settling and the undoing messages named.
const UPGRADE_1_TO_2: &str = "
ALTER TABLE settlements ADD COLUMN request_psn_no TEXT;
ALTER TABLE settlements ADD COLUMN undone_psn_no TEXT;
";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS people (
    psn_no    TEXT PRIMARY KEY,
    id_number TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS totals (
    id_number             TEXT    NOT NULL,
    year                  INTEGER NOT NULL,
    outpatient_deductible INTEGER NOT NULL,
    outpatient_inscope    INTEGER NOT NULL,
    outpatient_fund       INTEGER NOT NULL,
    chronic_deductible    INTEGER NOT NULL,
    chronic_inscope       INTEGER NOT NULL,
    chronic_fund          INTEGER NOT NULL,
    inpatient_deductible  INTEGER NOT NULL,
    inpatient_inscope     INTEGER NOT NULL,
    inpatient_fund        INTEGER NOT NULL,
    admissions            INTEGER NOT NULL,
    large_amount_paid     INTEGER NOT NULL,
    critical_base         INTEGER NOT NULL,
    critical_paid         INTEGER NOT NULL,
    civil_servant_paid    INTEGER NOT NULL,
    account_used          INTEGER NOT NULL,
    PRIMARY KEY (id_number, year)
);
CREATE TABLE IF NOT EXISTS settlements (
    setl_id               TEXT PRIMARY KEY,
    msgid                 TEXT    NOT NULL,
    infno                 TEXT    NOT NULL,
    id_number             TEXT    NOT NULL,
    psn_no                TEXT,
    fixmedins_code        TEXT    NOT NULL,
    delta_year            INTEGER NOT NULL,
    delta_care            TEXT    NOT NULL,
    delta_deductible      INTEGER NOT NULL,
    delta_inscope         INTEGER NOT NULL,
    delta_fund            INTEGER NOT NULL,
    delta_admission       INTEGER NOT NULL,
    delta_large_amount    INTEGER NOT NULL,
    delta_critical_base   INTEGER NOT NULL,
    delta_critical        INTEGER NOT NULL,
    delta_civil_servant   INTEGER NOT NULL,
    delta_account         INTEGER NOT NULL,
    undo_answer           BLOB    NOT NULL,
    undone                TEXT,
    undone_by             TEXT,
    undo_id               TEXT,
    request_psn_no        TEXT,
    undone_psn_no         TEXT
);
CREATE TABLE IF NOT EXISTS msgids (
    msgid   TEXT PRIMARY KEY,
    setl_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    setl_id         TEXT,
    msgid           TEXT,
    omsgid          TEXT,
    mdtrt_id        TEXT,
    fixmedins_code  TEXT NOT NULL,
    insuplc_admdvs  TEXT NOT NULL,
    mdtrtarea_admvs TEXT NOT NULL,
    insutype        TEXT,
    med_type        TEXT,
    clr_type        TEXT,
    setl_time       TEXT NOT NULL,
    medfee_sumamt   INTEGER,
    fund_pay_sumamt INTEGER,
    acct_pay        INTEGER,
    psn_cash_pay    INTEGER,
    state           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (setl_time);
CREATE INDEX IF NOT EXISTS events_by_institution ON events (fixmedins_code, setl_time);
";

const EVENT_COLUMNS: &str = "setl_id, msgid, omsgid, mdtrt_id, fixmedins_code, insuplc_admdvs, \
     mdtrtarea_admvs, insutype, med_type, clr_type, setl_time, medfee_sumamt, fund_pay_sumamt, \
     acct_pay, psn_cash_pay, state";

const TOTALS_COLUMNS: &str = "year, outpatient_deductible, outpatient_inscope, outpatient_fund, \
     chronic_deductible, chronic_inscope, chronic_fund, inpatient_deductible, inpatient_inscope, \
     inpatient_fund, admissions, large_amount_paid, critical_base, critical_paid, \
     civil_servant_paid, account_used";

const SETTLEMENT_COLUMNS: &str = "setl_id, msgid, infno, id_number, psn_no, fixmedins_code, \
     delta_year, delta_care, delta_deductible, delta_inscope, delta_fund, delta_admission, \
     delta_large_amount, delta_critical_base, delta_critical, delta_civil_servant, delta_account, \
     undo_answer, undone, request_psn_no, undone_by, undone_psn_no";

/// A committed settlement as the record keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// Its id.
    pub setl_id: String,
    /// The settling message's msgid.
    pub msgid: String,
    /// The settling transaction's code (2207, 2304, 2102).
    pub infno: String,
    /// The person's ID number.
    pub id_number: String,
    /// The person's psn_no in this region (the platform's own).
    pub psn_no: Option<String>,
    /// The psn_no the settling message named (a settlement by ID card may
    /// name another, or none).
    pub request_psn_no: Option<String>,
    /// The institution that settled.
    pub fixmedins_code: String,
    /// What it added to the person's totals.
    pub delta: Delta,
    /// The answer a cancel gives (national JSON of the settling
    /// transaction's answer, holding the negated `SettlementOutput`).
    pub undo_answer: Vec<u8>,
    /// `None` while in effect; `Cancelled` or `Reversed` once undone.
    pub undone: Option<RowState>,
    /// The msgid of the message that undid it.
    pub undone_by: Option<String>,
    /// The psn_no the message that undid it named.
    pub undone_psn_no: Option<String>,
}

impl Settled {
    /// Whether a message naming `psn_no` names this settlement's person: the
    /// psn_no its settling message named, or the platform's own for the
    /// person. A settlement that recorded neither cannot tell, and says yes.
    pub fn names_person(&self, psn_no: &str) -> bool {
        let known = [self.request_psn_no.as_deref(), self.psn_no.as_deref()];
        known.iter().all(Option::is_none) || known.contains(&Some(psn_no))
    }
}

/// One platform's record file.
#[derive(Debug)]
pub struct Record {
    path: PathBuf,
    connection: Mutex<Connection>,
}

/// The record file of platform `admdvs` in folder `data`.
pub fn path_for(data: &Path, admdvs: Admdvs) -> PathBuf {
    data.join(format!("{admdvs}.sqlite"))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Record {
    /// Opens (creating the folder, the file and the tables as needed) the
    /// record of platform `admdvs`, for the running sandbox.
    pub fn open(data: &Path, admdvs: Admdvs) -> anyhow::Result<Record> {
        std::fs::create_dir_all(data)
            .with_context(|| format!("creating the data folder {}", data.display()))?;
        let path = path_for(data, admdvs);
        let connection =
            Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let prepare = || -> anyhow::Result<()> {
            connection.busy_timeout(std::time::Duration::from_secs(5))?;
            let mode: String = connection.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                anyhow::bail!("cannot switch to WAL mode (journal_mode is {mode})");
            }
            connection.execute_batch("PRAGMA synchronous=FULL;")?;
            let version: i64 = connection.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            match version {
                0 => {
                    connection.execute_batch(&format!(
                        "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version={VERSION}; COMMIT;"
                    ))?;
                }
                1 => {
                    connection.execute_batch(&format!(
                        "BEGIN IMMEDIATE; {UPGRADE_1_TO_2} PRAGMA user_version={VERSION}; COMMIT;"
                    ))?;
                }
                VERSION => {}
                other => {
                    anyhow::bail!("schema version {other}, this sandbox knows version {VERSION}")
                }
            }
            Ok(())
        };
        prepare().with_context(|| format!("preparing the record {}", path.display()))?;
        Ok(Record {
            path,
            connection: Mutex::new(connection),
        })
    }

    /// Opens an existing record to read it (the `--statement` command),
    /// also while the sandbox is running.
    pub fn open_existing(data: &Path, admdvs: Admdvs) -> anyhow::Result<Record> {
        let path = path_for(data, admdvs);
        if !path.is_file() {
            anyhow::bail!(
                "no record of platform {admdvs} at {} (has the sandbox run with this data folder?)",
                path.display()
            );
        }
        // Read-write without create: a WAL reader needs the shared-memory
        // file, which a read-only connection cannot always make. Nothing is written.
        let connection = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening the record {}", path.display()))?;
        let check = || -> anyhow::Result<()> {
            connection.busy_timeout(std::time::Duration::from_secs(5))?;
            connection.execute_batch("PRAGMA query_only=1;")?;
            let version: i64 = connection.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if version != VERSION {
                anyhow::bail!(
                    "not a sandbox record of version {VERSION} (user_version is {version}; \
                     a record of an earlier version is upgraded when the sandbox starts on it)"
                );
            }
            Ok(())
        };
        check().with_context(|| format!("reading the record {}", path.display()))?;
        Ok(Record {
            path,
            connection: Mutex::new(connection),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads (no transaction is committed).
    pub fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let connection = lock(&self.connection);
        f(&Tx(&connection)).with_context(|| format!("record {}", self.path.display()))
    }

    /// Runs `f` in one write transaction, committed (durably) when `f`
    /// returns `Ok(Ok(_))`, rolled back otherwise.
    pub fn write<T, E>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> anyhow::Result<Result<T, E>>,
    ) -> anyhow::Result<Result<T, E>> {
        let mut connection = lock(&self.connection);
        let run = |connection: &mut Connection| -> anyhow::Result<Result<T, E>> {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let outcome = f(&Tx(&transaction))?;
            if outcome.is_ok() {
                transaction.commit()?;
            }
            Ok(outcome)
        };
        run(&mut connection).with_context(|| format!("record {}", self.path.display()))
    }
}

/// Typed access to the record inside [`Record::read`] or [`Record::write`].
pub struct Tx<'a>(&'a Connection);

fn fen(money: Money) -> i64 {
    money.fen()
}

fn money(fen: i64, what: &str) -> anyhow::Result<Money> {
    Money::from_fen(fen).with_context(|| format!("{what}: {fen} fen is out of range"))
}

fn care_text(care: Care) -> &'static str {
    match care {
        Care::Outpatient => "outpatient",
        Care::Chronic => "chronic",
        Care::Inpatient => "inpatient",
    }
}

fn care_of(text: &str) -> anyhow::Result<Care> {
    match text {
        "outpatient" => Ok(Care::Outpatient),
        "chronic" => Ok(Care::Chronic),
        "inpatient" => Ok(Care::Inpatient),
        other => anyhow::bail!("delta_care: unknown kind of care {other:?}"),
    }
}

fn state_of(text: &str) -> anyhow::Result<RowState> {
    RowState::parse(text).with_context(|| format!("state: unknown {text:?}"))
}

/// The serial number at the end of an id the sandbox made (its last 10 digits).
fn serial_of(id: &str) -> Option<u64> {
    let tail = id.get(id.len().checked_sub(10)?..)?;
    tail.parse().ok()
}

impl Tx<'_> {
    /// The highest serial number of the ids the record holds (settlements
    /// and their cancels), so a restarted sandbox continues after it.
    pub fn last_serial(&self) -> anyhow::Result<u64> {
        let mut statement = self.0.prepare("SELECT setl_id, undo_id FROM settlements")?;
        let mut rows = statement.query([])?;
        let mut last = 0;
        while let Some(row) = rows.next()? {
            let setl_id: String = row.get(0)?;
            let undo_id: Option<String> = row.get(1)?;
            for id in std::iter::once(setl_id).chain(undo_id) {
                last = last.max(serial_of(&id).unwrap_or(0));
            }
        }
        Ok(last)
    }

    /// Remembers that `psn_no` stands for `id_number`.
    pub fn remember_person(&self, psn_no: &str, id_number: &str) -> anyhow::Result<()> {
        self.0.execute(
            // A psn_no is a digest of the number and the region: one already
            // known stands for the same number, and is left alone (no write).
            "INSERT OR IGNORE INTO people (psn_no, id_number) VALUES (?1, ?2)",
            params![psn_no, id_number],
        )?;
        Ok(())
    }

    /// The ID number a psn_no stands for.
    pub fn person_of(&self, psn_no: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .0
            .query_row(
                "SELECT id_number FROM people WHERE psn_no = ?1",
                [psn_no],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// A person's newest totals (any year; the caller moves them to its year).
    pub fn totals(&self, id_number: &str) -> anyhow::Result<Option<Accumulators>> {
        let row = self
            .0
            .query_row(
                &format!(
                    "SELECT {TOTALS_COLUMNS} FROM totals WHERE id_number = ?1 \
                     ORDER BY year DESC LIMIT 1"
                ),
                [id_number],
                |r| {
                    let mut v = [0i64; 16];
                    for (i, slot) in v.iter_mut().enumerate() {
                        *slot = r.get(i)?;
                    }
                    Ok(v)
                },
            )
            .optional()?;
        let Some(v) = row else {
            return Ok(None);
        };
        let m = |i: usize| money(v[i], "totals");
        let pool = |at: usize| -> anyhow::Result<PoolToDate> {
            Ok(PoolToDate {
                deductible_paid: m(at)?,
                inscope: m(at + 1)?,
                fund_paid: m(at + 2)?,
            })
        };
        Ok(Some(Accumulators {
            year: i32::try_from(v[0]).context("totals: year out of range")?,
            outpatient: pool(1)?,
            chronic: pool(4)?,
            inpatient: pool(7)?,
            admissions: u32::try_from(v[10]).context("totals: admissions out of range")?,
            large_amount_paid: m(11)?,
            critical_base: m(12)?,
            critical_paid: m(13)?,
            civil_servant_paid: m(14)?,
            account_used: m(15)?,
        }))
    }

    /// Stores a person's totals (of `totals.year`).
    pub fn put_totals(&self, id_number: &str, totals: &Accumulators) -> anyhow::Result<()> {
        let t = totals;
        self.0.execute(
            &format!(
                "INSERT OR REPLACE INTO totals (id_number, {TOTALS_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
            ),
            params![
                id_number,
                t.year,
                fen(t.outpatient.deductible_paid),
                fen(t.outpatient.inscope),
                fen(t.outpatient.fund_paid),
                fen(t.chronic.deductible_paid),
                fen(t.chronic.inscope),
                fen(t.chronic.fund_paid),
                fen(t.inpatient.deductible_paid),
                fen(t.inpatient.inscope),
                fen(t.inpatient.fund_paid),
                t.admissions,
                fen(t.large_amount_paid),
                fen(t.critical_base),
                fen(t.critical_paid),
                fen(t.civil_servant_paid),
                fen(t.account_used),
            ],
        )?;
        Ok(())
    }

    /// Takes a settlement's contribution back out of its person's newest totals.
    pub fn revert_totals(&self, id_number: &str, delta: &Delta) -> anyhow::Result<()> {
        if let Some(mut totals) = self.totals(id_number)? {
            totals.revert(delta);
            self.put_totals(id_number, &totals)?;
        }
        Ok(())
    }

    /// Stores a committed settlement and its settling msgid.
    pub fn insert_settlement(&self, s: &Settled) -> anyhow::Result<()> {
        let d = &s.delta;
        self.0.execute(
            &format!(
                "INSERT INTO settlements ({SETTLEMENT_COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, \
                 ?20, ?21, ?22)"
            ),
            params![
                s.setl_id,
                s.msgid,
                s.infno,
                s.id_number,
                s.psn_no,
                s.fixmedins_code,
                d.year,
                care_text(d.care),
                fen(d.deductible),
                fen(d.inscope),
                fen(d.fund),
                d.admission,
                fen(d.large_amount),
                fen(d.critical_base),
                fen(d.critical),
                fen(d.civil_servant),
                fen(d.account),
                s.undo_answer,
                s.undone.map(RowState::as_str),
                s.request_psn_no,
                s.undone_by,
                s.undone_psn_no,
            ],
        )?;
        self.0.execute(
            "INSERT OR REPLACE INTO msgids (msgid, setl_id) VALUES (?1, ?2)",
            params![s.msgid, s.setl_id],
        )?;
        Ok(())
    }

    /// A settlement by its id.
    pub fn settlement(&self, setl_id: &str) -> anyhow::Result<Option<Settled>> {
        let found = self
            .0
            .query_row(
                &format!("SELECT {SETTLEMENT_COLUMNS} FROM settlements WHERE setl_id = ?1"),
                [setl_id],
                |r| {
                    let mut amounts = [0i64; 8];
                    for (i, slot) in amounts.iter_mut().enumerate() {
                        // delta_deductible .. delta_account, skipping delta_admission.
                        let column = if i < 3 { 8 + i } else { 9 + i };
                        *slot = r.get(column)?;
                    }
                    Ok((
                        (
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, String>(5)?,
                        ),
                        (
                            r.get::<_, i32>(6)?,
                            r.get::<_, String>(7)?,
                            r.get::<_, bool>(11)?,
                            amounts,
                        ),
                        r.get::<_, Vec<u8>>(17)?,
                        r.get::<_, Option<String>>(18)?,
                        (
                            r.get::<_, Option<String>>(19)?,
                            r.get::<_, Option<String>>(20)?,
                            r.get::<_, Option<String>>(21)?,
                        ),
                    ))
                },
            )
            .optional()?;
        let Some((
            (setl_id, msgid, infno, id_number, psn_no, fixmedins_code),
            (year, care, admission, a),
            undo_answer,
            undone,
            (request_psn_no, undone_by, undone_psn_no),
        )) = found
        else {
            return Ok(None);
        };
        let m = |i: usize| money(a[i], "settlement delta");
        let delta = Delta {
            year,
            care: care_of(&care)?,
            deductible: m(0)?,
            inscope: m(1)?,
            fund: m(2)?,
            admission,
            large_amount: m(3)?,
            critical_base: m(4)?,
            critical: m(5)?,
            civil_servant: m(6)?,
            account: m(7)?,
        };
        Ok(Some(Settled {
            setl_id,
            msgid,
            infno,
            id_number,
            psn_no,
            request_psn_no,
            fixmedins_code,
            delta,
            undo_answer,
            undone: undone.as_deref().map(state_of).transpose()?,
            undone_by,
            undone_psn_no,
        }))
    }

    /// The settlement a settling msgid committed, if any.
    pub fn setl_id_of_msgid(&self, msgid: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .0
            .query_row(
                "SELECT setl_id FROM msgids WHERE msgid = ?1",
                [msgid],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Marks a settlement undone by message `by`, which named `psn_no`;
    /// `undo_id` is the id the cancel's answer carries, if any.
    pub fn mark_undone(
        &self,
        setl_id: &str,
        how: RowState,
        by: &str,
        undo_id: Option<&str>,
        psn_no: Option<&str>,
    ) -> anyhow::Result<()> {
        self.0.execute(
            "UPDATE settlements SET undone = ?2, undone_by = ?3, undo_id = ?4, undone_psn_no = ?5 \
             WHERE setl_id = ?1",
            params![setl_id, how.as_str(), by, undo_id, psn_no],
        )?;
        Ok(())
    }

    /// Appends one event (a statement row).
    pub fn insert_event(&self, row: &Row) -> anyhow::Result<()> {
        let amount = |m: Option<Money>| m.map(fen);
        self.0.execute(
            &format!(
                "INSERT INTO events ({EVENT_COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ),
            params![
                row.setl_id,
                row.msgid,
                row.omsgid,
                row.mdtrt_id,
                row.fixmedins_code,
                row.insuplc_admdvs.to_string(),
                row.mdtrtarea_admvs.to_string(),
                row.insutype,
                row.med_type,
                row.clr_type,
                row.setl_time.to_string(),
                amount(row.medfee_sumamt),
                amount(row.fund_pay_sumamt),
                amount(row.acct_pay),
                amount(row.psn_cash_pay),
                row.state.as_str(),
            ],
        )?;
        Ok(())
    }

    /// The settled row of a settlement.
    pub fn settled_row(&self, setl_id: &str) -> anyhow::Result<Option<Row>> {
        let rows = self.select_events(
            "setl_id = ?1 AND state = 'settled' ORDER BY rowid LIMIT 1",
            &[&setl_id],
        )?;
        Ok(rows.into_iter().next())
    }

    /// The events whose `setl_time` falls on the days `from..=to` (Shanghai
    /// clock), of one institution or of all, in the order they happened.
    pub fn events(
        &self,
        from: Date,
        to: Date,
        fixmedins_code: Option<&str>,
    ) -> anyhow::Result<Vec<Row>> {
        let start = format!("{from} 00:00:00");
        let end = format!("{to} 23:59:59");
        match fixmedins_code {
            Some(code) => self.select_events(
                "setl_time >= ?1 AND setl_time <= ?2 AND fixmedins_code = ?3 ORDER BY rowid",
                &[&start, &end, &code],
            ),
            None => self.select_events(
                "setl_time >= ?1 AND setl_time <= ?2 ORDER BY rowid",
                &[&start, &end],
            ),
        }
    }

    fn select_events(
        &self,
        condition: &str,
        values: &[&dyn rusqlite::ToSql],
    ) -> anyhow::Result<Vec<Row>> {
        let mut statement = self.0.prepare(&format!(
            "SELECT rowid, {EVENT_COLUMNS} FROM events WHERE {condition}"
        ))?;
        let mut rows = statement.query(values)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let rowid: i64 = r.get(0)?;
            let text = |i: usize| r.get::<_, Option<String>>(i);
            let row = (|| -> anyhow::Result<Row> {
                let region = |i: usize, name: &str| -> anyhow::Result<Admdvs> {
                    let value: String = r.get(i)?;
                    Admdvs::parse(&value)
                        .map_err(|_| anyhow::anyhow!("{name}: {value:?} is not a region code"))
                };
                let amount = |i: usize, name: &str| -> anyhow::Result<Option<Money>> {
                    r.get::<_, Option<i64>>(i)?
                        .map(|f| money(f, name))
                        .transpose()
                };
                let time: String = r.get(11)?;
                let state: String = r.get(16)?;
                Ok(Row {
                    setl_id: text(1)?,
                    msgid: text(2)?,
                    omsgid: text(3)?,
                    mdtrt_id: text(4)?,
                    fixmedins_code: r.get(5)?,
                    insuplc_admdvs: region(6, "insuplc_admdvs")?,
                    mdtrtarea_admvs: region(7, "mdtrtarea_admvs")?,
                    insutype: text(8)?,
                    med_type: text(9)?,
                    clr_type: text(10)?,
                    setl_time: DateTime::parse(&time)
                        .map_err(|e| anyhow::anyhow!("setl_time: {time:?}: {e}"))?,
                    medfee_sumamt: amount(12, "medfee_sumamt")?,
                    fund_pay_sumamt: amount(13, "fund_pay_sumamt")?,
                    acct_pay: amount(14, "acct_pay")?,
                    psn_cash_pay: amount(15, "psn_cash_pay")?,
                    state: state_of(&state)?,
                })
            })()
            .with_context(|| format!("event {rowid}"))?;
            out.push(row);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn settlement(setl_id: &str, request_psn_no: Option<&str>) -> Settled {
        let zero = Money::ZERO;
        Settled {
            setl_id: setl_id.into(),
            msgid: format!("M{setl_id}"),
            infno: "2207".into(),
            id_number: "110105198001010016".into(),
            psn_no: Some("11000012345678901234".into()),
            request_psn_no: request_psn_no.map(str::to_owned),
            fixmedins_code: "H12010100789".into(),
            delta: Delta {
                year: 2026,
                care: Care::Outpatient,
                deductible: zero,
                inscope: zero,
                fund: zero,
                admission: false,
                large_amount: zero,
                critical_base: zero,
                critical: zero,
                civil_servant: zero,
                account: zero,
            },
            undo_answer: b"{}".to_vec(),
            undone: None,
            undone_by: None,
            undone_psn_no: None,
        }
    }

    #[test]
    fn a_settlement_keeps_who_settled_and_who_undid_it() {
        let dir = std::env::temp_dir().join(format!("jjj-record-psn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let admdvs = Admdvs::parse("110000").unwrap();
        let record = Record::open(&dir, admdvs).unwrap();
        let written = record.write(|tx| {
            tx.insert_settlement(&settlement("S1", Some("P-REQUEST")))?;
            tx.mark_undone("S1", RowState::Reversed, "R1", None, Some("P-REQUEST"))?;
            Ok(Ok::<_, ()>(()))
        });
        written.unwrap().unwrap();
        let read = record.read(|tx| tx.settlement("S1")).unwrap().unwrap();
        assert_eq!(read.request_psn_no.as_deref(), Some("P-REQUEST"));
        assert_eq!(read.undone, Some(RowState::Reversed));
        assert_eq!(read.undone_by.as_deref(), Some("R1"));
        assert_eq!(read.undone_psn_no.as_deref(), Some("P-REQUEST"));
        // Either number names the person; nothing else does.
        assert!(read.names_person("P-REQUEST"));
        assert!(read.names_person("11000012345678901234"));
        assert!(!read.names_person("-"));
        drop(record);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_version_1_record_is_upgraded_and_its_settlements_stay_readable() {
        let dir = std::env::temp_dir().join(format!("jjj-record-v1-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let admdvs = Admdvs::parse("110000").unwrap();
        // A record as version 1 left it: no psn_no of the messages.
        let record = Record::open(&dir, admdvs).unwrap();
        let written = record.write(|tx| {
            tx.insert_settlement(&settlement("S1", None))?;
            Ok(Ok::<_, ()>(()))
        });
        written.unwrap().unwrap();
        drop(record);
        let connection = Connection::open(path_for(&dir, admdvs)).unwrap();
        connection
            .execute_batch(
                "ALTER TABLE settlements DROP COLUMN request_psn_no; \
                 ALTER TABLE settlements DROP COLUMN undone_psn_no; PRAGMA user_version=1;",
            )
            .unwrap();
        drop(connection);
        assert!(Record::open_existing(&dir, admdvs).is_err());

        let record = Record::open(&dir, admdvs).unwrap();
        let read = record.read(|tx| tx.settlement("S1")).unwrap().unwrap();
        assert_eq!(read.request_psn_no, None);
        assert_eq!(read.undone_psn_no, None);
        // Only the platform's own number names the person of such a settlement.
        assert!(read.names_person("11000012345678901234"));
        assert!(!read.names_person("-"));
        drop(record);
        assert!(Record::open_existing(&dir, admdvs).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn serial_is_the_last_ten_digits() {
        assert_eq!(serial_of("110000202606151200000000000042"), Some(42));
        assert_eq!(serial_of("short"), None);
    }
}
