//! A real crash: a child process journals entries, prints that they were
//! acknowledged, and aborts (no destructors, no orderly shutdown). The parent
//! reopens the ledger: every acknowledged entry is there, the unfinished ones
//! are listed for recovery.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{entry, finish, unique};
use ledger::{Key, Ledger, State};

const URL_VAR: &str = "JJJ_LEDGER_CRASH_URL";
const CALLER_VAR: &str = "JJJ_LEDGER_CRASH_CALLER";

/// The child's part; a no-op unless the parent set the variables.
#[test]
fn crash_child() {
    let (Ok(url), Ok(caller)) = (std::env::var(URL_VAR), std::env::var(CALLER_VAR)) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ledger = Ledger::open(&url).await.unwrap();
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let ledger = ledger.clone();
                let new = entry(&caller, &format!("m{i:02}"), i);
                tokio::spawn(async move { ledger.begin(new).await.unwrap() })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        for i in 0..20 {
            let key = Key::new(caller.clone(), format!("m{i:02}"));
            ledger.finish(&key, finish(State::Done, 100)).await.unwrap();
        }
        println!("CHILD-ACKNOWLEDGED");
    });
    std::process::abort();
}

fn crash_then_recover(url: &str) {
    let caller = unique("H");
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(URL_VAR, url)
        .env(CALLER_VAR, &caller)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("CHILD-ACKNOWLEDGED"),
        "child did not get through: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "the child was meant to abort");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ledger = Ledger::open(url).await.unwrap();
        let unresolved: Vec<String> = ledger
            .unresolved()
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.new.key.caller == caller)
            .map(|e| e.new.key.msgid)
            .collect();
        let expected: Vec<String> = (20..40).map(|i| format!("m{i:02}")).collect();
        assert_eq!(unresolved, expected);
        for i in 0..20 {
            let stored = ledger
                .by_msgid(&caller, &format!("m{i:02}"))
                .await
                .unwrap()
                .expect("acknowledged entry");
            assert_eq!(stored.state, State::Done);
        }
    });
}

#[test]
fn sqlite_survives_an_abort() {
    let db = common::SqliteDb::new();
    crash_then_recover(&db.url);
}

#[test]
fn postgres_survives_an_abort() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(schema) = runtime.block_on(common::PgSchema::create()) else {
        return;
    };
    crash_then_recover(&schema.url);
    drop(runtime);
}
