//! Upgrading a ledger written by an earlier build, on both backends: a
//! database at schema version 4 (as the build before the journal kept the
//! person number left it) is migrated to the current version when opened;
//! its rows stay readable, without a `psn_no`, and new rows keep theirs; its
//! replies, stored as hex text until migration 6, stay so and read back as
//! the same bytes (one that is not hex is still reported corrupt), while new
//! replies are stored as bytes; the secondary indexes become partial.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::{entry, finish, raw_exec, raw_i64, unique};
use ledger::{Begin, Key, Ledger, PsnNo, State};

both!(a_version_4_database_is_migrated_and_its_rows_stay_valid);

/// The migrations of schema version 4, as that build shipped them.
const VERSION_4: [(i64, &str, &str); 4] = [
    (
        1,
        "0001_journal",
        include_str!("../src/migrations/0001_journal.sql"),
    ),
    (
        2,
        "0002_refusals",
        include_str!("../src/migrations/0002_refusals.sql"),
    ),
    (
        3,
        "0003_clearing",
        include_str!("../src/migrations/0003_clearing.sql"),
    ),
    (
        4,
        "0004_supervision",
        include_str!("../src/migrations/0004_supervision.sql"),
    ),
];

/// Makes the database at `url` what a version-4 build left: its tables, its
/// `schema_migrations`, a pending row, an unknown one, a done one whose reply
/// is every byte value in upper-case hex, and a done one whose reply text is
/// not hex (no `psn_no` column).
async fn version_4_database(url: &str, caller: &str) {
    let every_byte: String = (0..=255u8).map(|b| format!("{b:02X}")).collect();
    raw_exec(
        url,
        "CREATE TABLE schema_migrations (version BIGINT NOT NULL PRIMARY KEY, \
         name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)",
    )
    .await;
    for (version, name, sql) in VERSION_4 {
        raw_exec(url, sql).await;
        raw_exec(
            url,
            &format!(
                "INSERT INTO schema_migrations (version, name, applied_at_ms) \
                 VALUES ({version}, '{name}', 1)"
            ),
        )
        .await;
    }
    raw_exec(
        url,
        &format!(
            "INSERT INTO journal (caller, msgid, infno, institution, insured, treatment, region, \
             digest, received_at_ms, state, attempts) VALUES \
             ('{caller}', 'old-pending', '2207', '{caller}', '130600', '110105', '130000', \
              'ab', 10, 'pending', 0); \
             INSERT INTO journal (caller, msgid, infno, institution, insured, treatment, region, \
             digest, received_at_ms, state, error_code, anomalies, reply_status, \
             reply_media_type, reply_hex, finished_at_ms, attempts) VALUES \
             ('{caller}', 'old-unknown', '2304', '{caller}', '130600', '110105', '130000', \
              'cd', 20, 'unknown', 5040, '', 504, 'application/json', '7b7d', 21, 2); \
             INSERT INTO journal (caller, msgid, infno, institution, insured, treatment, region, \
             digest, received_at_ms, state, setl_id, setl_time_ms, anomalies, reply_status, \
             reply_media_type, reply_hex, finished_at_ms, attempts) VALUES \
             ('{caller}', 'old-done', '2207', '{caller}', '130600', '110105', '130000', \
              'ef', 30, 'done', 'S-{caller}', 31, '', 200, 'application/xml', '{every_byte}', 32, 0), \
             ('{caller}', 'old-not-hex', '2207', '{caller}', '130600', '110105', '130000', \
              'ef', 40, 'done', NULL, NULL, '', 200, 'application/xml', '7g', 42, 0)"
        ),
    )
    .await;
}

async fn a_version_4_database_is_migrated_and_its_rows_stay_valid(url: &str) {
    if let Some(path) = url.strip_prefix("sqlite://") {
        // The earlier build made the file; its folder exists.
        std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
    }
    let caller = unique("H");
    version_4_database(url, &caller).await;
    assert_eq!(
        raw_i64(url, "SELECT max(version) FROM schema_migrations").await,
        4
    );

    let ledger = Ledger::open(url).await.unwrap();
    assert_eq!(
        raw_i64(url, "SELECT max(version) FROM schema_migrations").await,
        ledger::SCHEMA_VERSION
    );
    assert_eq!(ledger::SCHEMA_VERSION, 6);
    let partial_indexes = if url.starts_with("sqlite://") {
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'journal' \
         AND sql LIKE '%WHERE%'"
    } else {
        "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() \
         AND tablename = 'journal' AND indexdef LIKE '%WHERE%'"
    };
    assert_eq!(raw_i64(url, partial_indexes).await, 5);
    assert_eq!(
        raw_i64(
            url,
            "SELECT count(*) FROM journal WHERE reply_hex IS NOT NULL AND reply IS NULL"
        )
        .await,
        3,
        "the replies of version 4 are left as they were"
    );
    assert_eq!(
        raw_i64(url, "SELECT count(*) FROM journal WHERE psn_no IS NULL").await,
        4,
        "the rows of version 4 have no psn_no"
    );

    // The old rows read back, without a person number; recovery still finds them.
    let unresolved = ledger.unresolved().await.unwrap();
    let old: Vec<(&str, State, bool)> = unresolved
        .iter()
        .filter(|e| e.new.key.caller == caller)
        .map(|e| (e.new.key.msgid.as_str(), e.state, e.new.psn_no.is_none()))
        .collect();
    assert_eq!(
        old,
        [
            ("old-pending", State::Pending, true),
            ("old-unknown", State::Unknown, true)
        ]
    );
    let unknown = ledger
        .get(&Key::new(caller.clone(), "old-unknown"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unknown.attempts, 2);
    assert_eq!(unknown.reply.map(|r| r.bytes), Some(b"{}".to_vec()));
    let done = ledger
        .get(&Key::new(caller.clone(), "old-done"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        done.reply.map(|r| r.bytes),
        Some((0..=255u8).collect::<Vec<u8>>())
    );
    // Found through the partial index of settlement ids.
    let found = ledger.by_setl_id(&format!("S-{caller}")).await.unwrap();
    assert_eq!(found.map(|e| e.new.key.msgid), Some("old-done".to_string()));
    let not_hex = ledger.get(&Key::new(caller.clone(), "old-not-hex")).await;
    assert!(
        matches!(not_hex, Err(ledger::LedgerError::Corrupt(_))),
        "{not_hex:?}"
    );
    // And they go on through their lifecycle.
    let pending = Key::new(caller.clone(), "old-pending");
    ledger
        .finish(&pending, finish(State::Done, 30))
        .await
        .unwrap();
    ledger
        .resolve(&unknown.new.key, State::Reversed, 40)
        .await
        .unwrap();
    assert_eq!(
        ledger.get(&pending).await.unwrap().unwrap().new.psn_no,
        None
    );
    assert_eq!(
        raw_i64(
            url,
            &format!(
                "SELECT count(*) FROM journal WHERE caller = '{caller}' AND msgid = 'old-pending' \
                 AND reply IS NOT NULL AND reply_hex IS NULL"
            )
        )
        .await,
        1,
        "a reply written now is stored as bytes"
    );

    // A new row keeps its person number.
    let mut new = entry(&caller, "new", 50);
    new.psn_no = Some(PsnNo::new("13000000000012345678").unwrap());
    assert_eq!(ledger.begin(new.clone()).await.unwrap(), Begin::Fresh);
    let read = ledger.get(&new.key).await.unwrap().unwrap();
    assert_eq!(read.new.psn_no, new.psn_no);
    assert_eq!(
        read.new.psn_no.as_ref().map(PsnNo::as_str),
        Some("13000000000012345678")
    );
    drop(ledger);

    // Opening again migrates nothing more.
    let again = Ledger::open(url).await.unwrap();
    assert_eq!(
        raw_i64(url, "SELECT count(*) FROM schema_migrations").await,
        ledger::SCHEMA_VERSION
    );
    assert_eq!(
        again.get(&new.key).await.unwrap().unwrap().new.psn_no,
        new.psn_no
    );
}
