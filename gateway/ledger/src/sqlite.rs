//! The embedded backend: one writer thread, WAL, `synchronous=FULL`, and a
//! small pool of read connections.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{params_from_iter, Connection, ErrorCode, OpenFlags, ToSql};
use tokio::sync::oneshot;

use crate::check::{self, Raw};
use crate::ops::{self, Command, Inbox, Op, Outcome, Queue, Val};
use crate::sql::{self, Kind, COLUMNS, REFUSAL_COLUMNS, STATEMENTS};
use crate::{Entry, Key, LedgerError, RecordedRefusal};

/// How long a connection waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest a read may take, queueing for the blocking pool included.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Read connections kept open between reads.
const IDLE_READERS: usize = 4;

impl ToSql for Val<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Val::Text(Some(text)) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Val::Int(Some(number)) => ToSqlOutput::Owned(Value::Integer(*number)),
            Val::Bytes(Some(bytes)) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
            Val::Text(None) | Val::Int(None) | Val::Bytes(None) => ToSqlOutput::Owned(Value::Null),
        })
    }
}

/// An SQLite error as the caller sees it.
fn error(e: rusqlite::Error) -> LedgerError {
    match &e {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::ConstraintViolation | ErrorCode::TooBig => {
                LedgerError::Invalid(format!("sqlite: {e}"))
            }
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                LedgerError::Corrupt(format!("sqlite: {e}"))
            }
            _ => LedgerError::Unavailable(format!("sqlite: {e}")),
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..) => LedgerError::Corrupt(format!("sqlite: {e}")),
        _ => LedgerError::Unavailable(format!("sqlite: {e}")),
    }
}

/// `true` when a failed statement left the transaction usable (SQLite undid
/// just that statement); `false` for I/O, full disk, locks and the like.
fn statement_local(e: &rusqlite::Error) -> bool {
    match e {
        rusqlite::Error::SqliteFailure(failure, _) => matches!(
            failure.code,
            ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch
        ),
        _ => true,
    }
}

/// Reads the current row's `columns` in order; a value of the wrong type
/// becomes [`Raw::Wrong`] (reported as corrupt when decoded).
fn raw_row(row: &rusqlite::Row<'_>, columns: &[(&str, Kind)]) -> rusqlite::Result<Vec<Raw>> {
    let mut values = Vec::with_capacity(columns.len());
    for (index, (_, kind)) in columns.iter().enumerate() {
        let raw = match (kind, row.get_ref(index)?) {
            (Kind::Text, ValueRef::Null) => Raw::Text(None),
            (Kind::Int, ValueRef::Null) => Raw::Int(None),
            (Kind::Bytes, ValueRef::Null) => Raw::Bytes(None),
            (Kind::Text, ValueRef::Text(bytes)) => match std::str::from_utf8(bytes) {
                Ok(text) => Raw::Text(Some(text.to_owned())),
                Err(_) => Raw::Wrong,
            },
            (Kind::Int, ValueRef::Integer(number)) => Raw::Int(Some(number)),
            (Kind::Bytes, ValueRef::Blob(bytes)) => Raw::Bytes(Some(bytes.to_vec())),
            _ => Raw::Wrong,
        };
        values.push(raw);
    }
    Ok(values)
}

/// Runs a SELECT of rows of `columns`, undecoded.
fn select_columns(
    conn: &Connection,
    sql: &str,
    params: &[Val<'_>],
    columns: &[(&str, Kind)],
) -> rusqlite::Result<Vec<Vec<Raw>>> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params_from_iter(params))?;
    let mut raws = Vec::new();
    while let Some(row) = rows.next()? {
        raws.push(raw_row(row, columns)?);
    }
    Ok(raws)
}

/// Runs a SELECT of journal rows, undecoded.
fn select_raw(conn: &Connection, sql: &str, params: &[Val<'_>]) -> rusqlite::Result<Vec<Vec<Raw>>> {
    select_columns(conn, sql, params, COLUMNS)
}

/// Runs a SELECT of journal rows and decodes them.
fn select(conn: &Connection, sql: &str, params: &[Val<'_>]) -> Result<Vec<Entry>, LedgerError> {
    select_raw(conn, sql, params)
        .map_err(error)?
        .into_iter()
        .map(check::entry)
        .collect()
}

/// The SQLite statements, converted once.
struct Sql {
    insert: String,
    finish: String,
    resolve: String,
    attempt: String,
    by_key: String,
    by_setl_id: String,
    unresolved: String,
    day: String,
    touching: String,
    cancels: String,
    insert_refusal: String,
    refusals: String,
    heartbeat: String,
}

static SQL: std::sync::LazyLock<Sql> = std::sync::LazyLock::new(|| Sql {
    insert: sql::for_sqlite(&STATEMENTS.insert.0),
    finish: sql::for_sqlite(&STATEMENTS.finish.0),
    resolve: sql::for_sqlite(&STATEMENTS.resolve.0),
    attempt: sql::for_sqlite(&STATEMENTS.attempt.0),
    by_key: sql::for_sqlite(&STATEMENTS.by_key.0),
    by_setl_id: sql::for_sqlite(&STATEMENTS.by_setl_id.0),
    unresolved: sql::for_sqlite(&STATEMENTS.unresolved.0),
    day: sql::for_sqlite(&STATEMENTS.day.0),
    touching: sql::for_sqlite(&STATEMENTS.touching.0),
    cancels: sql::for_sqlite(&STATEMENTS.cancels.0),
    insert_refusal: sql::for_sqlite(&STATEMENTS.insert_refusal.0),
    refusals: sql::for_sqlite(&STATEMENTS.refusals.0),
    heartbeat: sql::for_sqlite(crate::clearing::HEARTBEAT),
});

/// The SQLite journal.
pub(crate) struct SqliteLedger {
    pub(crate) queue: Queue,
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
}

impl SqliteLedger {
    /// Starts the writer thread (which creates the file and migrates) and waits until it is ready.
    pub(crate) async fn open(path: &str) -> Result<SqliteLedger, LedgerError> {
        if path.is_empty() {
            return Err(LedgerError::Invalid("sqlite:// URL without a path".into()));
        }
        // Absolute, so that the read connections find the same file whatever
        // the working directory becomes.
        let path = std::path::absolute(path)
            .map_err(|e| LedgerError::Invalid(format!("sqlite path {path:?}: {e}")))?;
        let (queue, inbox) = Queue::new();
        let (ready_tx, ready_rx) = oneshot::channel();
        let writer_path = path.clone();
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer(&writer_path, inbox, ready_tx))
            .map_err(|e| {
                LedgerError::Unavailable(format!("cannot start the writer thread: {e}"))
            })?;
        ready_rx.await.map_err(|_| {
            LedgerError::Unavailable("the writer thread stopped while opening".into())
        })??;
        Ok(SqliteLedger {
            queue,
            path,
            readers: Mutex::new(Vec::new()),
        })
    }

    fn checkout(&self) -> Result<Connection, LedgerError> {
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => open_reader(&self.path),
        }
    }

    fn checkin(&self, conn: Connection) {
        let mut pool = self
            .readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.len() < IDLE_READERS {
            pool.push(conn);
        }
    }

    /// Runs `read` on a pooled read connection on the blocking pool.
    async fn read<T, F>(self: &Arc<Self>, read: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, LedgerError> + Send + 'static,
    {
        let this = Arc::clone(self);
        let task = tokio::task::spawn_blocking(move || {
            let conn = this.checkout()?;
            let result = read(&conn);
            this.checkin(conn);
            result
        });
        match tokio::time::timeout(READ_TIMEOUT, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(LedgerError::Unavailable(format!(
                "ledger read failed: {join}"
            ))),
            Err(_) => Err(LedgerError::Unavailable(format!(
                "ledger read took longer than {} ms",
                READ_TIMEOUT.as_millis()
            ))),
        }
    }

    pub(crate) async fn get(self: &Arc<Self>, key: &Key) -> Result<Option<Entry>, LedgerError> {
        let key = key.clone();
        self.read(move |conn| {
            Ok(select(conn, &SQL.by_key, &ops::key_params(&key))?
                .into_iter()
                .next())
        })
        .await
    }

    pub(crate) async fn by_setl_id(
        self: &Arc<Self>,
        setl_id: &str,
    ) -> Result<Option<Entry>, LedgerError> {
        let setl_id = setl_id.to_owned();
        self.read(move |conn| {
            Ok(select(conn, &SQL.by_setl_id, &[Val::Text(Some(&setl_id))])?
                .into_iter()
                .next())
        })
        .await
    }

    pub(crate) async fn unresolved(self: &Arc<Self>) -> Result<Vec<Entry>, LedgerError> {
        self.read(|conn| select(conn, &SQL.unresolved, &[])).await
    }

    pub(crate) async fn day(
        self: &Arc<Self>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Entry>, LedgerError> {
        self.between(&SQL.day, from_ms, to_ms).await
    }

    pub(crate) async fn touching(
        self: &Arc<Self>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Entry>, LedgerError> {
        self.between(&SQL.touching, from_ms, to_ms).await
    }

    /// The entries `sql` selects between two times (Unix milliseconds).
    async fn between(
        self: &Arc<Self>,
        sql: &'static str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Entry>, LedgerError> {
        let times = [Val::Int(Some(from_ms)), Val::Int(Some(to_ms))];
        self.read(move |conn| select(conn, sql, &times)).await
    }

    pub(crate) async fn cancels_of(
        self: &Arc<Self>,
        setl_id: &str,
    ) -> Result<Vec<Entry>, LedgerError> {
        let setl_id = setl_id.to_owned();
        self.read(move |conn| select(conn, &SQL.cancels, &[Val::Text(Some(&setl_id))]))
            .await
    }

    pub(crate) async fn refusals(
        self: &Arc<Self>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<RecordedRefusal>, LedgerError> {
        self.read(move |conn| {
            select_columns(
                conn,
                &SQL.refusals,
                &[Val::Int(Some(from_ms)), Val::Int(Some(to_ms))],
                REFUSAL_COLUMNS,
            )
            .map_err(error)?
            .into_iter()
            .map(check::recorded_refusal)
            .collect()
        })
        .await
    }

    /// Rows of a clearing or supervision table, decoded.
    pub(crate) async fn rows<T: Send + 'static>(
        self: &Arc<Self>,
        select: String,
        args: Vec<ops::Arg>,
        columns: &'static [(&'static str, Kind)],
        decode: fn(Vec<Raw>) -> Result<T, LedgerError>,
    ) -> Result<Vec<T>, LedgerError> {
        self.read(move |conn| {
            let params: Vec<Val<'_>> = args.iter().map(ops::Arg::val).collect();
            select_columns(conn, &sql::for_sqlite(&select), &params, columns)
                .map_err(error)?
                .into_iter()
                .map(decode)
                .collect()
        })
        .await
    }

    pub(crate) async fn ping_reader(self: &Arc<Self>) -> Result<(), LedgerError> {
        self.read(|conn| {
            conn.query_row("SELECT count(*) FROM schema_migrations", [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|_| ())
            .map_err(error)
        })
        .await
    }
}

fn open_reader(path: &Path) -> Result<Connection, LedgerError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(error)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(error)?;
    Ok(conn)
}

fn open_writer(path: &Path) -> Result<Connection, LedgerError> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| {
                LedgerError::Unavailable(format!(
                    "cannot create the ledger folder {}: {e}",
                    parent.display()
                ))
            })?;
        }
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(error)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(LedgerError::Unavailable(format!(
            "sqlite refused WAL mode (journal_mode is {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(error)?;
    let synchronous: i64 = conn
        .query_row("PRAGMA synchronous", [], |row| row.get(0))
        .map_err(error)?;
    if synchronous != 2 {
        return Err(LedgerError::Unavailable(format!(
            "sqlite refused synchronous=FULL (it is {synchronous})"
        )));
    }
    migrate(&conn)?;
    Ok(conn)
}

/// Applies the pending migrations in one `BEGIN IMMEDIATE` transaction (which
/// also serialises two processes opening the same file).
fn migrate(conn: &Connection) -> Result<(), LedgerError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(error)?;
    let result = (|| {
        conn.execute_batch(sql::CREATE_MIGRATIONS_TABLE)
            .map_err(error)?;
        let mut statement = conn.prepare(sql::SELECT_MIGRATIONS).map_err(error)?;
        let applied = statement
            .query_map([], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(error)?;
        drop(statement);
        for migration in sql::pending_migrations(&applied)? {
            conn.execute_batch(migration.sqlite).map_err(error)?;
            conn.execute(
                &sql::for_sqlite(sql::INSERT_MIGRATION),
                rusqlite::params![migration.version, migration.name, sql::now_ms()],
            )
            .map_err(error)?;
            tracing::info!(
                version = migration.version,
                name = migration.name,
                "ledger migration applied (sqlite)"
            );
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").map_err(error),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// The writer thread: open, report readiness, then run batches until every
/// [`Queue`] is dropped.
fn writer(path: &Path, mut inbox: Inbox, ready: oneshot::Sender<Result<(), LedgerError>>) {
    let conn = match open_writer(path) {
        Ok(conn) => {
            let _ = ready.send(Ok(()));
            conn
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    while let Some(first) = inbox.rx.blocking_recv() {
        let batch = inbox.drain(first);
        if !batch.is_empty() {
            run_batch(&conn, batch, &inbox);
        }
    }
    tracing::debug!("ledger writer (sqlite) stopped");
}

/// Runs a batch in one transaction, commits once, then answers every caller.
/// A statement error that SQLite confines to the statement (a constraint)
/// fails only its command; anything else (full disk, I/O, lock timeout) rolls
/// the whole batch back and fails every command.
fn run_batch(conn: &Connection, batch: Vec<Command>, inbox: &Inbox) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let e = error(e);
        tracing::warn!(error = %e, "ledger batch could not begin (sqlite)");
        ops::fail_all(batch, &e);
        return;
    }
    let mut results = Vec::with_capacity(batch.len());
    for command in &batch {
        match apply(conn, &command.op) {
            Ok(result) => results.push(result),
            Err(e) if statement_local(&e) && !conn.is_autocommit() => results.push(Err(error(e))),
            Err(e) => {
                let e = error(e);
                tracing::warn!(error = %e, commands = batch.len(), "ledger batch rolled back (sqlite)");
                rollback(conn);
                ops::fail_all(batch, &e);
                return;
            }
        }
    }
    if let Err(e) = conn.execute_batch("COMMIT") {
        let e = error(e);
        tracing::warn!(error = %e, commands = batch.len(), "ledger batch failed to commit (sqlite)");
        rollback(conn);
        ops::fail_all(batch, &e);
        return;
    }
    inbox.committed(&batch);
    for (command, result) in batch.into_iter().zip(results) {
        command.answer(result);
    }
}

fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::warn!(error = %e, "ledger rollback failed (sqlite)");
        }
    }
}

/// Runs one command's statements inside the batch transaction. The outer
/// error is SQLite's; the inner result is the command's answer.
fn apply(conn: &Connection, op: &Op) -> rusqlite::Result<Result<Outcome, LedgerError>> {
    let changed = match op {
        Op::Begin(entry) => conn
            .prepare_cached(&SQL.insert)?
            .execute(params_from_iter(ops::insert_params(entry)))?,
        Op::Finish(key, row) => {
            let changed = conn
                .prepare_cached(&SQL.finish)?
                .execute(params_from_iter(ops::finish_params(key, row)))?;
            if changed == 1 {
                for write in &row.feed {
                    supervise(conn, write)?;
                }
            }
            changed
        }
        Op::Resolve(key, state, at_ms) => conn
            .prepare_cached(&SQL.resolve)?
            .execute(params_from_iter(ops::resolve_params(key, *state, *at_ms)))?,
        Op::Attempt(key) => {
            let mut statement = conn.prepare_cached(&SQL.attempt)?;
            let mut rows = statement.query(params_from_iter(ops::key_params(key)))?;
            match rows.next()? {
                Some(row) => return Ok(ops::attempts(row.get::<_, i64>(0)?)),
                None => 0,
            }
        }
        Op::Refuse(recorded) => {
            conn.prepare_cached(&SQL.insert_refusal)?
                .execute(params_from_iter(ops::refusal_params(recorded)))?;
            // Inserted, or already there under the same id: either way it is journalled.
            return Ok(Ok(Outcome::Unit));
        }
        Op::Ping(at_ms) => {
            conn.prepare_cached(&SQL.heartbeat)?.execute([at_ms])?;
            return Ok(Ok(Outcome::Unit));
        }
        Op::Supervision(write) => {
            supervise(conn, write)?;
            return Ok(Ok(Outcome::Unit));
        }
        Op::Clearing(write) => {
            let (sql, params) = write.sql_and_params();
            let changed = conn
                .prepare_cached(&sql::for_sqlite(sql))?
                .execute(params_from_iter(params))?;
            return Ok(if changed == 1 {
                Ok(Outcome::Unit)
            } else {
                Err(write.refused())
            });
        }
    };
    if changed == 1 {
        return Ok(Ok(match op {
            Op::Begin(_) => Outcome::Begin(crate::Begin::Fresh),
            _ => Outcome::Unit,
        }));
    }
    let Some(key) = op.key() else {
        return Ok(Ok(Outcome::Unit));
    };
    let existing = select_raw(conn, &SQL.by_key, &ops::key_params(key))?
        .into_iter()
        .next()
        .map(check::entry);
    Ok(ops::after_miss(op, existing))
}

/// Runs one supervision write inside the batch transaction.
fn supervise(conn: &Connection, write: &crate::supervision::Write) -> rusqlite::Result<usize> {
    let (sql, params) = write.sql_and_params();
    conn.prepare_cached(&sql::for_sqlite(sql))?
        .execute(params_from_iter(params))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// The plan SQLite chose for `sql`, one detail line per step (every
    /// parameter bound, as the ledger binds them).
    fn plan(conn: &Connection, sql: &str) -> Vec<String> {
        let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let params = vec![Value::Integer(1); statement.parameter_count()];
        statement
            .query_map(params_from_iter(params), |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Migration 6 made the journal's secondary indexes partial. A partial
    /// index serves a query only when the planner can prove the query's rows
    /// are in it; were it not so, recovery, a settlement's page and a
    /// clearing day would scan the whole journal. Each read names its index.
    #[test]
    fn every_journal_read_finds_its_rows_through_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("ledger.db")).unwrap();
        let expected: [(&str, &str, &[&str]); 6] = [
            ("by_key", &SQL.by_key, &["sqlite_autoindex_journal_1"]),
            ("by_setl_id", &SQL.by_setl_id, &["journal_setl_id"]),
            ("unresolved", &SQL.unresolved, &["journal_unresolved"]),
            ("day", &SQL.day, &["journal_received_at_ms"]),
            (
                "touching",
                &SQL.touching,
                &[
                    "journal_received_at_ms",
                    "journal_setl_time_ms",
                    "journal_resolved_at_ms",
                ],
            ),
            ("cancels", &SQL.cancels, &["journal_cancels_setl_id"]),
        ];
        for (name, sql, indexes) in expected {
            let steps = plan(&conn, sql);
            let scans: Vec<&String> = steps
                .iter()
                .filter(|s| s.starts_with("SCAN journal") && !s.contains("INDEX"))
                .collect();
            assert!(scans.is_empty(), "{name} scans the journal: {steps:?}");
            for index in indexes {
                assert!(
                    steps.iter().any(|s| s.contains(&format!("INDEX {index} "))
                        || s.ends_with(&format!("INDEX {index}"))),
                    "{name} does not use {index}: {steps:?}"
                );
            }
        }
    }
}
