//! The SQL, written once for both backends.
//!
//! Statements use PostgreSQL's `$n` placeholders; [`for_sqlite`] turns them
//! into SQLite's equivalent `?n`. Only TEXT, BIGINT and bytes (`BLOB` in
//! SQLite, `BYTEA` in PostgreSQL: the one migration that adds a column of
//! bytes is written for each), `ON CONFLICT … DO NOTHING` and `RETURNING`,
//! which both accept.

use std::sync::LazyLock;

use crate::LedgerError;

/// A versioned schema change.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    /// Its SQL for SQLite and for PostgreSQL: the same text unless a type
    /// or a function is spelled differently.
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// A migration whose SQL both backends take as it is.
macro_rules! portable {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sqlite: include_str!(concat!("migrations/", $name, ".sql")),
            postgres: include_str!(concat!("migrations/", $name, ".sql")),
        }
    };
}

/// Every migration, in order. Append only: never edit one that shipped.
pub(crate) const MIGRATIONS: &[Migration] = &[
    portable!(1, "0001_journal"),
    portable!(2, "0002_refusals"),
    portable!(3, "0003_clearing"),
    portable!(4, "0004_supervision"),
    portable!(5, "0005_journal_psn_no"),
    Migration {
        version: 6,
        name: "0006_journal_reply_bytes",
        sqlite: concat!(
            include_str!("migrations/0006_journal_reply_bytes.sqlite.sql"),
            include_str!("migrations/0006_journal_partial_indexes.sql"),
        ),
        postgres: concat!(
            include_str!("migrations/0006_journal_reply_bytes.postgres.sql"),
            include_str!("migrations/0006_journal_partial_indexes.sql"),
        ),
    },
];

pub(crate) const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
     version BIGINT NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)";
pub(crate) const SELECT_MIGRATIONS: &str =
    "SELECT version, name FROM schema_migrations ORDER BY version";
pub(crate) const INSERT_MIGRATION: &str =
    "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)";

/// The migrations still to apply, given the `(version, name)` rows already
/// recorded. A recorded migration this build does not know (a newer gateway
/// migrated the database) or whose name differs is refused.
pub(crate) fn pending_migrations(
    applied: &[(i64, String)],
) -> Result<Vec<&'static Migration>, LedgerError> {
    for (version, name) in applied {
        match MIGRATIONS.iter().find(|m| m.version == *version) {
            Some(known) if known.name == name => {}
            Some(known) => {
                return Err(LedgerError::Corrupt(format!(
                "schema_migrations has version {version} as {name:?}, this build knows it as {:?}",
                known.name
            )))
            }
            None => {
                return Err(LedgerError::Corrupt(format!(
                    "schema_migrations has version {version} ({name:?}), unknown to this build: \
                     the database was migrated by a newer gateway"
                )))
            }
        }
    }
    Ok(MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|(version, _)| *version == m.version))
        .collect())
}

/// How a column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Int,
    Bytes,
}

/// The journal's columns in the order every SELECT reads them.
pub(crate) const COLUMNS: &[(&str, Kind)] = &[
    ("caller", Kind::Text),
    ("msgid", Kind::Text),
    ("infno", Kind::Text),
    ("institution", Kind::Text),
    ("insured", Kind::Text),
    ("treatment", Kind::Text),
    ("region", Kind::Text),
    ("digest", Kind::Text),
    ("original_msgid", Kind::Text),
    ("cancels_setl_id", Kind::Text),
    ("received_at_ms", Kind::Int),
    ("state", Kind::Text),
    ("setl_id", Kind::Text),
    ("mdtrt_id", Kind::Text),
    ("insutype", Kind::Text),
    ("med_type", Kind::Text),
    ("clr_type", Kind::Text),
    ("setl_time_ms", Kind::Int),
    ("medfee_sumamt", Kind::Int),
    ("fund_pay_sumamt", Kind::Int),
    ("acct_pay", Kind::Int),
    ("psn_cash_pay", Kind::Int),
    ("error_code", Kind::Int),
    ("anomalies", Kind::Text),
    ("reply_status", Kind::Int),
    ("reply_media_type", Kind::Text),
    // Written before migration 6; `reply` since.
    ("reply_hex", Kind::Text),
    ("finished_at_ms", Kind::Int),
    ("resolved_at_ms", Kind::Int),
    ("attempts", Kind::Int),
    // Migration 5.
    ("psn_no", Kind::Text),
    // Migration 6.
    ("reply", Kind::Bytes),
];

/// The refusals table's columns in the order every SELECT reads them.
pub(crate) const REFUSAL_COLUMNS: &[(&str, Kind)] = &[
    ("id", Kind::Text),
    ("caller", Kind::Text),
    ("msgid", Kind::Text),
    ("infno", Kind::Text),
    ("institution", Kind::Text),
    ("insured", Kind::Text),
    ("treatment", Kind::Text),
    ("error_code", Kind::Int),
    ("http_status", Kind::Int),
    ("digest", Kind::Text),
    ("received_at_ms", Kind::Int),
];

/// The write and read statements, with the parameter kinds PostgreSQL prepares them with.
pub(crate) struct Statements {
    pub insert: (String, Vec<Kind>),
    pub finish: (String, Vec<Kind>),
    pub resolve: (String, Vec<Kind>),
    pub attempt: (String, Vec<Kind>),
    pub by_key: (String, Vec<Kind>),
    pub by_setl_id: (String, Vec<Kind>),
    pub unresolved: (String, Vec<Kind>),
    pub day: (String, Vec<Kind>),
    pub touching: (String, Vec<Kind>),
    pub cancels: (String, Vec<Kind>),
    pub insert_refusal: (String, Vec<Kind>),
    pub refusals: (String, Vec<Kind>),
}

impl Statements {
    /// Every statement, for preparing them all on a new connection, in the
    /// order the PostgreSQL backend takes them back.
    pub fn all(&self) -> [&(String, Vec<Kind>); 12] {
        [
            &self.insert,
            &self.finish,
            &self.resolve,
            &self.attempt,
            &self.by_key,
            &self.by_setl_id,
            &self.unresolved,
            &self.day,
            &self.touching,
            &self.cancels,
            &self.insert_refusal,
            &self.refusals,
        ]
    }
}

/// The column names, comma-separated, for a SELECT.
pub(crate) fn names(columns: &[(&str, Kind)]) -> String {
    columns
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn select(tail: &str) -> String {
    format!("SELECT {} FROM journal {tail}", names(COLUMNS))
}

/// The statements, built once.
pub(crate) static STATEMENTS: LazyLock<Statements> = LazyLock::new(|| {
    use Kind::{Bytes, Int, Text};
    Statements {
        insert: (
            "INSERT INTO journal (caller, msgid, infno, institution, insured, treatment, region, \
             digest, original_msgid, cancels_setl_id, received_at_ms, psn_no, state, attempts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', 0) \
             ON CONFLICT (caller, msgid) DO NOTHING"
                .into(),
            vec![
                Text, Text, Text, Text, Text, Text, Text, Text, Text, Text, Int, Text,
            ],
        ),
        finish: (
            "UPDATE journal SET state = $3, setl_id = $4, mdtrt_id = $5, insutype = $6, \
             med_type = $7, clr_type = $8, setl_time_ms = $9, medfee_sumamt = $10, \
             fund_pay_sumamt = $11, acct_pay = $12, psn_cash_pay = $13, error_code = $14, \
             anomalies = $15, reply_status = $16, reply_media_type = $17, reply = $18, \
             finished_at_ms = $19 \
             WHERE caller = $1 AND msgid = $2 AND state = 'pending'"
                .into(),
            vec![
                Text, Text, Text, Text, Text, Text, Text, Text, Int, Int, Int, Int, Int, Int,
                Text, Int, Text, Bytes, Int,
            ],
        ),
        resolve: (
            "UPDATE journal SET state = $3, resolved_at_ms = $4 \
             WHERE caller = $1 AND msgid = $2 \
             AND (state = 'pending' OR state = 'unknown' OR (state = 'done' AND $3 = 'reversed'))"
                .into(),
            vec![Text, Text, Text, Int],
        ),
        attempt: (
            "UPDATE journal SET attempts = attempts + 1 WHERE caller = $1 AND msgid = $2 \
             RETURNING attempts"
                .into(),
            vec![Text, Text],
        ),
        by_key: (
            select("WHERE caller = $1 AND msgid = $2"),
            vec![Text, Text],
        ),
        by_setl_id: (
            select("WHERE setl_id = $1 ORDER BY received_at_ms, caller, msgid LIMIT 1"),
            vec![Text],
        ),
        unresolved: (
            select(
                "WHERE state = 'pending' OR state = 'unknown' ORDER BY received_at_ms, caller, msgid",
            ),
            vec![],
        ),
        day: (
            select(
                "WHERE received_at_ms >= $1 AND received_at_ms < $2 \
                 ORDER BY received_at_ms, caller, msgid",
            ),
            vec![Int, Int],
        ),
        touching: (
            select(
                "WHERE (received_at_ms >= $1 AND received_at_ms < $2) \
                 OR (setl_time_ms >= $1 AND setl_time_ms < $2) \
                 OR (resolved_at_ms >= $1 AND resolved_at_ms < $2) \
                 ORDER BY received_at_ms, caller, msgid",
            ),
            vec![Int, Int],
        ),
        cancels: (
            select("WHERE cancels_setl_id = $1 ORDER BY received_at_ms, caller, msgid"),
            vec![Text],
        ),
        insert_refusal: (
            format!(
                "INSERT INTO refusals ({}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (id) DO NOTHING",
                names(REFUSAL_COLUMNS)
            ),
            vec![Text, Text, Text, Text, Text, Text, Text, Int, Int, Text, Int],
        ),
        refusals: (
            format!(
                "SELECT {} FROM refusals WHERE received_at_ms >= $1 AND received_at_ms < $2 \
                 ORDER BY received_at_ms, id",
                names(REFUSAL_COLUMNS)
            ),
            vec![Int, Int],
        ),
    }
});

/// The statement in SQLite's placeholder syntax (`$3` → `?3`).
pub(crate) fn for_sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}

/// Milliseconds since the Unix epoch, for `applied_at_ms`.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn placeholders_count_matches_kinds() {
        for (sql, kinds) in STATEMENTS.all() {
            let highest = (1..=40)
                .rev()
                .find(|n| sql.contains(&format!("${n}")))
                .unwrap_or(0);
            assert_eq!(highest, kinds.len(), "{sql}");
            assert!(!for_sqlite(sql).contains('$'));
        }
    }

    #[test]
    fn migrations_are_ordered_and_planned() {
        for (index, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i64::try_from(index).unwrap() + 1);
        }
        assert_eq!(
            MIGRATIONS.last().map(|m| m.version),
            Some(crate::SCHEMA_VERSION)
        );
        assert_eq!(pending_migrations(&[]).unwrap().len(), MIGRATIONS.len());
        assert_eq!(
            pending_migrations(&[(1, "0001_journal".into())])
                .unwrap()
                .len(),
            MIGRATIONS.len() - 1
        );
        let all: Vec<(i64, String)> = MIGRATIONS
            .iter()
            .map(|m| (m.version, m.name.to_owned()))
            .collect();
        assert!(pending_migrations(&all).unwrap().is_empty());
        assert!(matches!(
            pending_migrations(&[(99, "future".into())]),
            Err(LedgerError::Corrupt(_))
        ));
        assert!(matches!(
            pending_migrations(&[(1, "renamed".into())]),
            Err(LedgerError::Corrupt(_))
        ));
    }

    #[test]
    fn migration_sql_uses_only_portable_types() {
        // Bytes are each backend's own type; a migration both take as it
        // is can use neither.
        for m in MIGRATIONS {
            for (backend, sql, foreign) in [
                ("sqlite", m.sqlite, "BYTEA"),
                ("postgres", m.postgres, "BLOB"),
            ] {
                let upper = sql.to_uppercase();
                for banned in [
                    foreign,
                    "SERIAL",
                    "JSONB",
                    "TIMESTAMP",
                    "NUMERIC",
                    "REAL",
                    "DOUBLE",
                ] {
                    assert!(
                        !upper.contains(banned),
                        "{} ({backend}) uses {banned}",
                        m.name
                    );
                }
            }
        }
    }
}
