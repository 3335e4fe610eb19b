//! The refusals table and the clearing-day queries, run for real on both
//! backends: a temporary SQLite file, and a throw-away PostgreSQL schema
//! (skipped, loudly, when `JJJ_TEST_POSTGRES_URL` is not set).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::HashSet;

use common::{entry, finish, raw_exec, raw_i64, unique};
use ledger::{Key, Ledger, LedgerError, Refusal, State};

both!(
    refusals_round_trip_in_order,
    refusals_are_append_only_and_unique,
    refusals_are_checked_before_writing,
    refusals_go_through_group_commit,
    refusals_survive_reopening,
    corrupt_refusals_are_reported,
    touching_selects_by_any_of_three_times,
    cancels_of_a_settlement,
);

const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn refusal(caller: &str, at: i64) -> Refusal {
    Refusal {
        caller: caller.into(),
        msgid: Some(format!("M{at}")),
        infno: Some("2207".into()),
        institution: Some("H11010500123".into()),
        insured: Some("130600".into()),
        treatment: Some("110000".into()),
        error_code: 3002,
        http_status: 403,
        digest: DIGEST.into(),
        received_at_ms: at,
    }
}

/// The refusals of `caller` in `[from, to)`.
async fn of(ledger: &Ledger, caller: &str, from: i64, to: i64) -> Vec<ledger::RecordedRefusal> {
    ledger
        .refusals(from, to)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.refusal.caller == caller)
        .collect()
}

async fn refusals_round_trip_in_order(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    let full = refusal(&caller, 1_000);
    // A message that could not be read names nothing but its caller.
    let bare = Refusal {
        msgid: None,
        infno: None,
        institution: None,
        insured: None,
        treatment: None,
        error_code: 1001,
        http_status: 400,
        ..refusal(&caller, 500)
    };
    let later = refusal(&caller, 2_000);
    let id_full = ledger.refuse(full.clone()).await.unwrap();
    let id_bare = ledger.refuse(bare.clone()).await.unwrap();
    let id_later = ledger.refuse(later.clone()).await.unwrap();

    let read = of(&ledger, &caller, 0, 10_000).await;
    let got: Vec<(&str, &Refusal)> = read.iter().map(|r| (r.id.as_str(), &r.refusal)).collect();
    assert_eq!(
        got,
        [
            (id_bare.as_str(), &bare),
            (id_full.as_str(), &full),
            (id_later.as_str(), &later)
        ],
        "every field back, ordered by reception time"
    );
    // [from, to): the bounds.
    let window: Vec<i64> = of(&ledger, &caller, 500, 2_000)
        .await
        .iter()
        .map(|r| r.refusal.received_at_ms)
        .collect();
    assert_eq!(window, [500, 1_000]);
    assert!(of(&ledger, &caller, 2_001, 3_000).await.is_empty());
    assert!(of(&ledger, &caller, 3_000, 0).await.is_empty());
}

async fn refusals_are_append_only_and_unique(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    // The same refusal twice (a hospital repeating a bad message) is two rows.
    let one = refusal(&caller, 7);
    let a = ledger.refuse(one.clone()).await.unwrap();
    let b = ledger.refuse(one.clone()).await.unwrap();
    assert_ne!(a, b);
    let read = of(&ledger, &caller, 0, 100).await;
    assert_eq!(read.len(), 2);
    assert!(read.iter().all(|r| r.refusal == one));
    // Two ledgers on one database (two replicas) never hand out the same id.
    let other = Ledger::open(url).await.unwrap();
    let mut ids = HashSet::new();
    for i in 0..50 {
        assert!(ids.insert(ledger.refuse(refusal(&caller, 100 + i)).await.unwrap()));
        assert!(ids.insert(other.refuse(refusal(&caller, 100 + i)).await.unwrap()));
    }
    assert_eq!(of(&ledger, &caller, 100, 200).await.len(), 100);
}

async fn refusals_are_checked_before_writing(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    let bad: Vec<(&str, Refusal)> = vec![
        (
            "empty caller",
            Refusal {
                caller: String::new(),
                ..refusal(&caller, 1)
            },
        ),
        (
            "long msgid",
            Refusal {
                msgid: Some("m".repeat(129)),
                ..refusal(&caller, 1)
            },
        ),
        (
            "control character",
            Refusal {
                institution: Some("H1\n".into()),
                ..refusal(&caller, 1)
            },
        ),
        (
            "infno",
            Refusal {
                infno: Some("22070".into()),
                ..refusal(&caller, 1)
            },
        ),
        (
            "status",
            Refusal {
                http_status: 42,
                ..refusal(&caller, 1)
            },
        ),
        (
            "short digest",
            Refusal {
                digest: "0a1b".into(),
                ..refusal(&caller, 1)
            },
        ),
        (
            "upper-case digest",
            Refusal {
                digest: DIGEST.to_uppercase(),
                ..refusal(&caller, 1)
            },
        ),
    ];
    for (what, refusal) in bad {
        let result = ledger.refuse(refusal).await;
        assert!(
            matches!(result, Err(LedgerError::Invalid(_))),
            "{what}: {result:?}"
        );
    }
    assert!(of(&ledger, "", 0, 10).await.is_empty());
    assert!(of(&ledger, &caller, 0, 10).await.is_empty());
    assert_eq!(raw_i64(url, "SELECT count(*) FROM refusals").await, 0);
}

async fn refusals_go_through_group_commit(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    let before = ledger.commits();
    let tasks: Vec<_> = (0..600)
        .map(|i| {
            let ledger = ledger.clone();
            let caller = caller.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    ledger.refuse(refusal(&caller, i)).await.map(|_| ())
                } else {
                    ledger
                        .begin(entry(&caller, &format!("m{i}"), i))
                        .await
                        .map(|_| ())
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let commits = ledger.commits() - before;
    eprintln!(
        "{}: 300 refusals and 300 begins took {commits} commits",
        ledger.backend_name()
    );
    assert!(
        commits <= 150,
        "refusals were not batched with the journal's writes: {commits} commits"
    );
    assert_eq!(of(&ledger, &caller, 0, 600).await.len(), 300);
    assert_eq!(ledger.day(0, 600).await.unwrap().len(), 300);
}

async fn refusals_survive_reopening(url: &str) {
    let caller = unique("H");
    let id = {
        let ledger = Ledger::open(url).await.unwrap();
        ledger.refuse(refusal(&caller, 42)).await.unwrap()
    };
    let ledger = Ledger::open(url).await.unwrap();
    let read = of(&ledger, &caller, 0, 100).await;
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].id, id);
    assert_eq!(read[0].refusal, refusal(&caller, 42));
}

async fn corrupt_refusals_are_reported(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    // (The CHECK constraints already keep the status and code within range.)
    let mut tampering = vec![
        (1, "UPDATE refusals SET digest = 'not hex'"),
        (2, "UPDATE refusals SET infno = 'abcd'"),
        (3, "UPDATE refusals SET caller = ''"),
    ];
    if url.starts_with("sqlite://") {
        // SQLite's dynamic typing lets a wrong type reach a column.
        tampering.push((4, "UPDATE refusals SET msgid = X'ff'"));
    }
    for (at, sql) in tampering {
        ledger.refuse(refusal(&caller, at)).await.unwrap();
        raw_exec(
            url,
            &format!("{sql} WHERE caller = '{caller}' AND received_at_ms = {at}"),
        )
        .await;
        let read = ledger.refusals(at, at + 1).await;
        assert!(
            matches!(read, Err(LedgerError::Corrupt(_))),
            "{sql}: {read:?}"
        );
    }
}

async fn touching_selects_by_any_of_three_times(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    let (from, to) = (1_000_000i64, 2_000_000i64);
    // (msgid, received, finished (setl_time = finished - 5), resolved)
    let cases: [(&str, i64, Option<i64>, Option<i64>); 7] = [
        ("received-in", from, None, None),
        ("received-last-ms", to - 1, None, None),
        ("settled-in", from - 100, Some(from + 5), None),
        ("reversed-in", from - 300, Some(from - 200), Some(from + 10)),
        ("all-before", from - 500, Some(from - 400), Some(from - 1)),
        ("received-at-to", to, None, None),
        ("settled-after", from - 50, Some(to + 5), None),
    ];
    for (msgid, received, finished, resolved) in cases {
        let new = entry(&caller, msgid, received);
        ledger.begin(new.clone()).await.unwrap();
        if let Some(finished) = finished {
            ledger
                .finish(&new.key, finish(State::Done, finished))
                .await
                .unwrap();
        }
        if let Some(resolved) = resolved {
            ledger
                .resolve(&new.key, State::Reversed, resolved)
                .await
                .unwrap();
        }
    }
    let got: Vec<String> = ledger
        .touching(from, to)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.new.key.caller == caller)
        .map(|e| e.new.key.msgid)
        .collect();
    // Ordered by reception time.
    assert_eq!(
        got,
        [
            "reversed-in",
            "settled-in",
            "received-in",
            "received-last-ms"
        ]
    );
    // `day` still selects by reception time only.
    let day: Vec<String> = ledger
        .day(from, to)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.new.key.caller == caller)
        .map(|e| e.new.key.msgid)
        .collect();
    assert_eq!(day, ["received-in", "received-last-ms"]);
}

async fn cancels_of_a_settlement(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    let setl = unique("S");
    let mut settle = entry(&caller, "settle", 10);
    settle.infno = "2207".into();
    ledger.begin(settle.clone()).await.unwrap();
    for (msgid, at, names) in [
        ("cancel-2", 30, setl.as_str()),
        ("cancel-1", 20, setl.as_str()),
        ("cancel-other", 25, "another-settlement"),
    ] {
        let mut cancel = entry(&caller, msgid, at);
        cancel.infno = "2208".into();
        cancel.cancels_setl_id = Some(names.into());
        ledger.begin(cancel).await.unwrap();
    }
    ledger
        .finish(
            &Key::new(caller.clone(), "cancel-1"),
            finish(State::Refused, 21),
        )
        .await
        .unwrap();
    let got: Vec<(String, State)> = ledger
        .cancels_of(&setl)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.new.key.msgid, e.state))
        .collect();
    assert_eq!(
        got,
        [
            ("cancel-1".to_string(), State::Refused),
            ("cancel-2".to_string(), State::Pending)
        ]
    );
    assert!(ledger
        .cancels_of("nothing-cancels-this")
        .await
        .unwrap()
        .is_empty());
}
