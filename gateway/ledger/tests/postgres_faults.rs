//! PostgreSQL unreachable, lost, hung and shared: `Unavailable` within
//! seconds, reconnection on the next call, and two ledgers on one database
//! never both answering `Fresh` for one key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{entry, finish, raw_i64, unique, Mode, PgSchema, Proxy};
use ledger::{Begin, Key, Ledger, LedgerError, State};

fn assert_unavailable<T: std::fmt::Debug>(
    result: Result<T, LedgerError>,
    started: Instant,
    within: Duration,
) {
    eprintln!("after {:?}: {result:?}", started.elapsed());
    assert!(
        matches!(result, Err(LedgerError::Unavailable(_))),
        "expected Unavailable, got {result:?}"
    );
    assert!(
        started.elapsed() < within,
        "took {:?}, more than {within:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn closed_port_gives_unavailable_quickly() {
    // Needs no server: nothing listens on port 1.
    let started = Instant::now();
    let opened = Ledger::open("postgres://postgres@127.0.0.1:1/test").await;
    assert_unavailable(opened, started, Duration::from_secs(3));
}

#[tokio::test]
async fn unreachable_host_gives_unavailable_within_seconds() {
    // A black-holed address (TEST-NET-1): the connect timeout decides.
    let started = Instant::now();
    let opened = Ledger::open("postgres://postgres@192.0.2.1:5432/test").await;
    assert_unavailable(opened, started, Duration::from_secs(5));
}

#[tokio::test]
async fn bad_urls_are_invalid() {
    assert!(matches!(
        Ledger::open("postgres://postgres@127.0.0.1:5432/test?sslmode=bogus").await,
        Err(LedgerError::Invalid(_))
    ));
    assert!(matches!(
        Ledger::open("postgres://postgres@127.0.0.1:1/test?sslmode=require").await,
        Err(LedgerError::Invalid(_))
    ));
    assert!(matches!(
        Ledger::open("postgres://postgres@127.0.0.1:1/test?connect_timeout=x").await,
        Err(LedgerError::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_lost_and_back_reconnects_by_itself() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let proxy = Proxy::start(schema.target()).await;
    let ledger = Ledger::open(&schema.url_via(proxy.port)).await.unwrap();
    let caller = unique("H");
    let first = entry(&caller, "before", 1);
    assert_eq!(ledger.begin(first.clone()).await.unwrap(), Begin::Fresh);
    assert!(ledger.get(&first.key).await.unwrap().is_some());
    ledger.ping().await.unwrap();

    // The server goes away: every call answers Unavailable, promptly.
    proxy.set(Mode::Down);
    let lost = entry(&caller, "while-down", 2);
    let started = Instant::now();
    assert_unavailable(
        ledger.begin(lost.clone()).await,
        started,
        Duration::from_secs(3),
    );
    let started = Instant::now();
    assert_unavailable(
        ledger.get(&first.key).await,
        started,
        Duration::from_secs(3),
    );
    let started = Instant::now();
    assert_unavailable(
        ledger.finish(&first.key, finish(State::Done, 3)).await,
        started,
        Duration::from_secs(3),
    );
    let started = Instant::now();
    assert_unavailable(ledger.ping().await, started, Duration::from_secs(3));

    // It comes back: the next calls reconnect by themselves.
    proxy.set(Mode::Up);
    assert_eq!(ledger.begin(lost.clone()).await.unwrap(), Begin::Fresh);
    ledger
        .finish(&first.key, finish(State::Done, 3))
        .await
        .unwrap();
    assert_eq!(
        ledger.get(&first.key).await.unwrap().unwrap().state,
        State::Done
    );
    ledger.ping().await.unwrap();

    // The server hangs mid-conversation: the open connections stop answering.
    proxy.set(Mode::Freeze);
    let hung = entry(&caller, "while-hung", 4);
    let started = Instant::now();
    assert_unavailable(
        ledger.begin(hung.clone()).await,
        started,
        Duration::from_secs(4),
    );
    let started = Instant::now();
    assert_unavailable(ledger.get(&lost.key).await, started, Duration::from_secs(4));
    // New connections hang too (the connect timeout decides).
    let started = Instant::now();
    assert_unavailable(
        ledger.begin(hung.clone()).await,
        started,
        Duration::from_secs(4),
    );
    let started = Instant::now();
    assert_unavailable(ledger.ping().await, started, Duration::from_secs(6));

    // A black-holed network: connections are cut, new ones never answer.
    proxy.set(Mode::Blackhole);
    for _ in 0..2 {
        let started = Instant::now();
        assert_unavailable(
            ledger.begin(hung.clone()).await,
            started,
            Duration::from_secs(4),
        );
        let started = Instant::now();
        assert_unavailable(ledger.unresolved().await, started, Duration::from_secs(4));
    }

    proxy.set(Mode::Up);
    assert_eq!(ledger.begin(hung).await.unwrap(), Begin::Fresh);
    let unresolved: Vec<String> = ledger
        .unresolved()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.new.key.msgid)
        .collect();
    assert_eq!(unresolved, ["while-down", "while-hung"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cut_mid_load_loses_nothing_acknowledged() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let proxy = Proxy::start(schema.target()).await;
    let ledger = Ledger::open(&schema.url_via(proxy.port)).await.unwrap();
    let caller = unique("H");
    // 16 writers journal key after key until a few calls have failed.
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let ledger = ledger.clone();
            let caller = caller.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut failures = 0;
                for i in 0..100_000 {
                    let new = entry(&caller, &format!("w{w}-{i}"), i);
                    match ledger.begin(new.clone()).await {
                        Ok(Begin::Fresh) => acknowledged.push(new.key),
                        Err(LedgerError::Unavailable(_)) => {
                            failures += 1;
                            if failures == 3 {
                                break;
                            }
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.set(Mode::Down);
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    proxy.set(Mode::Up);
    eprintln!("{} begins acknowledged before the cut", acknowledged.len());
    assert!(!acknowledged.is_empty());
    for key in &acknowledged {
        assert!(
            ledger.get(key).await.unwrap().is_some(),
            "acknowledged {key} is missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ledgers_on_one_database_never_both_fresh() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    // Opened at once: the migrations meet on the advisory lock.
    let (a, b) = tokio::join!(Ledger::open(&schema.url), Ledger::open(&schema.url));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        raw_i64(&schema.url, "SELECT count(*) FROM schema_migrations").await,
        ledger::SCHEMA_VERSION
    );
    let caller = unique("H");
    let keys = 300;
    let mut tasks = Vec::new();
    for round in 0..3 {
        for i in 0..keys {
            // The two instances see the keys in opposite orders.
            let j = if round % 2 == 0 { i } else { keys - 1 - i };
            for (ledger, index) in [(&a, i), (&b, j), (&a, j), (&b, i)] {
                let ledger = ledger.clone();
                let new = entry(&caller, &format!("m{index}"), index);
                tasks.push(tokio::spawn(async move {
                    (new.key.clone(), ledger.begin(new).await.unwrap())
                }));
            }
        }
    }
    let mut fresh: HashMap<Key, u32> = HashMap::new();
    for task in tasks {
        let (key, begin) = task.await.unwrap();
        match begin {
            Begin::Fresh => *fresh.entry(key).or_default() += 1,
            Begin::InFlight => {
                fresh.entry(key).or_default();
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(fresh.len(), usize::try_from(keys).unwrap());
    for (key, count) in &fresh {
        assert_eq!(*count, 1, "{key} was Fresh {count} times");
    }
    eprintln!("commits: a {}, b {}", a.commits(), b.commits());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_opens_migrate_once() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let url = schema.url.clone();
            tokio::spawn(async move { Ledger::open(&url).await })
        })
        .collect();
    for open in opens {
        open.await.unwrap().unwrap();
    }
    assert_eq!(
        raw_i64(&schema.url, "SELECT count(*) FROM schema_migrations").await,
        ledger::SCHEMA_VERSION
    );
}
