//! SQLite under a full disk and a read-only file system: `Unavailable`,
//! promptly, never a panic; what was acknowledged stays readable, and the
//! ledger works again once there is room.
//!
//! The disk tests mount a small tmpfs, which needs root (CAP_SYS_ADMIN); where
//! that is not possible they print SKIPPED and the test of an unwritable path
//! (under /proc, read-only for everyone) still runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{entry, finish, unique};
use ledger::{Begin, Key, Ledger, LedgerError, State};

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if mounted {
            Some(Tmpfs { path, _dir: dir })
        } else {
            common::skipped("cannot mount a tmpfs here (needs root); this disk test did not run");
            None
        }
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(status.success(), "remount {options}");
    }

    fn url(&self) -> String {
        format!("sqlite://{}/ledger.db", self.path.display())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn big_finish(at: i64) -> ledger::Finish {
    let mut done = finish(State::Done, at);
    done.reply.bytes = vec![0x5a; 16 * 1024];
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_gives_unavailable_and_recovers_when_room_returns() {
    let Some(disk) = Tmpfs::mount("512k") else {
        return;
    };
    let ledger = Ledger::open(&disk.url()).await.unwrap();
    let caller = unique("H");
    let mut acknowledged: Vec<Key> = Vec::new();
    let mut failure = None;
    for i in 0..500 {
        let new = entry(&caller, &format!("m{i}"), i);
        let key = new.key.clone();
        let started = Instant::now();
        let result = match ledger.begin(new).await {
            Ok(Begin::Fresh) => ledger.finish(&key, big_finish(i)).await,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => acknowledged.push(key),
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "the failure took {:?}",
                    started.elapsed()
                );
                failure = Some(e);
                break;
            }
        }
    }
    let failure = failure.expect("the 512 KiB disk never filled");
    assert!(
        matches!(failure, LedgerError::Unavailable(_)),
        "{failure:?}"
    );
    eprintln!("disk full after {} entries: {failure}", acknowledged.len());
    assert!(!acknowledged.is_empty());
    // Further writes keep failing cleanly; reads still work.
    let extra = entry(&caller, "while-full", 1);
    let key = extra.key.clone();
    match ledger.begin(extra).await {
        Err(LedgerError::Unavailable(_)) => {}
        Ok(Begin::Fresh) => assert!(matches!(
            ledger.finish(&key, big_finish(1)).await,
            Err(LedgerError::Unavailable(_))
        )),
        other => panic!("unexpected {other:?}"),
    }
    for key in &acknowledged {
        let stored = ledger.get(key).await.unwrap().expect("acknowledged entry");
        assert_eq!(stored.state, State::Done);
    }
    // Room returns: the same ledger writes again, nothing was lost.
    disk.remount("size=16m");
    let after = entry(&caller, "after", 1);
    assert_eq!(ledger.begin(after.clone()).await.unwrap(), Begin::Fresh);
    ledger.finish(&after.key, big_finish(2)).await.unwrap();
    drop(ledger);
    let reopened = Ledger::open(&disk.url()).await.unwrap();
    for key in acknowledged.iter().chain([&after.key]) {
        assert!(reopened.get(key).await.unwrap().is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_file_system_gives_unavailable() {
    let Some(disk) = Tmpfs::mount("4m") else {
        return;
    };
    // An existing ledger on a file system that became read-only.
    let caller = unique("H");
    {
        let ledger = Ledger::open(&disk.url()).await.unwrap();
        ledger.begin(entry(&caller, "m", 1)).await.unwrap();
    }
    // Give the writer thread a moment to close the file before remounting.
    let mut remounted = false;
    for _ in 0..50 {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&disk.path)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        if status.success() {
            remounted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(remounted, "could not remount read-only");
    let started = Instant::now();
    let opened = Ledger::open(&disk.url()).await;
    assert!(
        matches!(opened, Err(LedgerError::Unavailable(_))),
        "{opened:?}"
    );
    // A new file on it cannot be created either.
    let fresh = format!("sqlite://{}/other/ledger.db", disk.path.display());
    assert!(matches!(
        Ledger::open(&fresh).await,
        Err(LedgerError::Unavailable(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
    disk.remount("rw");
}

#[tokio::test]
async fn unwritable_path_gives_unavailable() {
    // /proc is read-only for everyone, root included.
    let path = Path::new("/proc")
        .join(unique("jjj-ledger"))
        .join("ledger.db");
    let started = Instant::now();
    let opened = Ledger::open(&format!("sqlite://{}", path.display())).await;
    assert!(
        matches!(opened, Err(LedgerError::Unavailable(_))),
        "{opened:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // A directory where the file should be.
    let dir = tempfile::tempdir().unwrap();
    let opened = Ledger::open(&format!("sqlite://{}", dir.path().display())).await;
    assert!(
        matches!(opened, Err(LedgerError::Unavailable(_))),
        "{opened:?}"
    );
    assert!(matches!(
        Ledger::open("sqlite://").await,
        Err(LedgerError::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_a_database_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let opened = Ledger::open(&format!("sqlite://{}", path.display())).await;
    assert!(
        matches!(
            opened,
            Err(LedgerError::Corrupt(_)) | Err(LedgerError::Unavailable(_))
        ),
        "{opened:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_do_not_wait_behind_writes() {
    let db = common::SqliteDb::new();
    let ledger = Ledger::open(&db.url).await.unwrap();
    let caller = unique("H");
    let probe = entry(&caller, "probe", 0);
    ledger.begin(probe.clone()).await.unwrap();
    let writers: Vec<_> = (0..3000)
        .map(|i| {
            let ledger = ledger.clone();
            let new = entry(&caller, &format!("w{i}"), i);
            tokio::spawn(async move { ledger.begin(new).await.unwrap() })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        assert!(ledger.get(&probe.key).await.unwrap().is_some());
        slowest = slowest.max(started.elapsed());
    }
    for writer in writers {
        writer.await.unwrap();
    }
    eprintln!("slowest read during 3000 concurrent writes: {slowest:?}");
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
}
