//! The shared backend: a writer task owning one client (a batch is one
//! transaction of pipelined statements), a second client for reads, bounded
//! waits everywhere, reconnection on the next call after a loss.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_postgres::config::SslMode;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Row, Statement};

use crate::check::{self, Raw};
use crate::ops::{self, Command, Inbox, Op, Outcome, Queue, Val};
use crate::sql::{self, Kind, COLUMNS, REFUSAL_COLUMNS, STATEMENTS};
use crate::{Begin, Entry, Key, LedgerError, RecordedRefusal};

/// Connecting (TCP, startup, session settings, preparing the statements).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One batch transaction, or one read.
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// Opening: migrations may wait for another process's advisory lock.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(30);
/// The advisory lock that serialises migrations ("jjj_ledg").
const MIGRATION_LOCK: i64 = 0x6a6a_6a5f_6c65_6467;
/// Server-side limits matching the client-side ones.
const SESSION: &str = "SET statement_timeout = 2000; SET lock_timeout = 2000; \
                       SET idle_in_transaction_session_timeout = 10000";
const MIGRATION_SESSION: &str = "SET statement_timeout = 30000; SET lock_timeout = 30000";

/// A PostgreSQL error as the caller sees it.
fn error(e: &tokio_postgres::Error) -> LedgerError {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let message = format!("postgres {code}: {}", db.message());
            if code.starts_with("22") || code.starts_with("23") {
                LedgerError::Invalid(message)
            } else if code == "XX001" || code == "XX002" {
                LedgerError::Corrupt(message)
            } else {
                LedgerError::Unavailable(message)
            }
        }
        None => LedgerError::Unavailable(format!("postgres: {e}")),
    }
}

/// `true` when the connection cannot be trusted any more.
fn connection_lost(e: &tokio_postgres::Error) -> bool {
    e.is_closed() || e.as_db_error().is_none()
}

fn timed_out(what: &str, limit: Duration) -> LedgerError {
    LedgerError::Unavailable(format!(
        "postgres: {what} took longer than {} ms",
        limit.as_millis()
    ))
}

fn refs<'a>(params: &'a [Val<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params
        .iter()
        .map(|value| match value {
            Val::Text(text) => text as &(dyn ToSql + Sync),
            Val::Int(number) => number as &(dyn ToSql + Sync),
            Val::Bytes(bytes) => bytes as &(dyn ToSql + Sync),
        })
        .collect()
}

/// Reads a journal row's columns in [`COLUMNS`] order; a value of the wrong
/// type becomes [`Raw::Wrong`].
fn raw_row(row: &Row) -> Vec<Raw> {
    raw_columns(row, COLUMNS)
}

/// Reads a row's `columns` in order; a value of the wrong type becomes [`Raw::Wrong`].
fn raw_columns(row: &Row, columns: &[(&str, Kind)]) -> Vec<Raw> {
    columns
        .iter()
        .enumerate()
        .map(|(index, (_, kind))| match kind {
            Kind::Text => row
                .try_get::<_, Option<String>>(index)
                .map_or(Raw::Wrong, Raw::Text),
            Kind::Int => row
                .try_get::<_, Option<i64>>(index)
                .map_or(Raw::Wrong, Raw::Int),
            Kind::Bytes => row
                .try_get::<_, Option<Vec<u8>>>(index)
                .map_or(Raw::Wrong, Raw::Bytes),
        })
        .collect()
}

/// The statements prepared on one connection.
struct Prepared {
    insert: Statement,
    finish: Statement,
    resolve: Statement,
    attempt: Statement,
    by_key: Statement,
    by_setl_id: Statement,
    unresolved: Statement,
    day: Statement,
    touching: Statement,
    cancels: Statement,
    insert_refusal: Statement,
    refusals: Statement,
}

/// One connection: its client, its prepared statements, the task driving it.
struct PgConn {
    client: Client,
    prepared: Prepared,
    task: JoinHandle<()>,
}

impl Drop for PgConn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects and applies the session settings (`setup`); makes sure
/// `synchronous_commit` is not off.
async fn connect_raw(
    config: &Config,
    setup: &str,
) -> Result<(Client, JoinHandle<()>), LedgerError> {
    let (client, connection) = match timeout(CONNECT_TIMEOUT, config.connect(NoTls)).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(error(&e)),
        Err(_) => return Err(timed_out("connecting", CONNECT_TIMEOUT)),
    };
    let task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "ledger postgres connection ended");
        }
    });
    let settle = async {
        client.batch_execute(setup).await?;
        let row = client
            .query_one("SELECT current_setting('synchronous_commit')", &[])
            .await?;
        let synchronous: String = row.try_get(0)?;
        if synchronous == "off" {
            tracing::warn!("synchronous_commit is off on the ledger database; the ledger turns it on for its sessions");
            client.batch_execute("SET synchronous_commit = on").await?;
        }
        Ok::<(), tokio_postgres::Error>(())
    };
    match timeout(OP_TIMEOUT, settle).await {
        Ok(Ok(())) => Ok((client, task)),
        Ok(Err(e)) => {
            task.abort();
            Err(error(&e))
        }
        Err(_) => {
            task.abort();
            Err(timed_out("setting up the session", OP_TIMEOUT))
        }
    }
}

/// Connects and prepares every statement (pipelined).
async fn connect(config: &Config) -> Result<PgConn, LedgerError> {
    let (client, task) = connect_raw(config, SESSION).await?;
    let typed: Vec<(&str, Vec<Type>)> = STATEMENTS
        .all()
        .iter()
        .map(|(sql, kinds)| {
            let types = kinds
                .iter()
                .map(|kind| match kind {
                    Kind::Text => Type::TEXT,
                    Kind::Int => Type::INT8,
                    Kind::Bytes => Type::BYTEA,
                })
                .collect();
            (sql.as_str(), types)
        })
        .collect();
    let preparing = join_all(
        typed
            .iter()
            .map(|(sql, types)| client.prepare_typed(sql, types)),
    );
    let prepared = match timeout(OP_TIMEOUT, preparing).await {
        Ok(results) => results,
        Err(_) => {
            task.abort();
            return Err(timed_out("preparing statements", OP_TIMEOUT));
        }
    };
    let mut statements = Vec::with_capacity(prepared.len());
    for result in prepared {
        match result {
            Ok(statement) => statements.push(statement),
            Err(e) => {
                task.abort();
                return Err(error(&e));
            }
        }
    }
    let mut it = statements.into_iter();
    let mut next = || {
        it.next().ok_or_else(|| {
            LedgerError::Unavailable("internal: a statement was not prepared".into())
        })
    };
    let prepared = Prepared {
        insert: next()?,
        finish: next()?,
        resolve: next()?,
        attempt: next()?,
        by_key: next()?,
        by_setl_id: next()?,
        unresolved: next()?,
        day: next()?,
        touching: next()?,
        cancels: next()?,
        insert_refusal: next()?,
        refusals: next()?,
    };
    Ok(PgConn {
        client,
        prepared,
        task,
    })
}

/// Applies pending migrations under a transaction-scoped advisory lock, so
/// that two processes opening at once migrate one after the other.
async fn migrate(config: &Config) -> Result<(), LedgerError> {
    let (client, task) = connect_raw(config, MIGRATION_SESSION).await?;
    let result = match timeout(MIGRATION_TIMEOUT, migrate_on(&client)).await {
        Ok(result) => result,
        Err(_) => Err(timed_out("migrating", MIGRATION_TIMEOUT)),
    };
    // Dropping the client ends the session; an unfinished transaction is rolled back.
    drop(client);
    if timeout(Duration::from_secs(1), task).await.is_err() {
        tracing::debug!("ledger migration connection did not close within 1 s");
    }
    result
}

async fn migrate_on(client: &Client) -> Result<(), LedgerError> {
    let pg = |e: tokio_postgres::Error| error(&e);
    client.batch_execute("BEGIN").await.map_err(pg)?;
    client
        .batch_execute(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        .await
        .map_err(pg)?;
    client
        .batch_execute(sql::CREATE_MIGRATIONS_TABLE)
        .await
        .map_err(pg)?;
    let rows = client
        .query(sql::SELECT_MIGRATIONS, &[])
        .await
        .map_err(pg)?;
    let mut applied = Vec::with_capacity(rows.len());
    for row in &rows {
        let version = row.try_get::<_, i64>(0);
        let name = row.try_get::<_, String>(1);
        match (version, name) {
            (Ok(version), Ok(name)) => applied.push((version, name)),
            _ => {
                return Err(LedgerError::Corrupt(
                    "unreadable schema_migrations row".into(),
                ))
            }
        }
    }
    for migration in sql::pending_migrations(&applied)? {
        client.batch_execute(migration.postgres).await.map_err(pg)?;
        client
            .execute(
                sql::INSERT_MIGRATION,
                &[&migration.version, &migration.name, &sql::now_ms()],
            )
            .await
            .map_err(pg)?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "ledger migration applied (postgres)"
        );
    }
    client.batch_execute("COMMIT").await.map_err(pg)?;
    Ok(())
}

/// The PostgreSQL journal.
pub(crate) struct PgLedger {
    pub(crate) queue: Queue,
    config: Config,
    reader: Mutex<Option<Arc<PgConn>>>,
}

/// A read query: a statement prepared at connection, or text built for the
/// call.
#[derive(Clone, Copy)]
enum Query<'s> {
    Prepared(Read),
    Text(&'s str),
}

/// Which read statement.
#[derive(Clone, Copy)]
enum Read {
    ByKey,
    BySetlId,
    Unresolved,
    Day,
    Touching,
    Cancels,
    Refusals,
}

impl Prepared {
    fn read(&self, which: Read) -> &Statement {
        match which {
            Read::ByKey => &self.by_key,
            Read::BySetlId => &self.by_setl_id,
            Read::Unresolved => &self.unresolved,
            Read::Day => &self.day,
            Read::Touching => &self.touching,
            Read::Cancels => &self.cancels,
            Read::Refusals => &self.refusals,
        }
    }
}

impl PgLedger {
    /// Parses the URL, migrates, and starts the writer task.
    pub(crate) async fn open(url: &str) -> Result<PgLedger, LedgerError> {
        let mut config: Config = url
            .parse()
            .map_err(|e| LedgerError::Invalid(format!("postgres URL: {e}")))?;
        if matches!(config.get_ssl_mode(), SslMode::Require) {
            return Err(LedgerError::Invalid(
                "sslmode=require: TLS to PostgreSQL is not supported yet (plain TCP only)".into(),
            ));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("jjj-gateway-ledger");
        }
        migrate(&config).await?;
        let (queue, inbox) = Queue::new();
        tokio::spawn(writer(config.clone(), inbox));
        Ok(PgLedger {
            queue,
            config,
            reader: Mutex::new(None),
        })
    }

    /// The read connection, (re)connected if needed.
    async fn reader(&self) -> Result<Arc<PgConn>, LedgerError> {
        let mut slot = timeout(CONNECT_TIMEOUT + OP_TIMEOUT, self.reader.lock())
            .await
            .map_err(|_| {
                timed_out(
                    "waiting for the read connection",
                    CONNECT_TIMEOUT + OP_TIMEOUT,
                )
            })?;
        if let Some(conn) = slot.as_ref() {
            if !conn.client.is_closed() {
                return Ok(Arc::clone(conn));
            }
        }
        *slot = None;
        let conn = Arc::new(connect(&self.config).await?);
        *slot = Some(Arc::clone(&conn));
        Ok(conn)
    }

    /// Drops the read connection if it is still `conn`.
    async fn forget(&self, conn: &Arc<PgConn>) {
        if let Ok(mut slot) = timeout(CONNECT_TIMEOUT + OP_TIMEOUT, self.reader.lock()).await {
            if slot
                .as_ref()
                .is_some_and(|current| Arc::ptr_eq(current, conn))
            {
                *slot = None;
            }
        }
    }

    async fn select(&self, which: Read, params: &[Val<'_>]) -> Result<Vec<Entry>, LedgerError> {
        self.query(Query::Prepared(which), params)
            .await?
            .iter()
            .map(|row| check::entry(raw_row(row)))
            .collect()
    }

    /// Runs `query` on the read connection within [`OP_TIMEOUT`],
    /// forgetting the connection when it was lost or the read timed out.
    async fn query(&self, query: Query<'_>, params: &[Val<'_>]) -> Result<Vec<Row>, LedgerError> {
        let conn = self.reader().await?;
        let values = refs(params);
        let rows = async {
            match query {
                Query::Prepared(which) => {
                    conn.client.query(conn.prepared.read(which), &values).await
                }
                Query::Text(text) => conn.client.query(text, &values).await,
            }
        };
        match timeout(OP_TIMEOUT, rows).await {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(e)) => {
                if connection_lost(&e) {
                    self.forget(&conn).await;
                }
                Err(error(&e))
            }
            Err(_) => {
                self.forget(&conn).await;
                Err(timed_out("a read", OP_TIMEOUT))
            }
        }
    }

    pub(crate) async fn get(&self, key: &Key) -> Result<Option<Entry>, LedgerError> {
        Ok(self
            .select(Read::ByKey, &ops::key_params(key))
            .await?
            .into_iter()
            .next())
    }

    pub(crate) async fn by_setl_id(&self, setl_id: &str) -> Result<Option<Entry>, LedgerError> {
        Ok(self
            .select(Read::BySetlId, &[Val::Text(Some(setl_id))])
            .await?
            .into_iter()
            .next())
    }

    pub(crate) async fn unresolved(&self) -> Result<Vec<Entry>, LedgerError> {
        self.select(Read::Unresolved, &[]).await
    }

    pub(crate) async fn day(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Entry>, LedgerError> {
        self.select(Read::Day, &[Val::Int(Some(from_ms)), Val::Int(Some(to_ms))])
            .await
    }

    pub(crate) async fn touching(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Entry>, LedgerError> {
        self.select(
            Read::Touching,
            &[Val::Int(Some(from_ms)), Val::Int(Some(to_ms))],
        )
        .await
    }

    pub(crate) async fn cancels_of(&self, setl_id: &str) -> Result<Vec<Entry>, LedgerError> {
        self.select(Read::Cancels, &[Val::Text(Some(setl_id))])
            .await
    }

    pub(crate) async fn refusals(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<RecordedRefusal>, LedgerError> {
        self.query(
            Query::Prepared(Read::Refusals),
            &[Val::Int(Some(from_ms)), Val::Int(Some(to_ms))],
        )
        .await?
        .iter()
        .map(|row| check::recorded_refusal(raw_columns(row, REFUSAL_COLUMNS)))
        .collect()
    }

    /// Rows of a clearing or supervision table, decoded.
    pub(crate) async fn rows<T>(
        &self,
        select: String,
        args: Vec<ops::Arg>,
        columns: &'static [(&'static str, Kind)],
        decode: fn(Vec<Raw>) -> Result<T, LedgerError>,
    ) -> Result<Vec<T>, LedgerError> {
        let params: Vec<Val<'_>> = args.iter().map(ops::Arg::val).collect();
        let rows = self.query(Query::Text(&select), &params).await?;
        rows.iter()
            .map(|row| decode(raw_columns(row, columns)))
            .collect()
    }

    pub(crate) async fn ping_reader(&self) -> Result<(), LedgerError> {
        let conn = self.reader().await?;
        match timeout(OP_TIMEOUT, conn.client.batch_execute("SELECT 1")).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                if connection_lost(&e) {
                    self.forget(&conn).await;
                }
                Err(error(&e))
            }
            Err(_) => {
                self.forget(&conn).await;
                Err(timed_out("a ping", OP_TIMEOUT))
            }
        }
    }
}

/// The writer task: (re)connect when needed, run batches until every
/// [`Queue`] is dropped.
async fn writer(config: Config, mut inbox: Inbox) {
    let mut conn: Option<PgConn> = None;
    while let Some(first) = inbox.rx.recv().await {
        let mut batch = inbox.drain(first);
        if batch.is_empty() {
            continue;
        }
        let live = match conn.take() {
            Some(current) if !current.client.is_closed() => Ok(current),
            _ => connect(&config).await,
        };
        let current = match live {
            Ok(current) => current,
            Err(e) => {
                tracing::warn!(error = %e, "ledger writer cannot connect (postgres)");
                ops::fail_all(batch, &e);
                continue;
            }
        };
        // Key order: two writers' transactions then take row locks in the same
        // order and cannot deadlock each other.
        batch.sort_by(|a, b| a.op.key().cmp(&b.op.key()));
        if run(&current, batch, &inbox).await {
            conn = Some(current);
        }
    }
    tracing::debug!("ledger writer (postgres) stopped");
}

/// Runs a batch as one transaction and answers every caller; if the database
/// refused the batch (not a lost connection), retries its commands one by one
/// so that one bad command does not fail the others. Returns whether the
/// connection is still usable.
async fn run(conn: &PgConn, batch: Vec<Command>, inbox: &Inbox) -> bool {
    let ops: Vec<&Op> = batch.iter().map(|command| &command.op).collect();
    match timeout(OP_TIMEOUT, transaction(conn, &ops)).await {
        Ok(Ok(results)) => {
            inbox.committed(&batch);
            for (command, result) in batch.into_iter().zip(results) {
                command.answer(result);
            }
            true
        }
        Ok(Err(e)) if !connection_lost(&e) => {
            tracing::warn!(error = %error(&e), commands = batch.len(), "ledger batch rolled back (postgres); retrying its commands one by one");
            let mut commands = batch.into_iter();
            while let Some(command) = commands.next() {
                let failure = match timeout(OP_TIMEOUT, transaction(conn, &[&command.op])).await {
                    Ok(Ok(mut results)) => {
                        inbox.committed(std::slice::from_ref(&command));
                        command.answer(results.pop().unwrap_or_else(|| {
                            Err(LedgerError::Unavailable("internal: no result".into()))
                        }));
                        continue;
                    }
                    Ok(Err(e)) if !connection_lost(&e) => {
                        command.answer(Err(error(&e)));
                        continue;
                    }
                    Ok(Err(e)) => error(&e),
                    Err(_) => timed_out("a transaction", OP_TIMEOUT),
                };
                command.answer(Err(failure.clone()));
                ops::fail_all(commands.collect(), &failure);
                return false;
            }
            true
        }
        Ok(Err(e)) => {
            let e = error(&e);
            tracing::warn!(error = %e, "ledger connection lost (postgres)");
            ops::fail_all(batch, &e);
            false
        }
        Err(_) => {
            let e = timed_out("a batch", OP_TIMEOUT);
            tracing::warn!(error = %e, commands = batch.len(), "ledger batch abandoned (postgres)");
            ops::fail_all(batch, &e);
            false
        }
    }
}

/// What the first statement of a command decided.
#[allow(clippy::large_enum_variant)] // short-lived, one per command of a batch
enum Step {
    Answer(Result<Outcome, LedgerError>),
    /// The statement touched no row: look at what is there.
    Lookup,
}

type Answers = Vec<Result<Outcome, LedgerError>>;

/// One transaction: BEGIN, every command's statement pipelined, the lookups
/// some of them need (pipelined), COMMIT. On error the transaction is rolled back.
async fn transaction(conn: &PgConn, ops: &[&Op]) -> Result<Answers, tokio_postgres::Error> {
    conn.client.batch_execute("BEGIN").await?;
    let result = async {
        let mut steps = Vec::with_capacity(ops.len());
        for step in join_all(ops.iter().map(|op| first_statement(conn, op))).await {
            steps.push(step?);
        }
        let mut answers = Vec::with_capacity(ops.len());
        for answer in join_all(
            ops.iter()
                .zip(steps)
                .map(|(op, step)| lookup(conn, op, step)),
        )
        .await
        {
            answers.push(answer?);
        }
        conn.client.batch_execute("COMMIT").await?;
        Ok(answers)
    }
    .await;
    if result.is_err() && !conn.client.is_closed() {
        let _ = conn.client.batch_execute("ROLLBACK").await;
    }
    result
}

async fn execute(
    conn: &PgConn,
    statement: &Statement,
    params: &[Val<'_>],
) -> Result<u64, tokio_postgres::Error> {
    conn.client.execute(statement, &refs(params)).await
}

async fn first_statement(conn: &PgConn, op: &Op) -> Result<Step, tokio_postgres::Error> {
    let prepared = &conn.prepared;
    let changed = match op {
        Op::Begin(entry) => execute(conn, &prepared.insert, &ops::insert_params(entry)).await?,
        Op::Finish(key, row) => {
            let changed = execute(conn, &prepared.finish, &ops::finish_params(key, row)).await?;
            if changed == 1 {
                for write in &row.feed {
                    supervise(conn, write).await?;
                }
            }
            changed
        }
        Op::Resolve(key, state, at_ms) => {
            execute(
                conn,
                &prepared.resolve,
                &ops::resolve_params(key, *state, *at_ms),
            )
            .await?
        }
        Op::Attempt(key) => {
            let params = ops::key_params(key);
            let row = conn
                .client
                .query_opt(&prepared.attempt, &refs(&params))
                .await?;
            return Ok(match row {
                Some(row) => Step::Answer(match row.try_get::<_, i64>(0) {
                    Ok(count) => ops::attempts(count),
                    Err(e) => Err(LedgerError::Corrupt(format!("attempts: {e}"))),
                }),
                None => Step::Lookup,
            });
        }
        Op::Refuse(recorded) => {
            // Inserted, or already there under the same id: either way it is journalled.
            execute(
                conn,
                &prepared.insert_refusal,
                &ops::refusal_params(recorded),
            )
            .await?;
            return Ok(Step::Answer(Ok(Outcome::Unit)));
        }
        Op::Ping(at_ms) => {
            conn.client
                .execute(crate::clearing::HEARTBEAT, &[at_ms])
                .await?;
            return Ok(Step::Answer(Ok(Outcome::Unit)));
        }
        Op::Supervision(write) => {
            supervise(conn, write).await?;
            return Ok(Step::Answer(Ok(Outcome::Unit)));
        }
        Op::Clearing(write) => {
            let (sql, params) = write.sql_and_params();
            let changed = conn.client.execute(sql, &refs(&params)).await?;
            return Ok(Step::Answer(if changed == 1 {
                Ok(Outcome::Unit)
            } else {
                Err(write.refused())
            }));
        }
    };
    Ok(if changed == 1 {
        Step::Answer(Ok(match op {
            Op::Begin(_) => Outcome::Begin(Begin::Fresh),
            _ => Outcome::Unit,
        }))
    } else {
        Step::Lookup
    })
}

/// Runs one supervision write inside the batch transaction.
async fn supervise(
    conn: &PgConn,
    write: &crate::supervision::Write,
) -> Result<u64, tokio_postgres::Error> {
    let (sql, params) = write.sql_and_params();
    conn.client.execute(sql, &refs(&params)).await
}

async fn lookup(
    conn: &PgConn,
    op: &Op,
    step: Step,
) -> Result<Result<Outcome, LedgerError>, tokio_postgres::Error> {
    match step {
        Step::Answer(answer) => Ok(answer),
        Step::Lookup => {
            let Some(key) = op.key() else {
                return Ok(Ok(Outcome::Unit));
            };
            let params = ops::key_params(key);
            let row = conn
                .client
                .query_opt(&conn.prepared.by_key, &refs(&params))
                .await?;
            Ok(ops::after_miss(
                op,
                row.map(|row| check::entry(raw_row(&row))),
            ))
        }
    }
}
