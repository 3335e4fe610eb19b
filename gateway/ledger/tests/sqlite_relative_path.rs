//! `sqlite://relative/path` is relative to the working directory at open, and
//! stays the same file when the working directory changes later. (Its own
//! test binary: it changes the process's working directory.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{entry, unique};
use ledger::{Begin, Ledger};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_path_is_fixed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let ledger = Ledger::open("sqlite://data/journal/ledger.db")
        .await
        .unwrap();
    assert!(dir.path().join("data/journal/ledger.db").is_file());
    let new = entry(&unique("H"), "m", 1);
    assert_eq!(ledger.begin(new.clone()).await.unwrap(), Begin::Fresh);
    std::env::set_current_dir(elsewhere.path()).unwrap();
    assert!(ledger.get(&new.key).await.unwrap().is_some());
    assert!(!elsewhere.path().join("data").exists());
}
