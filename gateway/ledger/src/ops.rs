//! The commands the writer executes, shared by both backends: the queue in
//! front of the writer, the parameters of each statement, and what a command
//! answers when its statement touched no row.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::check::FinishRow;
use crate::{Begin, Entry, Key, LedgerError, NewEntry, RecordedRefusal, State, CALL_TIMEOUT};

/// How many commands may wait for the writer.
pub(crate) const QUEUE_CAPACITY: usize = 8192;

/// A write the writer executes inside a batch.
#[derive(Debug)]
pub(crate) enum Op {
    Begin(NewEntry),
    Finish(Key, FinishRow),
    Resolve(Key, State, i64),
    Attempt(Key),
    /// Appends a refusal (a repeat of the same id is a no-op).
    Refuse(RecordedRefusal),
    /// A clearing write (statement, verdict, closing a day).
    Clearing(crate::clearing::Write),
    /// A supervision write (signal, event, daily count, pruning).
    Supervision(crate::supervision::Write),
    /// Proves that the writer can write and commit: it updates the heartbeat
    /// row, so a full disk or a read-only database fails it.
    Ping(i64),
}

impl Op {
    /// The journal key the command touches (`None` for a ping or a refusal,
    /// which touch no journal entry).
    pub fn key(&self) -> Option<&Key> {
        match self {
            Op::Begin(entry) => Some(&entry.key),
            Op::Finish(key, _) | Op::Resolve(key, _, _) | Op::Attempt(key) => Some(key),
            Op::Refuse(_) | Op::Clearing(_) | Op::Supervision(_) | Op::Ping(_) => None,
        }
    }

    /// `true` when the command writes.
    pub fn writes(&self) -> bool {
        !matches!(self, Op::Ping(_))
    }
}

/// What a command answers.
#[allow(clippy::large_enum_variant)] // moved once, from the writer to its caller
#[derive(Debug)]
pub(crate) enum Outcome {
    Begin(Begin),
    Unit,
    Attempts(u32),
}

fn mismatch() -> LedgerError {
    LedgerError::Unavailable("internal: the writer answered a different kind of command".into())
}

impl Outcome {
    pub fn into_begin(self) -> Result<Begin, LedgerError> {
        match self {
            Outcome::Begin(begin) => Ok(begin),
            _ => Err(mismatch()),
        }
    }

    pub fn into_unit(self) -> Result<(), LedgerError> {
        match self {
            Outcome::Unit => Ok(()),
            _ => Err(mismatch()),
        }
    }

    pub fn into_attempts(self) -> Result<u32, LedgerError> {
        match self {
            Outcome::Attempts(count) => Ok(count),
            _ => Err(mismatch()),
        }
    }
}

/// A command with the channel its answer goes back on.
pub(crate) struct Command {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Outcome, LedgerError>>,
}

impl Command {
    /// Answers the caller (who may have given up: then nobody listens).
    pub fn answer(self, result: Result<Outcome, LedgerError>) {
        let _ = self.reply.send(result);
    }
}

/// Answers every command of a failed batch with the same error.
pub(crate) fn fail_all(batch: Vec<Command>, error: &LedgerError) {
    for command in batch {
        command.answer(Err(error.clone()));
    }
}

/// The writer's side of the queue: commands, and the count of commits.
pub(crate) struct Inbox {
    pub rx: mpsc::Receiver<Command>,
    pub commits: Arc<AtomicU64>,
}

impl Inbox {
    /// Takes what is queued behind `first`, up to [`crate::MAX_BATCH`], and
    /// drops the commands whose caller has already given up.
    pub fn drain(&mut self, first: Command) -> Vec<Command> {
        let mut batch = Vec::with_capacity(64);
        batch.push(first);
        while batch.len() < crate::MAX_BATCH {
            match self.rx.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        batch.retain(|command| !command.reply.is_closed());
        batch
    }

    /// Counts one committed batch, if it wrote anything.
    pub fn committed(&self, batch: &[Command]) {
        if batch.iter().any(|command| command.op.writes()) {
            self.commits.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The callers' side of the queue.
pub(crate) struct Queue {
    tx: mpsc::Sender<Command>,
    commits: Arc<AtomicU64>,
}

impl Queue {
    /// A queue and the writer's inbox.
    pub fn new() -> (Queue, Inbox) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let commits = Arc::new(AtomicU64::new(0));
        (
            Queue {
                tx,
                commits: commits.clone(),
            },
            Inbox { rx, commits },
        )
    }

    /// Hands `op` to the writer and waits for its batch to commit, at most [`CALL_TIMEOUT`].
    pub async fn submit(&self, op: Op) -> Result<Outcome, LedgerError> {
        let (reply, answer) = oneshot::channel();
        let call = async {
            self.tx
                .send(Command { op, reply })
                .await
                .map_err(|_| LedgerError::Unavailable("the ledger writer has stopped".into()))?;
            answer.await.map_err(|_| {
                LedgerError::Unavailable("the ledger writer stopped before answering".into())
            })?
        };
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| {
                LedgerError::Unavailable(format!(
                    "the ledger writer did not commit within {} ms",
                    CALL_TIMEOUT.as_millis()
                ))
            })?
    }

    /// Committed batches so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

/// One owned read parameter.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

impl Arg {
    pub(crate) fn val(&self) -> Val<'_> {
        match self {
            Arg::Text(text) => Val::Text(Some(text)),
            Arg::Int(number) => Val::Int(Some(*number)),
        }
    }
}

/// One statement parameter, borrowed from the command.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    Bytes(Option<&'a [u8]>),
}

/// Parameters of the insert statement.
pub(crate) fn insert_params(entry: &NewEntry) -> Vec<Val<'_>> {
    vec![
        Val::Text(Some(&entry.key.caller)),
        Val::Text(Some(&entry.key.msgid)),
        Val::Text(Some(&entry.infno)),
        Val::Text(Some(&entry.institution)),
        Val::Text(Some(&entry.insured)),
        Val::Text(Some(&entry.treatment)),
        Val::Text(Some(&entry.region)),
        Val::Text(Some(&entry.digest)),
        Val::Text(entry.original_msgid.as_deref()),
        Val::Text(entry.cancels_setl_id.as_deref()),
        Val::Int(Some(entry.received_at_ms)),
        Val::Text(entry.psn_no.as_ref().map(crate::PsnNo::as_str)),
    ]
}

/// Parameters of the finish statement.
pub(crate) fn finish_params<'a>(key: &'a Key, row: &'a FinishRow) -> Vec<Val<'a>> {
    vec![
        Val::Text(Some(&key.caller)),
        Val::Text(Some(&key.msgid)),
        Val::Text(Some(row.state.as_str())),
        Val::Text(row.setl_id.as_deref()),
        Val::Text(row.mdtrt_id.as_deref()),
        Val::Text(row.insutype.as_deref()),
        Val::Text(row.med_type.as_deref()),
        Val::Text(row.clr_type.as_deref()),
        Val::Int(row.setl_time_ms),
        Val::Int(row.medfee_sumamt),
        Val::Int(row.fund_pay_sumamt),
        Val::Int(row.acct_pay),
        Val::Int(row.psn_cash_pay),
        Val::Int(row.error_code),
        Val::Text(Some(&row.anomalies)),
        Val::Int(Some(row.reply_status)),
        Val::Text(Some(&row.reply_media_type)),
        Val::Bytes(Some(&row.reply)),
        Val::Int(Some(row.finished_at_ms)),
    ]
}

/// Parameters of the resolve statement.
pub(crate) fn resolve_params(key: &Key, state: State, at_ms: i64) -> Vec<Val<'_>> {
    vec![
        Val::Text(Some(&key.caller)),
        Val::Text(Some(&key.msgid)),
        Val::Text(Some(state.as_str())),
        Val::Int(Some(at_ms)),
    ]
}

/// Parameters of the refusal insert, in [`crate::sql::REFUSAL_COLUMNS`] order.
pub(crate) fn refusal_params(recorded: &RecordedRefusal) -> Vec<Val<'_>> {
    let r = &recorded.refusal;
    vec![
        Val::Text(Some(&recorded.id)),
        Val::Text(Some(&r.caller)),
        Val::Text(r.msgid.as_deref()),
        Val::Text(r.infno.as_deref()),
        Val::Text(r.institution.as_deref()),
        Val::Text(r.insured.as_deref()),
        Val::Text(r.treatment.as_deref()),
        Val::Int(Some(i64::from(r.error_code))),
        Val::Int(Some(i64::from(r.http_status))),
        Val::Text(Some(&r.digest)),
        Val::Int(Some(r.received_at_ms)),
    ]
}

/// Parameters of the statements that take only the key.
pub(crate) fn key_params(key: &Key) -> Vec<Val<'_>> {
    vec![Val::Text(Some(&key.caller)), Val::Text(Some(&key.msgid))]
}

/// The answer to `begin` when the key was already there.
pub(crate) fn begin_existing(existing: Entry, digest: &str) -> Begin {
    if existing.new.digest != digest {
        Begin::Reused
    } else if existing.state == State::Pending {
        Begin::InFlight
    } else {
        Begin::Finished(existing)
    }
}

/// The attempt count returned by the database, checked.
pub(crate) fn attempts(count: i64) -> Result<Outcome, LedgerError> {
    u32::try_from(count)
        .map(Outcome::Attempts)
        .map_err(|_| LedgerError::Corrupt(format!("attempts {count} is out of range")))
}

/// What a command answers when its statement changed no row: `existing` is
/// the row under its key now (read in the same transaction).
pub(crate) fn after_miss(
    op: &Op,
    existing: Option<Result<Entry, LedgerError>>,
) -> Result<Outcome, LedgerError> {
    let existing = existing.transpose()?;
    match (op, existing) {
        (Op::Begin(entry), Some(existing)) => {
            Ok(Outcome::Begin(begin_existing(existing, &entry.digest)))
        }
        (Op::Begin(entry), None) => Err(LedgerError::Unavailable(format!(
            "entry {} neither inserted nor found; try again",
            entry.key
        ))),
        (Op::Finish(key, _) | Op::Resolve(key, _, _) | Op::Attempt(key), None) => {
            Err(LedgerError::Conflict(format!("no entry {key}")))
        }
        (Op::Finish(key, row), Some(existing)) => {
            let identical = existing.state == row.state
                && existing.reply.as_ref().is_some_and(|reply| {
                    reply.finished_at_ms == row.finished_at_ms && reply.bytes == row.reply
                });
            if identical {
                Ok(Outcome::Unit)
            } else {
                Err(LedgerError::Conflict(format!(
                    "entry {key} is {}, only a pending entry can be finished",
                    existing.state
                )))
            }
        }
        (Op::Resolve(key, target, _), Some(existing)) => {
            if existing.state == *target {
                Ok(Outcome::Unit)
            } else {
                Err(LedgerError::Conflict(format!(
                    "entry {key} is {}, it cannot become {target}",
                    existing.state
                )))
            }
        }
        (Op::Attempt(key), Some(_)) => Err(LedgerError::Unavailable(format!(
            "entry {key} found but its attempts were not counted; try again"
        ))),
        (Op::Refuse(_) | Op::Supervision(_) | Op::Ping(_), _) => Ok(Outcome::Unit),
        (Op::Clearing(write), _) => Err(write.refused()),
    }
}
