//! The gateway's own daily statement: its journal turned into the rows of
//! `contracts/statement.md` for one clearing day, and `jjj-gateway ledger
//! export`, which writes them as CSV (the statement itself) or JSON lines.
//!
//! # From journal entries to rows
//!
//! The clearing day is an Asia/Shanghai calendar day, `[00:00, 24:00)` at
//! UTC+8 (no daylight saving). A row belongs to the day its `setl_time`
//! falls on; the entries are read with [`Ledger::touching`], which finds them
//! by reception, settlement and resolution time.
//!
//! * A settlement (2207, 2304, 2102) whose answer the gateway passed on
//!   (`done`), or that was resolved `confirmed` or `reversed`, gives a
//!   `settled` row at its settlement time (the platform's `setl_time`, else
//!   when the answer came) with the answer's id, codes and amounts.
//! * One whose outcome the gateway never learned (pending or unknown, then
//!   resolved; an entry without any figure of the answer) gives a `settled`
//!   row with empty `setl_id` and amounts at its reception time: the platform
//!   may have settled it, and reconciliation matches it by (institution, msgid).
//! * A settlement later `reversed` (by the hospital's own 2601 or by the
//!   gateway) also gives a `reversed` row at its resolution time: `msgid` the
//!   hospital's 2601 (empty when the gateway reversed it itself), `omsgid`
//!   the settling msgid, the amounts negated (empty when never learned).
//! * A cancel (2208, 2305, 2103) the platform accepted (`done`; also
//!   `confirmed`) gives a `cancelled` row at its own settlement time:
//!   `setl_id` the settlement cancelled, `omsgid` the msgid of the entry that
//!   settled it (found by id, possibly on an earlier day), the amounts of the
//!   cancel's answer made negative (the cancelled settlement's, negated, when
//!   the answer carried none).
//! * Pending, unknown and refused entries, and every other transaction, give
//!   no row.
//!
//! # Late rows
//!
//! A row whose day an officer had already closed when the row came to be (its
//! answer arrived, or its outcome was resolved, after the closing) is **late**:
//! the closed day keeps what it was signed off with, and the row goes to the
//! first day after its own that was still open when it came — with its own
//! `setl_time`, as an adjustment of that day (`contracts/statement.md`).
//!
//! Rows are ordered by `setl_time`, then `msgid`.

use crate::config::Config;
use contracts::statement::{Row, RowState, Writer, COLUMNS};
use contracts::{Admdvs, Date, DateTime, Money};
use ledger::{Entry, Ledger, LedgerError, State};
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One day in milliseconds (Shanghai keeps no daylight saving).
const DAY_MS: i64 = 86_400_000;

/// How far before the day the export looks for the hospital's 2601 that
/// reversed a settlement: the reversal is received before its resolution.
const REVERSAL_LOOKBACK_MS: i64 = DAY_MS;

/// What `ledger export` was asked to do.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// The gateway's configuration file; its [ledger] url is read.
    #[arg(long)]
    pub config: PathBuf,
    /// The clearing day (Asia/Shanghai), YYYY-MM-DD.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: String,
    /// csv (the statement's own form) or jsonl (one JSON object per row).
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// Where to write; standard output when absent.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The output form of `ledger export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The statement's CSV (`contracts/statement.md`).
    Csv,
    /// One JSON object per row, with the statement's column names as keys;
    /// amounts as yuan strings with two decimals, empty fields as null.
    Jsonl,
}

/// The day `[from, to)` in Unix milliseconds: 00:00 to 24:00 on the Shanghai clock.
pub fn day_bounds(day: Date) -> Option<(i64, i64)> {
    use chrono::Datelike;
    let naive = day.naive();
    let from = DateTime::from_civil(naive.year(), naive.month(), naive.day(), 0, 0, 0, 0)?;
    let from = from.unix_millis();
    Some((from, from + DAY_MS))
}

/// What a transaction is to the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Settle,
    Cancel,
    Other,
}

fn kind(infno: &str) -> Kind {
    match infno {
        "2207" | "2304" | "2102" => Kind::Settle,
        "2208" | "2305" | "2103" => Kind::Cancel,
        _ => Kind::Other,
    }
}

fn corrupt(entry: &Entry, what: &str) -> LedgerError {
    LedgerError::Corrupt(format!("entry {}: {what}", entry.new.key))
}

fn region(entry: &Entry, text: &str, field: &str) -> Result<Admdvs, LedgerError> {
    Admdvs::parse(text)
        .map_err(|_| corrupt(entry, &format!("{field} {text:?} is not a region code")))
}

fn time(entry: &Entry, ms: i64) -> Result<DateTime, LedgerError> {
    DateTime::from_unix_millis(ms)
        .map(DateTime::truncated_to_seconds)
        .ok_or_else(|| corrupt(entry, "a time out of range"))
}

/// Whether the entry holds any figure of a platform's answer.
fn has_figures(entry: &Entry) -> bool {
    entry.answered.setl_id.is_some()
        || entry.answered.medfee_sumamt.is_some()
        || entry.answered.fund_pay_sumamt.is_some()
        || entry.answered.acct_pay.is_some()
        || entry.answered.psn_cash_pay.is_some()
}

/// When the answer's settlement took effect: the platform's `setl_time`,
/// else when the answer came, else when the call came.
fn effect_ms(entry: &Entry) -> i64 {
    entry
        .answered
        .setl_time_ms
        .or(entry.finished_at_ms())
        .unwrap_or(entry.new.received_at_ms)
}

/// The row of `entry` with its own figures, in `state` at `at_ms`.
fn row(entry: &Entry, state: RowState, at_ms: i64) -> Result<Row, LedgerError> {
    Ok(Row {
        setl_id: entry.answered.setl_id.clone(),
        msgid: Some(entry.new.key.msgid.clone()),
        omsgid: None,
        mdtrt_id: entry.answered.mdtrt_id.clone(),
        fixmedins_code: entry.new.institution.clone(),
        insuplc_admdvs: region(entry, &entry.new.insured, "insured region")?,
        mdtrtarea_admvs: region(entry, &entry.new.treatment, "treatment region")?,
        insutype: entry.answered.insutype.clone(),
        med_type: entry.answered.med_type.clone(),
        clr_type: entry.answered.clr_type.clone(),
        setl_time: time(entry, at_ms)?,
        medfee_sumamt: entry.answered.medfee_sumamt,
        fund_pay_sumamt: entry.answered.fund_pay_sumamt,
        acct_pay: entry.answered.acct_pay,
        psn_cash_pay: entry.answered.psn_cash_pay,
        state,
    })
}

fn negative(amount: Option<Money>) -> Option<Money> {
    amount.map(|m| if m.fen() > 0 { m.negated() } else { m })
}

/// When the row an entry gives came to be as it is: when its answer came, or,
/// for an outcome learned only by resolving the call, the resolution.
fn arrival_ms(entry: &Entry, answered: bool) -> i64 {
    let at = if answered {
        entry.finished_at_ms()
    } else {
        entry.resolved_at_ms
    };
    at.or(entry.finished_at_ms())
        .or(entry.resolved_at_ms)
        .unwrap_or(entry.new.received_at_ms)
}

/// Which clearing day a row belongs to: its own (the day of `at_ms`), unless
/// that day was closed before the row came to be (`arrival_ms`); then the
/// first later day still open at its arrival. `closed` maps days to when
/// they were closed.
pub fn row_day(at_ms: i64, arrival_ms: i64, closed: &HashMap<Date, i64>) -> Option<Date> {
    let own = DateTime::from_unix_millis(at_ms)?.date();
    let closed_before = |day: &Date| closed.get(day).is_some_and(|&at| at < arrival_ms);
    if !closed_before(&own) {
        return Some(own);
    }
    let arrived = DateTime::from_unix_millis(arrival_ms)?.date();
    let mut day = own.next()?.max(arrived);
    while closed_before(&day) {
        day = day.next()?;
    }
    Some(day)
}

/// The days closed from `from` on (every closed day without it), with when
/// (see [`row_day`]).
pub async fn closed_days(
    ledger: &Ledger,
    from: Option<Date>,
) -> Result<HashMap<Date, i64>, LedgerError> {
    let from = from.map(|d| d.to_string()).unwrap_or_default();
    Ok(ledger
        .closed_since(&from)
        .await?
        .into_iter()
        .filter_map(|(day, at)| Date::parse(&day).ok().map(|d| (d, at)))
        .collect())
}

/// The days closed before `day`: those whose late rows `day` may carry.
pub async fn closed_before(ledger: &Ledger, day: Date) -> Result<BTreeSet<Date>, LedgerError> {
    Ok(closed_days(ledger, None)
        .await?
        .into_keys()
        .filter(|d| *d < day)
        .collect())
}

/// The statement rows of the clearing `day` (Asia/Shanghai), from the journal:
/// the rows of the day, and the late rows of closed days that came during it.
/// See the module documentation for the mapping.
pub async fn day_rows(ledger: &Ledger, day: Date) -> Result<Vec<Row>, LedgerError> {
    rows_of(ledger, day, None).await
}

/// [`day_rows`] as they are when `day` is closed at `closing_at_ms`: without
/// the rows that will be late from then on.
pub async fn closing_rows(
    ledger: &Ledger,
    day: Date,
    closing_at_ms: i64,
) -> Result<Vec<Row>, LedgerError> {
    rows_of(ledger, day, Some(closing_at_ms)).await
}

async fn rows_of(
    ledger: &Ledger,
    day: Date,
    closing_at_ms: Option<i64>,
) -> Result<Vec<Row>, LedgerError> {
    let (from, to) = day_bounds(day)
        .ok_or_else(|| LedgerError::Invalid(format!("{day}: no such clearing day")))?;
    let entries = ledger.touching(from - REVERSAL_LOOKBACK_MS, to).await?;

    // The hospitals' accepted 2601s, by (caller, msgid reversed): the last one wins.
    let mut reversals: HashMap<(&str, &str), &str> = HashMap::new();
    for entry in &entries {
        if let (true, State::Done, Some(original)) = (
            entry.new.infno == "2601",
            entry.state,
            entry.new.original_msgid.as_deref(),
        ) {
            reversals.insert(
                (entry.new.key.caller.as_str(), original),
                entry.new.key.msgid.as_str(),
            );
        }
    }

    // The days closed since the earliest a row of these entries can be on.
    let earliest = entries
        .iter()
        .map(|e| {
            e.new
                .received_at_ms
                .min(e.answered.setl_time_ms.unwrap_or(i64::MAX))
        })
        .min()
        .and_then(DateTime::from_unix_millis)
        .map_or(day, DateTime::date);
    let mut closed = closed_days(ledger, Some(earliest.min(day))).await?;
    if let Some(at) = closing_at_ms {
        closed.entry(day).or_insert(at);
    }
    let here = |at_ms: i64, arrival_ms: i64| row_day(at_ms, arrival_ms, &closed) == Some(day);

    let mut rows = Vec::new();
    for entry in &entries {
        match (kind(&entry.new.infno), entry.state) {
            (Kind::Settle, State::Done | State::Confirmed | State::Reversed) => {
                // Done means the platform answered with a settlement; a resolved
                // entry carries figures only if an answer was seen before.
                let answered = entry.state == State::Done || has_figures(entry);
                let settled_at = if answered {
                    effect_ms(entry)
                } else {
                    entry.new.received_at_ms
                };
                if here(settled_at, arrival_ms(entry, answered)) {
                    rows.push(row(entry, RowState::Settled, settled_at)?);
                }
                if let (State::Reversed, Some(resolved_at)) = (entry.state, entry.resolved_at_ms) {
                    if here(resolved_at, resolved_at) {
                        let mut reversed = row(entry, RowState::Reversed, resolved_at)?;
                        reversed.msgid = reversals
                            .get(&(entry.new.key.caller.as_str(), entry.new.key.msgid.as_str()))
                            .map(|m| (*m).to_owned());
                        reversed.omsgid = Some(entry.new.key.msgid.clone());
                        reversed.medfee_sumamt = entry.answered.medfee_sumamt.map(Money::negated);
                        reversed.fund_pay_sumamt =
                            entry.answered.fund_pay_sumamt.map(Money::negated);
                        reversed.acct_pay = entry.answered.acct_pay.map(Money::negated);
                        reversed.psn_cash_pay = entry.answered.psn_cash_pay.map(Money::negated);
                        rows.push(reversed);
                    }
                }
            }
            (Kind::Cancel, State::Done | State::Confirmed) => {
                let at = effect_ms(entry);
                if here(at, arrival_ms(entry, true)) {
                    rows.push(cancel_row(ledger, entry, at).await?);
                }
            }
            _ => {}
        }
    }
    rows.sort_by(|a, b| {
        (a.setl_time, &a.msgid, a.state, &a.setl_id).cmp(&(
            b.setl_time,
            &b.msgid,
            b.state,
            &b.setl_id,
        ))
    });
    Ok(rows)
}

/// The `cancelled` row of an accepted cancel.
async fn cancel_row(ledger: &Ledger, cancel: &Entry, at_ms: i64) -> Result<Row, LedgerError> {
    let original = match cancel.new.cancels_setl_id.as_deref() {
        Some(setl_id) => ledger
            .by_setl_id(setl_id)
            .await?
            .filter(|o| kind(&o.new.infno) == Kind::Settle && o.new.key != cancel.new.key),
        None => None,
    };
    let mut row = row(cancel, RowState::Cancelled, at_ms)?;
    row.setl_id = cancel.new.cancels_setl_id.clone();
    row.omsgid = original.as_ref().map(|o| o.new.key.msgid.clone());
    let own = [
        cancel.answered.medfee_sumamt,
        cancel.answered.fund_pay_sumamt,
        cancel.answered.acct_pay,
        cancel.answered.psn_cash_pay,
    ];
    let amounts = match &original {
        Some(o) if own.iter().all(Option::is_none) => [
            o.answered.medfee_sumamt,
            o.answered.fund_pay_sumamt,
            o.answered.acct_pay,
            o.answered.psn_cash_pay,
        ],
        _ => own,
    };
    row.medfee_sumamt = negative(amounts[0]);
    row.fund_pay_sumamt = negative(amounts[1]);
    row.acct_pay = negative(amounts[2]);
    row.psn_cash_pay = negative(amounts[3]);
    if let Some(o) = &original {
        row.mdtrt_id = row.mdtrt_id.or_else(|| o.answered.mdtrt_id.clone());
        row.insutype = row.insutype.or_else(|| o.answered.insutype.clone());
        row.med_type = row.med_type.or_else(|| o.answered.med_type.clone());
        row.clr_type = row.clr_type.or_else(|| o.answered.clr_type.clone());
    }
    Ok(row)
}

/// Appends `text` to `out` as a JSON string.
pub(crate) fn json_string(out: &mut String, text: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `text` as a JSON string, or `null`.
pub(crate) fn json_option(out: &mut String, text: Option<&str>) {
    match text {
        Some(text) => json_string(out, text),
        None => out.push_str("null"),
    }
}

/// One row as a JSON object: the statement's columns as keys, in their
/// order; amounts as yuan strings with two decimals; empty as null.
pub fn row_json(row: &Row) -> String {
    let money = |m: Option<Money>| m.map(Money::to_yuan_string);
    let values: [Option<String>; 16] = [
        row.setl_id.clone(),
        row.msgid.clone(),
        row.omsgid.clone(),
        row.mdtrt_id.clone(),
        Some(row.fixmedins_code.clone()),
        Some(row.insuplc_admdvs.to_string()),
        Some(row.mdtrtarea_admvs.to_string()),
        row.insutype.clone(),
        row.med_type.clone(),
        row.clr_type.clone(),
        Some(row.setl_time.to_string()),
        money(row.medfee_sumamt),
        money(row.fund_pay_sumamt),
        money(row.acct_pay),
        money(row.psn_cash_pay),
        Some(row.state.as_str().to_owned()),
    ];
    let mut out = String::with_capacity(512);
    out.push('{');
    for (i, (column, value)) in COLUMNS.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(&mut out, column);
        out.push(':');
        json_option(&mut out, value.filter(|v| !v.is_empty()).as_deref());
    }
    out.push('}');
    out
}

/// Writes `rows` in `format` to `out`.
pub fn write_rows(rows: &[Row], format: Format, out: impl Write) -> std::io::Result<()> {
    match format {
        Format::Csv => {
            let mut writer = Writer::new(out)?;
            for row in rows {
                writer.write(row)?;
            }
            writer.finish()?;
        }
        Format::Jsonl => {
            let mut out = std::io::BufWriter::new(out);
            for row in rows {
                out.write_all(row_json(row).as_bytes())?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
    }
    Ok(())
}

/// Writes to `path` through a temporary file in the same folder, renamed
/// into place once complete: a reader never sees half a statement.
fn write_file(path: &Path, rows: &[Row], format: Format) -> anyhow::Result<()> {
    let mut name = path
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("--out {}: not a file name", path.display()))?
        .to_owned();
    name.push(".partial");
    let partial = path.with_file_name(name);
    let written = std::fs::File::create(&partial)
        .and_then(|file| {
            write_rows(rows, format, &file)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&partial, path));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&partial);
        anyhow::bail!("writing {}: {error}", path.display());
    }
    Ok(())
}

/// `jjj-gateway ledger export`: 0 when written, an error otherwise.
pub fn run(args: &ExportArgs) -> anyhow::Result<u8> {
    let day = Date::parse(&args.date)
        .map_err(|_| anyhow::anyhow!("--date {:?}: expected YYYY-MM-DD", args.date))?;
    let config = Config::load(&args.config)?;
    let url = config.ledger_url.ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no [ledger] url: this gateway keeps no journal",
            args.config.display()
        )
    })?;
    if let Some(path) = url.strip_prefix("sqlite://") {
        // Opening would create an empty ledger: say that there is none.
        if !Path::new(path).exists() {
            anyhow::bail!("no ledger at {path} (has the gateway run with this configuration?)");
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rows = runtime.block_on(async {
        let ledger = Ledger::open(&url)
            .await
            .map_err(|e| anyhow::anyhow!("opening the ledger {url}: {e}"))?;
        day_rows(&ledger, day)
            .await
            .map_err(|e| anyhow::anyhow!("reading the ledger: {e}"))
    })?;
    match &args.out {
        Some(path) => write_file(path, &rows, args.format)?,
        None => {
            let stdout = std::io::stdout();
            write_rows(&rows, args.format, stdout.lock())?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use ledger::{Answered, Finish, Key, NewEntry, Reply};

    /// A ledger in a fresh temporary folder, removed on drop.
    struct TempLedger {
        dir: PathBuf,
        ledger: Ledger,
    }

    impl TempLedger {
        async fn new(name: &str) -> TempLedger {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "jjj-export-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let ledger = Ledger::open(&format!("sqlite://{}/ledger.db", dir.display()))
                .await
                .unwrap();
            TempLedger { dir, ledger }
        }
    }

    impl Drop for TempLedger {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    const HOSPITAL: &str = "H11010500123";

    /// Unix ms of a Shanghai wall-clock time.
    fn at(d: u32, h: u32, mi: u32, s: u32) -> i64 {
        DateTime::from_civil(2026, 11, d, h, mi, s, 0)
            .unwrap()
            .unix_millis()
    }

    fn yuan(text: &str) -> Option<Money> {
        Some(Money::parse_yuan(text).unwrap())
    }

    fn new_entry(msgid: &str, infno: &str, received_at_ms: i64) -> NewEntry {
        NewEntry {
            key: Key::new(HOSPITAL, msgid),
            infno: infno.into(),
            institution: HOSPITAL.into(),
            insured: "130600".into(),
            treatment: "110000".into(),
            region: "130000".into(),
            digest: "0a1b".into(),
            original_msgid: None,
            cancels_setl_id: None,
            psn_no: Some(ledger::PsnNo::new(PERSON).unwrap()),
            received_at_ms,
        }
    }

    /// The person number every entry here is journalled with.
    const PERSON: &str = "13000000000012345678";

    fn answer(
        state: State,
        setl_id: Option<&str>,
        setl_time_ms: Option<i64>,
        finished: i64,
    ) -> Finish {
        Finish {
            state,
            answered: Answered {
                setl_id: setl_id.map(str::to_owned),
                mdtrt_id: setl_id.map(|_| "MDTRT1".to_owned()),
                insutype: setl_id.map(|_| "310".to_owned()),
                med_type: setl_id.map(|_| "11".to_owned()),
                clr_type: setl_id.map(|_| "11".to_owned()),
                setl_time_ms,
                medfee_sumamt: setl_id.and(yuan("356.80")),
                fund_pay_sumamt: setl_id.and(yuan("213.10")),
                acct_pay: setl_id.and(yuan("143.70")),
                psn_cash_pay: setl_id.and(yuan("0")),
                error_code: None,
                anomalies: Vec::new(),
            },
            reply: Reply {
                status: 200,
                media_type: "application/json".into(),
                bytes: b"{}".to_vec(),
                finished_at_ms: finished,
            },
        }
    }

    /// A settlement the platform answered.
    async fn settle(ledger: &Ledger, msgid: &str, setl_id: &str, received: i64, setl_time: i64) {
        let new = new_entry(msgid, "2207", received);
        ledger.begin(new.clone()).await.unwrap();
        ledger
            .finish(
                &new.key,
                answer(State::Done, Some(setl_id), Some(setl_time), setl_time + 300),
            )
            .await
            .unwrap();
    }

    fn csv(rows: &[Row]) -> String {
        let mut out = Vec::new();
        write_rows(rows, Format::Csv, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    const HEADER: &str = "setl_id,msgid,omsgid,mdtrt_id,fixmedins_code,insuplc_admdvs,mdtrtarea_admvs,insutype,med_type,clr_type,setl_time,medfee_sumamt,fund_pay_sumamt,acct_pay,psn_cash_pay,state\n";

    #[test]
    fn the_day_is_shanghai_midnight_to_midnight() {
        let (from, to) = day_bounds(Date::from_ymd(2026, 11, 26).unwrap()).unwrap();
        // 2026-11-26 00:00 +08:00 is 2026-11-25 16:00 UTC.
        assert_eq!(from, 1_795_622_400_000);
        assert_eq!(to - from, DAY_MS);
        assert_eq!(from, at(26, 0, 0, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn settlements_cancels_and_reversals_become_rows_of_their_day() {
        let db = TempLedger::new("mapping").await;
        let ledger = &db.ledger;
        let day = Date::from_ymd(2026, 11, 26).unwrap();

        // A plain settlement of the day.
        settle(
            ledger,
            "M-settle",
            "S1",
            at(26, 9, 29, 58),
            at(26, 9, 30, 0),
        )
        .await;
        // Received before midnight, settled after: a row of the 26th.
        settle(
            ledger,
            "M-midnight",
            "S2",
            at(25, 23, 59, 59),
            at(26, 0, 0, 1),
        )
        .await;
        // Settled the day before, cancelled today: only the cancel is today's,
        // with the platform's positive amounts made negative.
        settle(
            ledger,
            "M-yesterday",
            "S3",
            at(25, 10, 0, 0),
            at(25, 10, 0, 1),
        )
        .await;
        let mut cancel = new_entry("M-cancel", "2208", at(26, 11, 0, 0));
        cancel.cancels_setl_id = Some("S3".into());
        ledger.begin(cancel.clone()).await.unwrap();
        let mut cancelled = answer(
            State::Done,
            Some("S3"),
            Some(at(26, 11, 0, 1)),
            at(26, 11, 0, 2),
        );
        cancelled.answered.fund_pay_sumamt = yuan("-213.10"); // some platforms send them negative already
        ledger.finish(&cancel.key, cancelled).await.unwrap();
        // Settled today, then reversed by the hospital's own 2601.
        settle(ledger, "M-rev", "S4", at(26, 12, 0, 0), at(26, 12, 0, 1)).await;
        let mut reversal = new_entry("M-2601", "2601", at(26, 12, 5, 0));
        reversal.original_msgid = Some("M-rev".into());
        ledger.begin(reversal.clone()).await.unwrap();
        ledger
            .finish(
                &reversal.key,
                answer(State::Done, None, None, at(26, 12, 5, 1)),
            )
            .await
            .unwrap();
        ledger
            .resolve(
                &Key::new(HOSPITAL, "M-rev"),
                State::Reversed,
                at(26, 12, 5, 2),
            )
            .await
            .unwrap();
        // Timed out (unknown), reversed by the gateway: never learned.
        let lost = new_entry("M-lost", "2304", at(26, 13, 0, 0));
        ledger.begin(lost.clone()).await.unwrap();
        let mut unknown = answer(State::Unknown, None, None, at(26, 13, 0, 8));
        unknown.answered.error_code = Some(5040);
        unknown.reply.status = 504;
        ledger.finish(&lost.key, unknown).await.unwrap();
        ledger
            .resolve(&lost.key, State::Reversed, at(26, 13, 0, 30))
            .await
            .unwrap();
        // No rows: a refused settlement, a pending one, an unknown one, a
        // pre-settlement, a refused cancel, tomorrow's settlement.
        let refused = new_entry("M-refused", "2207", at(26, 14, 0, 0));
        ledger.begin(refused.clone()).await.unwrap();
        let mut no = answer(State::Refused, None, None, at(26, 14, 0, 1));
        no.answered.error_code = Some(2001);
        ledger.finish(&refused.key, no).await.unwrap();
        ledger
            .begin(new_entry("M-pending", "2102", at(26, 15, 0, 0)))
            .await
            .unwrap();
        let open = new_entry("M-unknown", "2207", at(26, 15, 30, 0));
        ledger.begin(open.clone()).await.unwrap();
        ledger
            .finish(
                &open.key,
                answer(State::Unknown, None, None, at(26, 15, 30, 8)),
            )
            .await
            .unwrap();
        let pre = new_entry("M-pre", "2206", at(26, 16, 0, 0));
        ledger.begin(pre.clone()).await.unwrap();
        ledger
            .finish(
                &pre.key,
                answer(
                    State::Done,
                    Some("S-pre"),
                    Some(at(26, 16, 0, 1)),
                    at(26, 16, 0, 2),
                ),
            )
            .await
            .unwrap();
        let mut bad_cancel = new_entry("M-cancel-refused", "2208", at(26, 17, 0, 0));
        bad_cancel.cancels_setl_id = Some("S1".into());
        ledger.begin(bad_cancel.clone()).await.unwrap();
        ledger
            .finish(
                &bad_cancel.key,
                answer(State::Refused, None, None, at(26, 17, 0, 1)),
            )
            .await
            .unwrap();
        settle(
            ledger,
            "M-tomorrow",
            "S5",
            at(26, 23, 59, 59),
            at(27, 0, 0, 0),
        )
        .await;
        // Left pending by a crash and found to have taken effect: settled, figures unknown.
        let confirmed = new_entry("M-confirmed", "2102", at(26, 18, 0, 0));
        ledger.begin(confirmed.clone()).await.unwrap();
        ledger
            .resolve(&confirmed.key, State::Confirmed, at(26, 18, 1, 0))
            .await
            .unwrap();

        let rows = day_rows(ledger, day).await.unwrap();
        let text = csv(&rows);
        let expected = [
            "S2,M-midnight,,MDTRT1,H11010500123,130600,110000,310,11,11,2026-11-26 00:00:01,356.80,213.10,143.70,0.00,settled",
            "S1,M-settle,,MDTRT1,H11010500123,130600,110000,310,11,11,2026-11-26 09:30:00,356.80,213.10,143.70,0.00,settled",
            "S3,M-cancel,M-yesterday,MDTRT1,H11010500123,130600,110000,310,11,11,2026-11-26 11:00:01,-356.80,-213.10,-143.70,0.00,cancelled",
            "S4,M-rev,,MDTRT1,H11010500123,130600,110000,310,11,11,2026-11-26 12:00:01,356.80,213.10,143.70,0.00,settled",
            "S4,M-2601,M-rev,MDTRT1,H11010500123,130600,110000,310,11,11,2026-11-26 12:05:02,-356.80,-213.10,-143.70,0.00,reversed",
            ",M-lost,,,H11010500123,130600,110000,,,,2026-11-26 13:00:00,,,,,settled",
            ",,M-lost,,H11010500123,130600,110000,,,,2026-11-26 13:00:30,,,,,reversed",
            ",M-confirmed,,,H11010500123,130600,110000,,,,2026-11-26 18:00:00,,,,,settled",
        ];
        assert_eq!(text, format!("{HEADER}{}\n", expected.join("\n")));
        // The journal keeps the person number for the gateway's reversals;
        // the statement shows none, in either format.
        assert!(!text.contains(PERSON));
        assert!(rows.iter().all(|row| !row_json(row).contains(PERSON)));

        // The rows read back through the statement reader as they are.
        let mut reader = contracts::statement::Reader::new(text.as_bytes()).unwrap();
        let mut back = Vec::new();
        while let Some(row) = reader.next_row().unwrap() {
            back.push(row);
        }
        assert_eq!(back, rows);

        // The day before holds the settlement of the 25th, and not the one
        // received on the 25th but settled on the 26th.
        let before = day_rows(ledger, Date::from_ymd(2026, 11, 25).unwrap())
            .await
            .unwrap();
        let msgids: Vec<_> = before.iter().map(|r| r.msgid.clone().unwrap()).collect();
        assert_eq!(msgids, ["M-yesterday"]);
        // The day after: the settlement at 00:00:00 sharp.
        let after = day_rows(ledger, Date::from_ymd(2026, 11, 27).unwrap())
            .await
            .unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].setl_id.as_deref(), Some("S5"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_day_sums_to_its_net_effect_and_a_reversal_after_midnight_adjusts_the_next_day() {
        let db = TempLedger::new("adjust").await;
        let ledger = &db.ledger;
        settle(ledger, "M-a", "SA", at(26, 23, 0, 0), at(26, 23, 0, 1)).await;
        // The hospital's 2601 arrives at 23:59:59; the platform acknowledges it
        // and the settlement is resolved reversed at 00:00:00.5 — the next day.
        let mut reversal = new_entry("M-a-2601", "2601", at(26, 23, 59, 59));
        reversal.original_msgid = Some("M-a".into());
        ledger.begin(reversal.clone()).await.unwrap();
        ledger
            .finish(
                &reversal.key,
                answer(State::Done, None, None, at(27, 0, 0, 0)),
            )
            .await
            .unwrap();
        ledger
            .resolve(
                &Key::new(HOSPITAL, "M-a"),
                State::Reversed,
                at(27, 0, 0, 0) + 500,
            )
            .await
            .unwrap();
        let day = day_rows(ledger, Date::from_ymd(2026, 11, 26).unwrap())
            .await
            .unwrap();
        assert_eq!(day.len(), 1);
        assert_eq!(day[0].state, RowState::Settled);
        let next = day_rows(ledger, Date::from_ymd(2026, 11, 27).unwrap())
            .await
            .unwrap();
        assert_eq!(next.len(), 1);
        let reversed = &next[0];
        assert_eq!(reversed.state, RowState::Reversed);
        // The hospital's 2601 was received the day before: still found.
        assert_eq!(reversed.msgid.as_deref(), Some("M-a-2601"));
        assert_eq!(reversed.omsgid.as_deref(), Some("M-a"));
        assert_eq!(reversed.setl_time.to_string(), "2026-11-27 00:00:00");
        // Settled plus reversed is zero, to the fen.
        let sum = Money::sum(day.iter().chain(&next).map(|r| r.fund_pay_sumamt.unwrap())).unwrap();
        assert_eq!(sum, Money::ZERO);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_row_that_comes_after_its_day_was_closed_goes_to_the_next_open_day() {
        let db = TempLedger::new("late").await;
        let ledger = &db.ledger;
        let (d26, d27, d28) = (
            Date::from_ymd(2026, 11, 26).unwrap(),
            Date::from_ymd(2026, 11, 27).unwrap(),
            Date::from_ymd(2026, 11, 28).unwrap(),
        );
        // Settled on the 26th before its close (at 02:00 on the 27th).
        settle(
            ledger,
            "M-on-time",
            "S1",
            at(26, 10, 0, 0),
            at(26, 10, 0, 1),
        )
        .await;
        // Answered with a setl_time on the 26th, but only at 03:00 on the 27th.
        let late = new_entry("M-late", "2207", at(26, 23, 59, 50));
        ledger.begin(late.clone()).await.unwrap();
        ledger
            .finish(
                &late.key,
                answer(
                    State::Done,
                    Some("S2"),
                    Some(at(26, 23, 59, 55)),
                    at(27, 3, 0, 0),
                ),
            )
            .await
            .unwrap();
        // An outcome unknown at the close, resolved confirmed on the 28th.
        let unknown = new_entry("M-unknown", "2207", at(26, 12, 0, 0));
        ledger.begin(unknown.clone()).await.unwrap();
        let mut lost = answer(State::Unknown, None, None, at(26, 12, 0, 30));
        lost.reply.status = 504;
        ledger.finish(&unknown.key, lost).await.unwrap();
        ledger
            .resolve(&unknown.key, State::Confirmed, at(28, 9, 0, 0))
            .await
            .unwrap();
        let msgids =
            |rows: Vec<Row>| -> Vec<String> { rows.into_iter().filter_map(|r| r.msgid).collect() };
        // Before any close, every row is on its own day.
        assert_eq!(
            msgids(day_rows(ledger, d26).await.unwrap()),
            ["M-on-time", "M-unknown", "M-late"]
        );
        // Closing the 26th at 02:00 on the 27th, as the close reads it.
        let closing = at(27, 2, 0, 0);
        assert_eq!(
            msgids(closing_rows(ledger, d26, closing).await.unwrap()),
            ["M-on-time"]
        );
        ledger
            .close_day(ledger::ClosedDay {
                day: d26.to_string(),
                closed_by: "O0001".into(),
                closed_at_ms: closing,
                digest: "ab".repeat(32),
                report: "{}".into(),
            })
            .await
            .unwrap();
        // The closed day keeps what it was closed with; each late row goes
        // to the day it came on, with its own setl_time.
        assert_eq!(msgids(day_rows(ledger, d26).await.unwrap()), ["M-on-time"]);
        let d27_rows = day_rows(ledger, d27).await.unwrap();
        assert_eq!(d27_rows.len(), 1);
        assert_eq!(d27_rows[0].msgid.as_deref(), Some("M-late"));
        assert_eq!(d27_rows[0].setl_time.to_string(), "2026-11-26 23:59:55");
        assert_eq!(msgids(day_rows(ledger, d28).await.unwrap()), ["M-unknown"]);
    }

    #[test]
    fn a_late_row_skips_days_closed_before_it_came() {
        let (d26, d27, d28) = (
            Date::from_ymd(2026, 11, 26).unwrap(),
            Date::from_ymd(2026, 11, 27).unwrap(),
            Date::from_ymd(2026, 11, 28).unwrap(),
        );
        // A row of 09:00 on the 26th, by when it came.
        let day_of =
            |closed: &HashMap<Date, i64>, came: i64| row_day(at(26, 9, 0, 0), came, closed);
        let mut closed = HashMap::new();
        assert_eq!(day_of(&closed, at(28, 1, 0, 0)), Some(d26));
        closed.insert(d26, at(27, 2, 0, 0));
        // Came before the close: its own day.
        assert_eq!(day_of(&closed, at(27, 1, 0, 0)), Some(d26));
        // Came after: the day it came on, or the next open one.
        assert_eq!(day_of(&closed, at(27, 3, 0, 0)), Some(d27));
        assert_eq!(day_of(&closed, at(28, 1, 0, 0)), Some(d28));
        // The 27th closed early, at 23:00 that day: a row of the 26th coming
        // at 23:30 on the 27th goes to the 28th.
        closed.insert(d27, at(27, 23, 0, 0));
        assert_eq!(day_of(&closed, at(27, 23, 30, 0)), Some(d28));
        assert_eq!(day_of(&closed, at(27, 22, 0, 0)), Some(d27));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancel_without_amounts_takes_the_settlements_negated() {
        let db = TempLedger::new("cancel").await;
        let ledger = &db.ledger;
        settle(ledger, "M-s", "SX", at(26, 8, 0, 0), at(26, 8, 0, 1)).await;
        let mut cancel = new_entry("M-c", "2305", at(26, 9, 0, 0));
        cancel.cancels_setl_id = Some("SX".into());
        ledger.begin(cancel.clone()).await.unwrap();
        ledger
            .finish(
                &cancel.key,
                answer(State::Done, None, None, at(26, 9, 0, 1)),
            )
            .await
            .unwrap();
        // A cancel of a settlement the ledger never saw: no omsgid.
        let mut stray = new_entry("M-stray", "2208", at(26, 9, 30, 0));
        stray.cancels_setl_id = Some("UNSEEN".into());
        ledger.begin(stray.clone()).await.unwrap();
        ledger
            .finish(
                &stray.key,
                answer(State::Done, None, Some(at(26, 9, 30, 2)), at(26, 9, 30, 3)),
            )
            .await
            .unwrap();
        let rows = day_rows(ledger, Date::from_ymd(2026, 11, 26).unwrap())
            .await
            .unwrap();
        let text = csv(&rows);
        assert!(
            text.contains("SX,M-c,M-s,MDTRT1,H11010500123,130600,110000,310,11,11,2026-11-26 09:00:01,-356.80,-213.10,-143.70,0.00,cancelled\n"),
            "{text}"
        );
        assert!(
            text.contains("UNSEEN,M-stray,,,H11010500123,130600,110000,,,,2026-11-26 09:30:02,,,,,cancelled\n"),
            "{text}"
        );
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn jsonl_has_the_columns_as_keys_amounts_as_strings_and_null_for_empty() {
        let row = Row {
            setl_id: None,
            msgid: Some("M\"1\\".into()),
            omsgid: Some("O1".into()),
            mdtrt_id: None,
            fixmedins_code: HOSPITAL.into(),
            insuplc_admdvs: Admdvs::parse("130600").unwrap(),
            mdtrtarea_admvs: Admdvs::parse("110000").unwrap(),
            insutype: Some("310".into()),
            med_type: None,
            clr_type: None,
            setl_time: DateTime::from_civil(2026, 11, 26, 9, 30, 0, 0).unwrap(),
            medfee_sumamt: yuan("-12.3"),
            fund_pay_sumamt: yuan("0"),
            acct_pay: None,
            psn_cash_pay: None,
            state: RowState::Reversed,
        };
        assert_eq!(
            row_json(&row),
            "{\"setl_id\":null,\"msgid\":\"M\\\"1\\\\\",\"omsgid\":\"O1\",\"mdtrt_id\":null,\
             \"fixmedins_code\":\"H11010500123\",\"insuplc_admdvs\":\"130600\",\
             \"mdtrtarea_admvs\":\"110000\",\"insutype\":\"310\",\"med_type\":null,\
             \"clr_type\":null,\"setl_time\":\"2026-11-26 09:30:00\",\
             \"medfee_sumamt\":\"-12.30\",\"fund_pay_sumamt\":\"0.00\",\"acct_pay\":null,\
             \"psn_cash_pay\":null,\"state\":\"reversed\"}"
        );
        let mut out = String::new();
        json_string(&mut out, "a\u{1}\n\u{2028}");
        assert_eq!(out, "\"a\\u0001\\n\\u2028\"");
    }
}
