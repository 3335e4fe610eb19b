//! The gateway's durable settlement journal.
//!
//! Every settlement-effect call (settle, cancel, reverse, …) is written here
//! *before* it is forwarded to a regional platform and again *before* its
//! answer goes back to the hospital. One row per idempotency [`Key`]
//! (the caller institution's code and the sender's `msgid`): the primary key
//! decides, so an entry is never lost and never duplicated, and a repeated
//! request is answered from the journal instead of being settled twice.
//!
//! # States
//!
//! ```text
//!            begin               finish
//!  (absent) ───────▶ pending ───────────────▶ done │ refused │ unknown
//!                       │                      │                 │
//!                       │ resolve              │ resolve         │ resolve
//!                       │ (after a crash)      │ (reversed only) │
//!                       ▼                      ▼                 ▼
//!              reversed │ confirmed         reversed    reversed │ confirmed
//! ```
//!
//! * [`State::Pending`]: journalled, forwarded or about to be; no answer yet.
//! * [`State::Done`] / [`State::Refused`]: the platform answered, success or
//!   refusal; the bytes answered to the hospital are kept for replay.
//! * [`State::Unknown`]: the upstream call timed out or broke; the hospital got
//!   an answer saying so. The gateway resolves it itself by reversal (never by
//!   re-sending the settlement), also after a crash: [`Ledger::unresolved`]
//!   lists every pending or unknown entry.
//! * [`State::Reversed`] / [`State::Confirmed`]: resolution of an unknown (or a
//!   pending one found after a crash). A done settlement may also become
//!   reversed when the hospital reverses it itself. Resolving to the state an
//!   entry already has is a harmless no-op, so resolution is safe to repeat.
//!
//! Every other transition is refused with [`LedgerError::Conflict`]; a finished
//! entry is never overwritten (repeating the very same `finish` — same state,
//! time and reply — is accepted as a no-op, so a write whose acknowledgement
//! was lost can be retried).
//!
//! # Durability and group commit
//!
//! A call that returned `Ok` is on disk. Both backends use the same pattern:
//! one *writer* owns the only write connection and is fed by a bounded queue.
//! It takes whatever is queued (up to [`MAX_BATCH`] commands), runs them all in
//! one transaction, commits once — one fsync shared by every caller in the
//! batch — and only then answers each caller through a oneshot channel. When
//! the writer is idle a lone call is committed at once (no artificial delay);
//! under load batches grow by themselves while the previous fsync runs.
//!
//! * **SQLite** (`sqlite://PATH`, the embedded default): a dedicated OS thread
//!   with one `rusqlite` connection, WAL journal, `synchronous=FULL`,
//!   `BEGIN IMMEDIATE` per batch. Reads use a small pool of separate
//!   connections on the blocking pool, so they never wait behind a batch (WAL
//!   readers do not block the writer, nor the writer them).
//! * **PostgreSQL** (`postgres://…`, for several replicas sharing one ledger):
//!   a writer task owning one `tokio-postgres` client; the statements of a
//!   batch are pipelined inside one transaction, in key order (so two replicas'
//!   batches cannot deadlock); `synchronous_commit` is left on (forced on if
//!   the server has it off). Reads use a second client. A lost connection is
//!   noticed and re-established on the next call.
//!
//! Waits are bounded: a full disk, a read-only file or an unreachable or hung
//! server gives [`LedgerError::Unavailable`] within seconds (2 s per
//! PostgreSQL connect or batch, [`CALL_TIMEOUT`] overall), never a hang or a
//! panic. `Unavailable` means the outcome is unknown to the caller: the write
//! may or may not have happened (a `begin` that did happen shows up as a
//! pending entry in [`Ledger::unresolved`]; a `finish` that did happen may be
//! repeated identically).
//!
//! # Checks
//!
//! Data is checked when written (field lengths, no control characters, a
//! 4-digit `infno`, a hex digest, amounts within the [`Money`] range, legal
//! transitions) and again when read: a row that does not parse back into an
//! [`Entry`] is [`LedgerError::Corrupt`], never a panic.
//!
//! # Schema
//!
//! One migration list for both backends (`src/migrations/*.sql`, plain TEXT
//! and BIGINT columns, and the reply's bytes: `BLOB` in SQLite, `BYTEA` in
//! PostgreSQL, the one migration written for each), applied in order at
//! [`Ledger::open`] and recorded in `schema_migrations`; opening is
//! idempotent, and on PostgreSQL concurrent opens are serialised by an
//! advisory lock. The ledger holds no personal data: ids, codes, amounts, a
//! digest of the request and the (already stripped) bytes answered.
//!
//! Migration 6 keeps a reply as bytes instead of hex text (rows finished
//! before it keep their hex, which is read as well: no row is rewritten) and
//! makes the journal's secondary indexes partial: each holds only the rows
//! its queries can find (no NULLs; only unresolved entries in
//! `journal_unresolved`). Together they halve the disk a settlement takes
//! (BENCHMARKS.md, issue 9).
//!
//! # The person number
//!
//! Migration 5 adds the request's `psn_no` to the journal ([`NewEntry::psn_no`],
//! read back in [`Entry::new`]): the platform's own, pseudonymous person number (not an
//! ID number, not a name), which the gateway's own 2601 must carry to reverse
//! a call whose outcome is unknown. It is a [`PsnNo`], checked when made (1 to
//! [`PSN_NO_MAX_CHARS`] characters, no control characters) and again when
//! read; its `Debug` does not show it, so that it stays out of logs. Rows
//! journalled before migration 5 have none (`NULL`).
//!
//! # Refusals
//!
//! Besides the journal, an append-only `refusals` table (migration 2) keeps
//! one row per message the gateway refused before forwarding it
//! ([`Ledger::refuse`], [`Ledger::refusals`]): caller, what the message named
//! when it could be read, the error code and HTTP status, a SHA-256 digest of
//! the body (never the body). Refusals go through the same group-commit
//! writer; each gets an id unique across replicas, and the ledger offers no
//! way to change or delete one.
//!
//! # Supervision
//!
//! Migration 4 adds what cross-region supervision keeps: its signals
//! ([`Ledger::put_signal`], [`Ledger::signals`] by day), the facts its
//! windows need to be rebuilt after a restart ([`Ledger::put_supervision_event`],
//! [`Ledger::supervision_events`], [`Ledger::prune_supervision`]) and each
//! institution's daily settlement counts ([`Ledger::count_settlements`],
//! [`Ledger::settlement_counts`]). The person appears only as a keyed hash.
//!
//! # Clearing-day queries
//!
//! [`Ledger::day`] selects entries by reception time; [`Ledger::touching`]
//! also by settlement and resolution time — everything a clearing day's
//! statement is made from (a settlement received before midnight, a cancel or
//! a reversal of an earlier day). [`Ledger::cancels_of`] finds the cancels
//! naming a settlement.

#![warn(missing_docs)]

mod check;
mod clearing;
mod ids;
mod ops;
mod postgres;
mod sql;
mod sqlite;
mod supervision;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use clearing::{ClosedDay, StoredStatement, Verdict};
pub use contracts::money::Money;
pub use supervision::{DailyCount, Observed, Signal, SupervisionEvent};

/// The schema version this build migrates to (the last migration's number).
pub const SCHEMA_VERSION: i64 = 6;

/// The most commands one batch (one transaction, one commit) carries.
pub const MAX_BATCH: usize = 512;

/// The longest a write call waits for its batch to be committed before it
/// gives up with [`LedgerError::Unavailable`].
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The state of a journal entry. See the crate documentation for the diagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Journalled before forwarding; no answer yet.
    Pending,
    /// The platform answered with success.
    Done,
    /// The platform (or the gateway) refused the call.
    Refused,
    /// The outcome upstream is not known (timeout, broken connection).
    Unknown,
    /// Resolved: undone upstream by a reversal.
    Reversed,
    /// Resolved: known to have taken effect upstream.
    Confirmed,
}

impl State {
    /// Every state, in the order of the lifecycle.
    pub const ALL: [State; 6] = [
        State::Pending,
        State::Done,
        State::Refused,
        State::Unknown,
        State::Reversed,
        State::Confirmed,
    ];

    /// The state as stored: `pending`, `done`, `refused`, `unknown`, `reversed`, `confirmed`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Done => "done",
            State::Refused => "refused",
            State::Unknown => "unknown",
            State::Reversed => "reversed",
            State::Confirmed => "confirmed",
        }
    }

    /// Parses the stored text; `None` for anything else.
    pub fn parse(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// `true` for the states `finish` may write: done, refused, unknown.
    pub fn is_finish(self) -> bool {
        matches!(self, State::Done | State::Refused | State::Unknown)
    }

    /// `true` for the states `resolve` may write: reversed, confirmed.
    pub fn is_resolution(self) -> bool {
        matches!(self, State::Reversed | State::Confirmed)
    }

    /// `true` for pending and unknown: the entries recovery must look at.
    pub fn is_unresolved(self) -> bool {
        matches!(self, State::Pending | State::Unknown)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The idempotency key: the caller institution's code and the sender's `msgid`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The calling institution's code (from its client certificate).
    pub caller: String,
    /// The sender's message id.
    pub msgid: String,
}

impl Key {
    /// A key from its two parts.
    pub fn new(caller: impl Into<String>, msgid: impl Into<String>) -> Key {
        Key {
            caller: caller.into(),
            msgid: msgid.into(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.caller, self.msgid)
    }
}

/// The longest person number ([`PsnNo`]) the ledger keeps, in characters.
pub const PSN_NO_MAX_CHARS: usize = 30;

/// A person number (`psn_no`) as the journal keeps it: the platform's own,
/// pseudonymous number for the insured person, which a 2601 reversal names.
/// Made only through [`PsnNo::new`], so it is always 1 to
/// [`PSN_NO_MAX_CHARS`] characters without control characters (letters are
/// allowed). Its `Debug` hides the value and it has no `Display`: it is not
/// for logs, spans or metrics.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PsnNo(String);

impl PsnNo {
    /// Checks `text` and wraps it; [`LedgerError::Invalid`] when it is empty,
    /// longer than [`PSN_NO_MAX_CHARS`] characters or holds a control character.
    pub fn new(text: impl Into<String>) -> Result<PsnNo, LedgerError> {
        let text = text.into();
        check::psn_no(&text)?;
        Ok(PsnNo(text))
    }

    /// The number, to put in a message.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PsnNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PsnNo(…)")
    }
}

/// What is journalled before a call is forwarded (state [`State::Pending`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// The idempotency key.
    pub key: Key,
    /// The transaction number, 4 digits (`2207`, `2601`, …).
    pub infno: String,
    /// The institution's code (`fixmedins_code`).
    pub institution: String,
    /// The insured region (`insuplc_admdvs`); empty when not known.
    pub insured: String,
    /// The treatment region (`mdtrtarea_admvs`); empty when not known.
    pub treatment: String,
    /// The admdvs of the platform the call was routed to.
    pub region: String,
    /// Hex digest of the request body: equal repeats have equal digests.
    pub digest: String,
    /// For a reversal (2601): the `omsgid` it reverses.
    pub original_msgid: Option<String>,
    /// For a cancel (2208, 2305, 2103): the `setl_id` cancelled.
    pub cancels_setl_id: Option<String>,
    /// The person the request names (`psn_no`), when it names one: what the
    /// gateway's own 2601 carries if it must reverse the call. Read back as
    /// `None` also for an entry journalled before migration 5.
    pub psn_no: Option<PsnNo>,
    /// When the gateway received the call, Unix milliseconds.
    pub received_at_ms: i64,
}

/// What is journalled before the answer goes back to the hospital.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    /// [`State::Done`], [`State::Refused`] or [`State::Unknown`].
    pub state: State,
    /// What the answer said.
    pub answered: Answered,
    /// What went back to the hospital.
    pub reply: Reply,
}

/// What a call's answer said: the settlement it named, or the error the
/// call was refused with, and the balance rules the answer broke.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answered {
    /// The platform's settlement id.
    pub setl_id: Option<String>,
    /// The visit id.
    pub mdtrt_id: Option<String>,
    /// Insurance type (`insutype`).
    pub insutype: Option<String>,
    /// Kind of care (`med_type`).
    pub med_type: Option<String>,
    /// Clearing type (`clr_type`).
    pub clr_type: Option<String>,
    /// Settlement time, Unix milliseconds.
    pub setl_time_ms: Option<i64>,
    /// Total medical fees.
    pub medfee_sumamt: Option<Money>,
    /// The funds' share.
    pub fund_pay_sumamt: Option<Money>,
    /// Paid from the personal account.
    pub acct_pay: Option<Money>,
    /// Paid in cash by the person.
    pub psn_cash_pay: Option<Money>,
    /// The gateway's or platform's error code on refusal.
    pub error_code: Option<u16>,
    /// Names of the balance rules the platform's answer broke (empty when
    /// none, and before the entry is finished).
    pub anomalies: Vec<String>,
}

/// What went back to the hospital, replayed to repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status answered.
    pub status: u16,
    /// The media type answered.
    pub media_type: String,
    /// The bytes answered (personal data already stripped).
    pub bytes: Vec<u8>,
    /// When the entry was finished, Unix milliseconds.
    pub finished_at_ms: i64,
}

/// One journal entry as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What was journalled when the call came in.
    pub new: NewEntry,
    /// The current state.
    pub state: State,
    /// What the answer said (empty until finished).
    pub answered: Answered,
    /// What went back to the hospital; `None` until finished (also for an
    /// entry resolved straight from pending after a crash).
    pub reply: Option<Reply>,
    /// When the entry was resolved (reversed or confirmed); `None` before.
    pub resolved_at_ms: Option<i64>,
    /// How many resolution attempts were counted by [`Ledger::note_attempt`].
    pub attempts: u32,
}

impl Entry {
    /// When the entry was finished; `None` until finished.
    pub fn finished_at_ms(&self) -> Option<i64> {
        self.reply.as_ref().map(|reply| reply.finished_at_ms)
    }
}

/// A message the gateway refused before forwarding it, as journalled by
/// [`Ledger::refuse`]: who sent it, what it named (when it could be read),
/// why it was refused, and a digest of its bytes — never the bytes themselves
/// nor any personal data. The table is append-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The calling institution's code (from its client certificate).
    pub caller: String,
    /// The message's `msgid`, when it could be read.
    pub msgid: Option<String>,
    /// The transaction number, 4 digits, when it could be read.
    pub infno: Option<String>,
    /// The institution the message named (`fixmedins_code`), when it could be read.
    pub institution: Option<String>,
    /// The insured region the message named, when it could be read.
    pub insured: Option<String>,
    /// The treatment region the message named, when it could be read.
    pub treatment: Option<String>,
    /// The catalogue's error code (`3002`, …).
    pub error_code: u16,
    /// The HTTP status answered.
    pub http_status: u16,
    /// Lower-case hex SHA-256 of the raw request body (64 characters).
    pub digest: String,
    /// When the gateway received the message, Unix milliseconds.
    pub received_at_ms: i64,
}

/// A journalled [`Refusal`] as read back, with the id the ledger gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRefusal {
    /// Unique among all refusals (also across replicas sharing a database).
    pub id: String,
    /// What was journalled.
    pub refusal: Refusal,
}

/// What [`Ledger::begin`] found.
#[allow(clippy::large_enum_variant)] // the API hands the entry over by value; boxing would only move the allocation
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The key was new: a pending entry is now journalled; forward the call.
    Fresh,
    /// The same request was seen and is no longer pending: replay its reply
    /// ([`Entry::reply`]; `None` only for an entry resolved straight from
    /// pending after a crash — answer from its state).
    Finished(Entry),
    /// The same request is still pending (being forwarded, or left by a crash).
    InFlight,
    /// The same key with a different request body: refuse the repeat.
    Reused,
}

/// Why a ledger call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The storage cannot be used now (disk full, read-only, server down or
    /// hung, writer stopped): the gateway answers 503. The outcome of the call
    /// is unknown.
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    /// An illegal transition (finishing a finished entry, resolving a refused
    /// one, an entry that does not exist, …).
    #[error("ledger conflict: {0}")]
    Conflict(String),
    /// A stored row (or the schema) failed its check on read.
    #[error("ledger corrupt: {0}")]
    Corrupt(String),
    /// The data handed in failed its check before anything was written (or
    /// the URL could not be understood); a bug in the caller.
    #[error("refused by the ledger: {0}")]
    Invalid(String),
}

/// The journal: cheap to clone, `Send + Sync`; every clone shares one writer.
#[derive(Clone)]
pub struct Ledger {
    backend: Backend,
    ids: Arc<ids::RefusalIds>,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Arc<sqlite::SqliteLedger>),
    Postgres(Arc<postgres::PgLedger>),
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("backend", &self.backend_name())
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Opens the journal at `url` and applies pending migrations:
    /// `sqlite://PATH` (the file and its folders are created; a relative PATH
    /// is relative to the working directory, `sqlite:///abs/path` is absolute)
    /// or `postgres://…` / `postgresql://…` (a libpq-style URL, e.g. with
    /// `?options=-csearch_path%3Dledger` to pick a schema; plain TCP: TLS to
    /// the database is not supported yet and `sslmode=require` is refused).
    ///
    /// Fails with [`LedgerError::Unavailable`] when the file or server cannot
    /// be used, [`LedgerError::Invalid`] for a URL it does not understand and
    /// [`LedgerError::Corrupt`] for a database migrated by a newer build.
    pub async fn open(url: &str) -> Result<Ledger, LedgerError> {
        let backend = if let Some(path) = url.strip_prefix("sqlite://") {
            Backend::Sqlite(Arc::new(sqlite::SqliteLedger::open(path).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(Arc::new(postgres::PgLedger::open(url).await?))
        } else {
            return Err(LedgerError::Invalid(
                "ledger URL must start with sqlite:// or postgres://".into(),
            ));
        };
        Ok(Ledger {
            backend,
            ids: Arc::new(ids::RefusalIds::new()),
        })
    }

    /// Atomically journals `entry` as pending if its key is absent
    /// ([`Begin::Fresh`]); otherwise reports what is there.
    pub async fn begin(&self, entry: NewEntry) -> Result<Begin, LedgerError> {
        check::new_entry(&entry)?;
        self.queue()
            .submit(ops::Op::Begin(entry))
            .await?
            .into_begin()
    }

    /// Pending → done, refused or unknown, with the answer's figures and bytes.
    /// Anything else (a finished entry, a missing one) is a conflict, except an
    /// identical repeat of the finish already written, which is a no-op.
    pub async fn finish(&self, key: &Key, finish: Finish) -> Result<(), LedgerError> {
        self.finish_observed(key, finish, None).await
    }

    /// [`Ledger::finish`], and in the same transaction what supervision keeps
    /// of the call (its event, and the institution's daily count): no crash
    /// can leave a finished settlement that supervision never heard of. A
    /// repeat of the finish adds nothing. Parts that fail the supervision
    /// checks are left out (with a warning): they never fail the finish.
    pub async fn finish_observed(
        &self,
        key: &Key,
        finish: Finish,
        observed: Option<Observed>,
    ) -> Result<(), LedgerError> {
        let mut row = check::finish(finish)?;
        if let Some(observed) = observed {
            row.feed = supervision::feed(observed);
        }
        self.queue()
            .submit(ops::Op::Finish(key.clone(), row))
            .await?
            .into_unit()
    }

    /// Unknown or pending → reversed or confirmed; done → reversed. Resolving
    /// to the state the entry already has is a no-op; anything else is a conflict.
    pub async fn resolve(&self, key: &Key, state: State, at_ms: i64) -> Result<(), LedgerError> {
        check::resolution(state)?;
        self.queue()
            .submit(ops::Op::Resolve(key.clone(), state, at_ms))
            .await?
            .into_unit()
    }

    /// Counts one resolution attempt on the entry and returns the new count.
    pub async fn note_attempt(&self, key: &Key) -> Result<u32, LedgerError> {
        self.queue()
            .submit(ops::Op::Attempt(key.clone()))
            .await?
            .into_attempts()
    }

    /// Every pending or unknown entry, oldest first (recovery after a crash).
    pub async fn unresolved(&self) -> Result<Vec<Entry>, LedgerError> {
        match &self.backend {
            Backend::Sqlite(db) => db.unresolved().await,
            Backend::Postgres(db) => db.unresolved().await,
        }
    }

    /// The entry under `key`, if any.
    pub async fn get(&self, key: &Key) -> Result<Option<Entry>, LedgerError> {
        match &self.backend {
            Backend::Sqlite(db) => db.get(key).await,
            Backend::Postgres(db) => db.get(key).await,
        }
    }

    /// The entry of `caller`'s message `msgid`, if any (same as [`Ledger::get`]).
    pub async fn by_msgid(&self, caller: &str, msgid: &str) -> Result<Option<Entry>, LedgerError> {
        self.get(&Key::new(caller, msgid)).await
    }

    /// The entry whose answer carried `setl_id`; when several did (ids are
    /// only unique per platform), the earliest received.
    pub async fn by_setl_id(&self, setl_id: &str) -> Result<Option<Entry>, LedgerError> {
        match &self.backend {
            Backend::Sqlite(db) => db.by_setl_id(setl_id).await,
            Backend::Postgres(db) => db.by_setl_id(setl_id).await,
        }
    }

    /// Entries received in `[from_ms, to_ms)`, ordered by reception time, then key.
    pub async fn day(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Entry>, LedgerError> {
        match &self.backend {
            Backend::Sqlite(db) => db.day(from_ms, to_ms).await,
            Backend::Postgres(db) => db.day(from_ms, to_ms).await,
        }
    }

    /// Entries that touch the time range `[from_ms, to_ms)`: received,
    /// settled (`setl_time_ms`) or resolved (`resolved_at_ms`) in it — what a
    /// clearing day's statement is made from. Ordered by reception time, then key.
    pub async fn touching(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Entry>, LedgerError> {
        match &self.backend {
            Backend::Sqlite(db) => db.touching(from_ms, to_ms).await,
            Backend::Postgres(db) => db.touching(from_ms, to_ms).await,
        }
    }

    /// The cancels (2208, 2305, 2103) that named `setl_id`, in any state,
    /// oldest first.
    pub async fn cancels_of(&self, setl_id: &str) -> Result<Vec<Entry>, LedgerError> {
        match &self.backend {
            Backend::Sqlite(db) => db.cancels_of(setl_id).await,
            Backend::Postgres(db) => db.cancels_of(setl_id).await,
        }
    }

    /// Journals a refusal (append-only) through the same group-commit writer
    /// as every other write, and returns the id it was given. Checked like
    /// every write: text fields at most 128 bytes without control
    /// characters, a 4-digit `infno`, a 64-character hex digest, an HTTP
    /// status in 100..=599.
    pub async fn refuse(&self, refusal: Refusal) -> Result<String, LedgerError> {
        check::refusal(&refusal)?;
        let id = self.ids.next();
        self.queue()
            .submit(ops::Op::Refuse(RecordedRefusal {
                id: id.clone(),
                refusal,
            }))
            .await?
            .into_unit()?;
        Ok(id)
    }

    /// Refusals received in `[from_ms, to_ms)`, ordered by reception time, then id.
    pub async fn refusals(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<RecordedRefusal>, LedgerError> {
        match &self.backend {
            Backend::Sqlite(db) => db.refusals(from_ms, to_ms).await,
            Backend::Postgres(db) => db.refusals(from_ms, to_ms).await,
        }
    }

    /// Checks that the writer can take a transaction and a read connection
    /// answers (for `/readyz`). On PostgreSQL this reconnects if needed.
    pub async fn ping(&self) -> Result<(), LedgerError> {
        self.queue()
            .submit(ops::Op::Ping(sql::now_ms()))
            .await?
            .into_unit()?;
        match &self.backend {
            Backend::Sqlite(db) => db.ping_reader().await,
            Backend::Postgres(db) => db.ping_reader().await,
        }
    }

    /// How many write transactions (batches) this instance has committed.
    /// With group commit this grows far slower than the number of writes;
    /// exposed for tests and metrics.
    pub fn commits(&self) -> u64 {
        self.queue().commits()
    }

    /// `"sqlite"` or `"postgres"`, for logs and metrics.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Stores a region's statement for a day, replacing an earlier upload;
    /// [`LedgerError::Conflict`] when the day is closed.
    pub async fn put_statement(&self, statement: StoredStatement) -> Result<(), LedgerError> {
        self.clearing_write(clearing::Write::Statement(statement))
            .await
    }

    /// The statements stored for `day` (`YYYY-MM-DD`), by region.
    pub async fn statements(&self, day: &str) -> Result<Vec<StoredStatement>, LedgerError> {
        self.clearing_rows(
            clearing::select_statements(),
            day,
            clearing::STATEMENT_COLUMNS,
            clearing::statement,
        )
        .await
    }

    /// Closes a day; [`LedgerError::Conflict`] when it already is.
    pub async fn close_day(&self, closed: ClosedDay) -> Result<(), LedgerError> {
        self.clearing_write(clearing::Write::Close(closed)).await
    }

    /// The day's closure, if it is closed.
    pub async fn closed_day(&self, day: &str) -> Result<Option<ClosedDay>, LedgerError> {
        Ok(self
            .clearing_rows(
                clearing::select_day(),
                day,
                clearing::DAY_COLUMNS,
                clearing::closed_day,
            )
            .await?
            .into_iter()
            .next())
    }

    /// The days closed from `from_day` (`YYYY-MM-DD`) on, oldest first, each
    /// with when it was closed (Unix milliseconds): what decides whether a
    /// row of an earlier day is late.
    pub async fn closed_since(&self, from_day: &str) -> Result<Vec<(String, i64)>, LedgerError> {
        self.clearing_rows(
            clearing::select_closures(),
            from_day,
            clearing::CLOSURE_COLUMNS,
            clearing::closure,
        )
        .await
    }

    /// Records a platform's verdict on a clearing row (replacing its earlier
    /// one); [`LedgerError::Conflict`] when the row's day is closed.
    pub async fn put_verdict(&self, verdict: Verdict) -> Result<(), LedgerError> {
        self.clearing_write(clearing::Write::Verdict(verdict)).await
    }

    /// The verdicts on rows of `day`.
    pub async fn verdicts(&self, day: &str) -> Result<Vec<Verdict>, LedgerError> {
        self.clearing_rows(
            clearing::select_verdicts(),
            day,
            clearing::VERDICT_COLUMNS,
            clearing::verdict,
        )
        .await
    }

    async fn clearing_write(&self, write: clearing::Write) -> Result<(), LedgerError> {
        clearing::check(&write)?;
        self.queue()
            .submit(ops::Op::Clearing(write))
            .await?
            .into_unit()
    }

    async fn clearing_rows<T: Send + 'static>(
        &self,
        select: String,
        day: &str,
        columns: &'static [(&'static str, sql::Kind)],
        decode: fn(Vec<check::Raw>) -> Result<T, LedgerError>,
    ) -> Result<Vec<T>, LedgerError> {
        self.rows(
            select,
            vec![ops::Arg::Text(day.to_owned())],
            columns,
            decode,
        )
        .await
    }

    async fn rows<T: Send + 'static>(
        &self,
        select: String,
        args: Vec<ops::Arg>,
        columns: &'static [(&'static str, sql::Kind)],
        decode: fn(Vec<check::Raw>) -> Result<T, LedgerError>,
    ) -> Result<Vec<T>, LedgerError> {
        match &self.backend {
            Backend::Sqlite(db) => db.rows(select, args, columns, decode).await,
            Backend::Postgres(db) => db.rows(select, args, columns, decode).await,
        }
    }

    /// Stores a supervision signal (the same id twice is one signal).
    /// Checked: codes without commas or control characters, at most 64 per
    /// list, a hex HMAC as the person key, a detail of at most 2000 bytes.
    pub async fn put_signal(&self, signal: Signal) -> Result<(), LedgerError> {
        let write = supervision::signal_row(signal)?;
        self.queue()
            .submit(ops::Op::Supervision(write))
            .await?
            .into_unit()
    }

    /// The supervision signals detected on `day` (`YYYY-MM-DD`, Asia/Shanghai), oldest first.
    pub async fn signals(&self, day: &str) -> Result<Vec<Signal>, LedgerError> {
        self.rows(
            supervision::select_signals(),
            vec![ops::Arg::Text(day.to_owned())],
            supervision::SIGNAL_COLUMNS,
            supervision::signal,
        )
        .await
    }

    /// Keeps one fact of a supervision window (the same id twice is one fact).
    pub async fn put_supervision_event(&self, event: SupervisionEvent) -> Result<(), LedgerError> {
        supervision::check_event(&event)?;
        self.queue()
            .submit(ops::Op::Supervision(supervision::Write::Event(event)))
            .await?
            .into_unit()
    }

    /// The supervision facts observed at or after `since_ms`, oldest first.
    pub async fn supervision_events(
        &self,
        since_ms: i64,
    ) -> Result<Vec<SupervisionEvent>, LedgerError> {
        self.rows(
            supervision::select_events(),
            vec![ops::Arg::Int(since_ms)],
            supervision::EVENT_COLUMNS,
            supervision::event,
        )
        .await
    }

    /// Forgets the supervision facts observed before `before_ms`.
    pub async fn prune_supervision(&self, before_ms: i64) -> Result<(), LedgerError> {
        self.queue()
            .submit(ops::Op::Supervision(supervision::Write::Prune(before_ms)))
            .await?
            .into_unit()
    }

    /// Records the bill (the digest of the fee lines uploaded for the visit)
    /// of an event kept without one, once supervision has matched it.
    pub async fn set_supervision_bill(&self, id: &str, bill: &str) -> Result<(), LedgerError> {
        let write = supervision::bill(id, bill)?;
        self.queue()
            .submit(ops::Op::Supervision(write))
            .await?
            .into_unit()
    }

    /// Adds settlements to an institution's count of a day.
    pub async fn count_settlements(&self, count: DailyCount) -> Result<(), LedgerError> {
        supervision::check_count(&count)?;
        self.queue()
            .submit(ops::Op::Supervision(supervision::Write::Count(count)))
            .await?
            .into_unit()
    }

    /// Sets an institution's count of a day (seeding a baseline, as the demo does).
    pub async fn set_settlement_count(&self, count: DailyCount) -> Result<(), LedgerError> {
        supervision::check_count(&count)?;
        self.queue()
            .submit(ops::Op::Supervision(supervision::Write::SetCount(count)))
            .await?
            .into_unit()
    }

    /// Every institution's daily counts from `from_day` (`YYYY-MM-DD`) on.
    pub async fn settlement_counts(&self, from_day: &str) -> Result<Vec<DailyCount>, LedgerError> {
        self.rows(
            supervision::select_daily(),
            vec![ops::Arg::Text(from_day.to_owned())],
            supervision::DAILY_COLUMNS,
            supervision::daily,
        )
        .await
    }

    fn queue(&self) -> &ops::Queue {
        match &self.backend {
            Backend::Sqlite(db) => &db.queue,
            Backend::Postgres(db) => &db.queue,
        }
    }
}
