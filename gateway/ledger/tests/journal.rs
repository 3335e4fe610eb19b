//! The journal's behaviour, run for real on both backends: every scenario is
//! one async function taking the ledger URL, instantiated once for a
//! temporary SQLite file and once for a throw-away PostgreSQL schema
//! (skipped, loudly, when `JJJ_TEST_POSTGRES_URL` is not set).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::HashMap;

use common::{entry, finish, money, raw_exec, raw_i64, unique};
use ledger::{
    Answered, Begin, Entry, Finish, Key, Ledger, LedgerError, Money, PsnNo, Reply, State,
};

both!(
    transitions_allowed,
    transitions_refused,
    round_trip_every_field,
    concurrent_repeats_are_idempotent,
    reused_key_with_other_digest,
    unresolved_survive_a_dropped_ledger,
    group_commit_batches,
    reopen_keeps_everything,
    migrations_are_idempotent,
    lookups,
    attempts_are_counted,
    invalid_input_is_refused_before_writing,
    corrupt_rows_are_reported,
    ping_answers,
);

fn is_conflict<T: std::fmt::Debug>(result: Result<T, LedgerError>) -> bool {
    matches!(result, Err(LedgerError::Conflict(_)))
}

async fn get(ledger: &Ledger, key: &Key) -> Entry {
    ledger.get(key).await.unwrap().expect("entry present")
}

async fn transitions_allowed(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");

    // pending → done | refused | unknown
    for (index, state) in [State::Done, State::Refused, State::Unknown]
        .into_iter()
        .enumerate()
    {
        let new = entry(&caller, &format!("finish-{index}"), 1_000);
        let key = new.key.clone();
        assert_eq!(ledger.begin(new).await.unwrap(), Begin::Fresh);
        let pending = get(&ledger, &key).await;
        assert_eq!(pending.state, State::Pending);
        assert_eq!(pending.reply, None);
        assert_eq!(pending.reply, None);
        ledger.finish(&key, finish(state, 2_000)).await.unwrap();
        let finished = get(&ledger, &key).await;
        assert_eq!(finished.state, state);
        assert_eq!(finished.reply, Some(finish(state, 2_000).reply));
        assert_eq!(finished.reply.map(|r| r.finished_at_ms), Some(2_000));
        assert_eq!(finished.resolved_at_ms, None);
    }

    // unknown | pending → reversed | confirmed; done → reversed
    let cases = [
        (Some(State::Unknown), State::Reversed),
        (Some(State::Unknown), State::Confirmed),
        (None, State::Reversed),
        (None, State::Confirmed),
        (Some(State::Done), State::Reversed),
    ];
    for (index, (finished_as, target)) in cases.into_iter().enumerate() {
        let new = entry(&caller, &format!("resolve-{index}"), 1_000);
        let key = new.key.clone();
        ledger.begin(new).await.unwrap();
        if let Some(state) = finished_as {
            ledger.finish(&key, finish(state, 2_000)).await.unwrap();
        }
        ledger.resolve(&key, target, 3_000).await.unwrap();
        let resolved = get(&ledger, &key).await;
        assert_eq!(resolved.state, target, "{finished_as:?} → {target}");
        assert_eq!(resolved.resolved_at_ms, Some(3_000));
        assert_eq!(resolved.reply.is_some(), finished_as.is_some());
        // Repeating the resolution is a harmless no-op.
        ledger.resolve(&key, target, 4_000).await.unwrap();
        assert_eq!(get(&ledger, &key).await.resolved_at_ms, Some(3_000));
        assert!(ledger
            .unresolved()
            .await
            .unwrap()
            .iter()
            .all(|e| e.new.key != key));
    }
}

async fn transitions_refused(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    let key_of = |name: &str| Key::new(caller.clone(), name);

    // Nothing to finish, resolve or count.
    let absent = key_of("absent");
    assert!(is_conflict(
        ledger.finish(&absent, finish(State::Done, 1)).await
    ));
    assert!(is_conflict(
        ledger.resolve(&absent, State::Reversed, 1).await
    ));
    assert!(is_conflict(ledger.note_attempt(&absent).await));
    assert_eq!(ledger.get(&absent).await.unwrap(), None);

    // finish only to done | refused | unknown; resolve only to reversed | confirmed.
    ledger.begin(entry(&caller, "p", 1)).await.unwrap();
    let pending = key_of("p");
    for state in [State::Pending, State::Reversed, State::Confirmed] {
        assert!(is_conflict(ledger.finish(&pending, finish(state, 2)).await));
    }
    for state in [State::Pending, State::Done, State::Refused, State::Unknown] {
        assert!(is_conflict(ledger.resolve(&pending, state, 2).await));
    }
    assert_eq!(get(&ledger, &pending).await.state, State::Pending);

    // A finished entry is never overwritten; the identical finish is a no-op.
    for (name, state) in [
        ("done", State::Done),
        ("refused", State::Refused),
        ("unknown", State::Unknown),
    ] {
        ledger.begin(entry(&caller, name, 1)).await.unwrap();
        let key = key_of(name);
        ledger.finish(&key, finish(state, 10)).await.unwrap();
        let before = get(&ledger, &key).await;
        ledger.finish(&key, finish(state, 10)).await.unwrap();
        for other in [State::Done, State::Refused, State::Unknown] {
            assert!(is_conflict(ledger.finish(&key, finish(other, 11)).await));
        }
        let mut changed_reply = finish(state, 10);
        changed_reply.reply.bytes = b"other".to_vec();
        assert!(is_conflict(ledger.finish(&key, changed_reply).await));
        assert_eq!(get(&ledger, &key).await, before);
    }

    // done → confirmed is refused (only a reversal may follow a success).
    assert!(is_conflict(
        ledger.resolve(&key_of("done"), State::Confirmed, 20).await
    ));
    // refused → anything is refused.
    for state in [State::Reversed, State::Confirmed] {
        assert!(is_conflict(
            ledger.resolve(&key_of("refused"), state, 20).await
        ));
    }
    // reversed ↛ confirmed, confirmed ↛ reversed, and nothing finishes a resolved entry.
    ledger
        .resolve(&key_of("unknown"), State::Reversed, 20)
        .await
        .unwrap();
    assert!(is_conflict(
        ledger
            .resolve(&key_of("unknown"), State::Confirmed, 21)
            .await
    ));
    assert!(is_conflict(
        ledger
            .finish(&key_of("unknown"), finish(State::Done, 21))
            .await
    ));
    ledger
        .resolve(&pending, State::Confirmed, 20)
        .await
        .unwrap();
    assert!(is_conflict(
        ledger.resolve(&pending, State::Reversed, 21).await
    ));
    assert!(is_conflict(
        ledger.finish(&pending, finish(State::Done, 21)).await
    ));
    assert_eq!(get(&ledger, &pending).await.state, State::Confirmed);
    assert_eq!(
        get(&ledger, &key_of("unknown")).await.state,
        State::Reversed
    );

    // A repeat of a resolved request is answered from the journal.
    match ledger.begin(entry(&caller, "p", 1)).await.unwrap() {
        Begin::Finished(found) => assert_eq!(found.state, State::Confirmed),
        other => panic!("expected Finished, got {other:?}"),
    }
}

async fn round_trip_every_field(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    let mut new = entry(&caller, "20240101120000123456789012345a", i64::MIN + 1);
    new.infno = "2601".into();
    new.institution = "北京协和医院-H11010100001".into();
    new.insured = String::new();
    new.digest = "ABCDEF0123456789".repeat(4);
    new.original_msgid = Some("H1101012024010112000012345678".into());
    new.cancels_setl_id = Some("SETL-0001".into());
    // Letters and a region's own characters, at the 30-character limit.
    new.psn_no = Some(PsnNo::new(format!("BJ京A{}", "0".repeat(26))).unwrap());
    let key = new.key.clone();
    assert_eq!(ledger.begin(new.clone()).await.unwrap(), Begin::Fresh);

    let done = Finish {
        state: State::Done,
        answered: Answered {
            setl_id: Some("S1".into()),
            mdtrt_id: None,
            insutype: Some("390".into()),
            med_type: Some("14".into()),
            clr_type: None,
            setl_time_ms: Some(i64::MAX),
            medfee_sumamt: money(Money::MAX_ABS_FEN),
            fund_pay_sumamt: money(-Money::MAX_ABS_FEN),
            acct_pay: money(0),
            psn_cash_pay: None,
            error_code: Some(u16::MAX),
            anomalies: vec!["medfee_balance".into(), "psn_part".into()],
        },
        reply: Reply {
            status: 599,
            media_type: "application/json; charset=utf-8".into(),
            bytes: (0..=255u8).chain(0..=255u8).collect(),
            finished_at_ms: 42,
        },
    };
    ledger.finish(&key, done.clone()).await.unwrap();
    ledger.note_attempt(&key).await.unwrap();

    let expected = Entry {
        new,
        state: State::Done,
        answered: done.answered,
        reply: Some(done.reply),
        resolved_at_ms: None,
        attempts: 1,
    };
    assert_eq!(get(&ledger, &key).await, expected);
    assert_eq!(
        ledger.by_msgid(&key.caller, &key.msgid).await.unwrap(),
        Some(expected.clone())
    );

    // An empty reply and no anomalies survive too.
    let second = entry(&caller, "empty", 5);
    ledger.begin(second.clone()).await.unwrap();
    let mut empty = finish(State::Refused, 6);
    empty.reply.bytes = Vec::new();
    empty.reply.media_type = String::new();
    empty.answered.error_code = Some(0);
    ledger.finish(&second.key, empty).await.unwrap();
    let read = get(&ledger, &second.key).await;
    assert_eq!(
        read.reply.as_ref().map(|r| r.bytes.as_slice()),
        Some(&[][..])
    );
    assert_eq!(read.answered.anomalies, Vec::<String>::new());
    assert_eq!(read.reply.map(|r| r.media_type), Some(String::new()));

    // A message that names no person journals none.
    let mut nobody = entry(&caller, "nobody", 7);
    nobody.psn_no = None;
    ledger.begin(nobody.clone()).await.unwrap();
    assert_eq!(get(&ledger, &nobody.key).await.new.psn_no, None);
}

async fn concurrent_repeats_are_idempotent(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    let new = entry(&caller, "same-msgid", 7);
    let key = new.key.clone();

    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let ledger = ledger.clone();
            let new = new.clone();
            tokio::spawn(async move { ledger.begin(new).await.unwrap() })
        })
        .collect();
    let mut fresh = 0;
    let mut in_flight = 0;
    for task in tasks {
        match task.await.unwrap() {
            Begin::Fresh => fresh += 1,
            Begin::InFlight => in_flight += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((fresh, in_flight), (1, 99));

    let done = finish(State::Done, 8);
    ledger.finish(&key, done.clone()).await.unwrap();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let ledger = ledger.clone();
            let new = new.clone();
            tokio::spawn(async move { ledger.begin(new).await.unwrap() })
        })
        .collect();
    let stored = get(&ledger, &key).await;
    for task in tasks {
        match task.await.unwrap() {
            Begin::Finished(found) => {
                assert_eq!(found.reply.as_ref(), Some(&done.reply));
                assert_eq!(found, stored);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ledger.day(i64::MIN, i64::MAX).await.unwrap().len(), 1);
}

async fn reused_key_with_other_digest(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    let first = entry(&caller, "m1", 1);
    let mut other = first.clone();
    other.digest = "ffff".into();
    assert_eq!(ledger.begin(first.clone()).await.unwrap(), Begin::Fresh);
    assert_eq!(ledger.begin(other.clone()).await.unwrap(), Begin::Reused);
    assert_eq!(ledger.begin(first.clone()).await.unwrap(), Begin::InFlight);
    ledger
        .finish(&first.key, finish(State::Done, 2))
        .await
        .unwrap();
    assert_eq!(ledger.begin(other).await.unwrap(), Begin::Reused);
    assert!(matches!(
        ledger.begin(first.clone()).await.unwrap(),
        Begin::Finished(_)
    ));
    // The stored entry keeps the first digest.
    assert_eq!(get(&ledger, &first.key).await.new.digest, first.digest);
}

async fn unresolved_survive_a_dropped_ledger(url: &str) {
    let caller = unique("H");
    let keys: Vec<Key> = (1..=5)
        .map(|i| Key::new(caller.clone(), format!("m{i}")))
        .collect();
    {
        let ledger = Ledger::open(url).await.unwrap();
        for (index, key) in keys.iter().enumerate() {
            let at = 100 * (i64::try_from(index).unwrap() + 1);
            ledger.begin(entry(&caller, &key.msgid, at)).await.unwrap();
        }
        ledger
            .finish(&keys[1], finish(State::Unknown, 250))
            .await
            .unwrap();
        ledger
            .finish(&keys[2], finish(State::Done, 350))
            .await
            .unwrap();
        ledger
            .finish(&keys[3], finish(State::Unknown, 450))
            .await
            .unwrap();
        ledger
            .resolve(&keys[3], State::Reversed, 460)
            .await
            .unwrap();
        // keys[0] and keys[4] stay pending: the "crash" drops the ledger mid-flight.
        drop(ledger);
    }
    let ledger = Ledger::open(url).await.unwrap();
    let unresolved = ledger.unresolved().await.unwrap();
    let found: Vec<(String, State)> = unresolved
        .iter()
        .filter(|e| e.new.key.caller == caller)
        .map(|e| (e.new.key.msgid.clone(), e.state))
        .collect();
    assert_eq!(
        found,
        vec![
            ("m1".to_string(), State::Pending),
            ("m2".to_string(), State::Unknown),
            ("m5".to_string(), State::Pending),
        ]
    );
    ledger
        .resolve(&keys[0], State::Reversed, 900)
        .await
        .unwrap();
    ledger
        .resolve(&keys[1], State::Confirmed, 900)
        .await
        .unwrap();
    assert_eq!(ledger.note_attempt(&keys[4]).await.unwrap(), 1);
    ledger
        .resolve(&keys[4], State::Reversed, 900)
        .await
        .unwrap();
    assert!(ledger
        .unresolved()
        .await
        .unwrap()
        .iter()
        .all(|e| e.new.key.caller != caller));
}

async fn group_commit_batches(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    let before = ledger.commits();
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let ledger = ledger.clone();
            let new = entry(&caller, &format!("m{i}"), i);
            tokio::spawn(async move { ledger.begin(new).await.unwrap() })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Begin::Fresh);
    }
    let commits = ledger.commits() - before;
    eprintln!(
        "{}: 1000 concurrent begins took {commits} commits",
        ledger.backend_name()
    );
    assert!(
        commits >= 2,
        "1000 begins cannot fit one batch of {}",
        ledger::MAX_BATCH
    );
    assert!(
        commits <= 200,
        "group commit did not batch: {commits} commits"
    );
    assert_eq!(ledger.day(0, 1000).await.unwrap().len(), 1000);
}

async fn reopen_keeps_everything(url: &str) {
    let caller = unique("H");
    let snapshot = {
        let ledger = Ledger::open(url).await.unwrap();
        for i in 0..60i64 {
            let new = entry(&caller, &format!("m{i:02}"), 10_000 + i);
            let key = new.key.clone();
            ledger.begin(new).await.unwrap();
            match i % 5 {
                0 => {}
                1 => ledger
                    .finish(&key, finish(State::Done, 20_000 + i))
                    .await
                    .unwrap(),
                2 => ledger
                    .finish(&key, finish(State::Refused, 20_000 + i))
                    .await
                    .unwrap(),
                3 => {
                    ledger
                        .finish(&key, finish(State::Unknown, 20_000 + i))
                        .await
                        .unwrap();
                    ledger.note_attempt(&key).await.unwrap();
                    ledger
                        .resolve(&key, State::Reversed, 30_000 + i)
                        .await
                        .unwrap();
                }
                _ => ledger
                    .finish(&key, finish(State::Unknown, 20_000 + i))
                    .await
                    .unwrap(),
            }
        }
        ledger.day(10_000, 10_060).await.unwrap()
    };
    assert_eq!(snapshot.len(), 60);
    let ledger = Ledger::open(url).await.unwrap();
    assert_eq!(ledger.day(10_000, 10_060).await.unwrap(), snapshot);
    let counts = snapshot.iter().fold(HashMap::new(), |mut counts, e| {
        *counts.entry(e.state).or_insert(0) += 1;
        counts
    });
    assert_eq!(counts[&State::Pending], 12);
    assert_eq!(counts[&State::Reversed], 12);
}

async fn migrations_are_idempotent(url: &str) {
    let first = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    first.begin(entry(&caller, "m", 1)).await.unwrap();
    drop(first);
    // Again, and several at once.
    let again = Ledger::open(url).await.unwrap();
    let (a, b, c) = tokio::join!(Ledger::open(url), Ledger::open(url), Ledger::open(url));
    a.unwrap();
    b.unwrap();
    c.unwrap();
    assert_eq!(
        raw_i64(url, "SELECT count(*) FROM schema_migrations").await,
        ledger::SCHEMA_VERSION,
        "one row per migration"
    );
    assert_eq!(
        raw_i64(url, "SELECT max(version) FROM schema_migrations").await,
        ledger::SCHEMA_VERSION
    );
    assert!(again.get(&Key::new(caller, "m")).await.unwrap().is_some());
}

async fn lookups(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    let base = 1_700_000_000_000i64;
    for (msgid, at) in [
        ("b", base),
        ("a", base),
        ("c", base + 99),
        ("d", base + 100),
    ] {
        ledger.begin(entry(&caller, msgid, at)).await.unwrap();
    }
    let setl = unique("SETL");
    let mut settled = finish(State::Done, base + 200);
    settled.answered.setl_id = Some(setl.clone());
    ledger
        .finish(&Key::new(caller.clone(), "c"), settled.clone())
        .await
        .unwrap();
    ledger
        .finish(&Key::new(caller.clone(), "d"), settled)
        .await
        .unwrap();

    // The earliest received entry carrying the settlement id.
    let found = ledger.by_setl_id(&setl).await.unwrap().unwrap();
    assert_eq!(found.new.key.msgid, "c");
    assert_eq!(ledger.by_setl_id("no-such-setl").await.unwrap(), None);
    assert_eq!(
        ledger
            .by_msgid(&caller, "a")
            .await
            .unwrap()
            .unwrap()
            .new
            .key
            .msgid,
        "a"
    );
    assert_eq!(ledger.by_msgid(&caller, "zz").await.unwrap(), None);
    assert_eq!(ledger.by_msgid("other-caller", "a").await.unwrap(), None);

    // [from, to), ordered by reception time then key.
    let day: Vec<String> = ledger
        .day(base, base + 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.new.key.caller == caller)
        .map(|e| e.new.key.msgid)
        .collect();
    assert_eq!(day, ["a", "b", "c"]);
    let next: Vec<String> = ledger
        .day(base + 100, base + 101)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.new.key.msgid)
        .collect();
    assert_eq!(next, ["d"]);
    assert!(ledger.day(base + 101, base + 100).await.unwrap().is_empty());
}

async fn attempts_are_counted(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    let new = entry(&caller, "m", 1);
    ledger.begin(new.clone()).await.unwrap();
    ledger
        .finish(&new.key, finish(State::Unknown, 2))
        .await
        .unwrap();
    for expected in 1..=3 {
        assert_eq!(ledger.note_attempt(&new.key).await.unwrap(), expected);
    }
    assert_eq!(get(&ledger, &new.key).await.attempts, 3);
    // Concurrent attempts are all counted.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let ledger = ledger.clone();
            let key = new.key.clone();
            tokio::spawn(async move { ledger.note_attempt(&key).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (4..=23).collect::<Vec<u32>>());
}

async fn invalid_input_is_refused_before_writing(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    let good = entry(&caller, "m", 1);
    let bad_entries = [
        NewEntryEdit::Infno("220"),
        NewEntryEdit::Infno("22a7"),
        NewEntryEdit::Caller(""),
        NewEntryEdit::Msgid(""),
        NewEntryEdit::MsgidLen(129),
        NewEntryEdit::Digest("not-hex"),
        NewEntryEdit::Digest(""),
        NewEntryEdit::Institution("H1\n"),
        NewEntryEdit::Region(""),
    ];
    for edit in bad_entries {
        let bad = edit.apply(good.clone());
        assert!(
            matches!(ledger.begin(bad).await, Err(LedgerError::Invalid(_))),
            "{edit:?} was accepted"
        );
    }
    assert_eq!(ledger.get(&good.key).await.unwrap(), None);
    // A person number is checked when it is made: it cannot reach a write unchecked.
    for bad in [
        String::new(),
        "1".repeat(31),
        "1300\n0001".into(),
        "13\u{0}0".into(),
    ] {
        assert!(
            matches!(PsnNo::new(bad), Err(LedgerError::Invalid(_))),
            "a bad psn_no was accepted"
        );
    }

    ledger.begin(good.clone()).await.unwrap();
    let mut bad_finishes = Vec::new();
    for anomaly in ["", "a,b", "with space", &"x".repeat(65)] {
        let mut bad = finish(State::Done, 2);
        bad.answered.anomalies = vec!["fine".into(), anomaly.to_string()];
        bad_finishes.push(bad);
    }
    let mut bad = finish(State::Done, 2);
    bad.reply.media_type = "text/plain\r\nX: y".into();
    bad_finishes.push(bad);
    let mut bad = finish(State::Done, 2);
    bad.answered.setl_id = Some(String::new());
    bad_finishes.push(bad);
    for bad in bad_finishes {
        assert!(matches!(
            ledger.finish(&good.key, bad).await,
            Err(LedgerError::Invalid(_))
        ));
    }
    assert_eq!(get(&ledger, &good.key).await.state, State::Pending);
    assert!(matches!(
        Ledger::open("mysql://nope").await,
        Err(LedgerError::Invalid(_))
    ));
}

#[derive(Debug, Clone, Copy)]
enum NewEntryEdit {
    Infno(&'static str),
    Caller(&'static str),
    Msgid(&'static str),
    MsgidLen(usize),
    Digest(&'static str),
    Institution(&'static str),
    Region(&'static str),
}

impl NewEntryEdit {
    fn apply(self, mut e: ledger::NewEntry) -> ledger::NewEntry {
        match self {
            NewEntryEdit::Infno(v) => e.infno = v.into(),
            NewEntryEdit::Caller(v) => e.key.caller = v.into(),
            NewEntryEdit::Msgid(v) => e.key.msgid = v.into(),
            NewEntryEdit::MsgidLen(n) => e.key.msgid = "m".repeat(n),
            NewEntryEdit::Digest(v) => e.digest = v.into(),
            NewEntryEdit::Institution(v) => e.institution = v.into(),
            NewEntryEdit::Region(v) => e.region = v.into(),
        }
        e
    }
}

async fn corrupt_rows_are_reported(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    let mut tampering = vec![
        (
            "infno",
            "UPDATE journal SET infno = 'abcd' WHERE msgid = 'infno'",
        ),
        (
            "money",
            "UPDATE journal SET medfee_sumamt = 100000000000001 WHERE msgid = 'money'",
        ),
        (
            "reply-missing",
            "UPDATE journal SET reply = NULL WHERE msgid = 'reply-missing'",
        ),
        (
            "pending-with-reply",
            "UPDATE journal SET state = 'pending' WHERE msgid = 'pending-with-reply'",
        ),
        (
            "attempts",
            "UPDATE journal SET attempts = 5000000000 WHERE msgid = 'attempts'",
        ),
        (
            "status",
            "UPDATE journal SET reply_status = 70000 WHERE msgid = 'status'",
        ),
        (
            "resolved-without-time",
            "UPDATE journal SET state = 'reversed' WHERE msgid = 'resolved-without-time'",
        ),
        (
            "psn-no-long",
            "UPDATE journal SET psn_no = '1234567890123456789012345678901' WHERE msgid = 'psn-no-long'",
        ),
        (
            "psn-no-empty",
            "UPDATE journal SET psn_no = '' WHERE msgid = 'psn-no-empty'",
        ),
    ];
    if url.starts_with("sqlite://") {
        // SQLite's dynamic typing lets a wrong type reach a column.
        tampering.push((
            "type",
            "UPDATE journal SET received_at_ms = 'yesterday' WHERE msgid = 'type'",
        ));
        tampering.push((
            "reply-text",
            "UPDATE journal SET reply = '{}' WHERE msgid = 'reply-text'",
        ));
    }
    for (msgid, _) in &tampering {
        let new = entry(&caller, msgid, 1);
        ledger.begin(new.clone()).await.unwrap();
        ledger
            .finish(&new.key, finish(State::Done, 2))
            .await
            .unwrap();
    }
    for (msgid, sql) in &tampering {
        raw_exec(url, &format!("{sql} AND caller = '{caller}'")).await;
        let key = Key::new(caller.clone(), *msgid);
        let read = ledger.get(&key).await;
        assert!(
            matches!(read, Err(LedgerError::Corrupt(_))),
            "{msgid}: {read:?}"
        );
        // A repeat of the request meets the corrupt row: reported, not answered.
        let repeat = ledger.begin(entry(&caller, msgid, 1)).await;
        assert!(
            matches!(repeat, Err(LedgerError::Corrupt(_))),
            "{msgid}: {repeat:?}"
        );
    }
    // A corrupt pending row makes recovery fail loudly rather than skip it.
    assert!(matches!(
        ledger.unresolved().await,
        Err(LedgerError::Corrupt(_))
    ));
    // The ledger goes on working for other keys.
    let fine = entry(&caller, "fine", 3);
    assert_eq!(ledger.begin(fine).await.unwrap(), Begin::Fresh);
}

async fn ping_answers(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    ledger.ping().await.unwrap();
    let clone = ledger.clone();
    drop(ledger);
    clone.ping().await.unwrap();
    assert!(format!("{clone:?}").contains("sqlite") || format!("{clone:?}").contains("postgres"));
}

#[test]
fn states_round_trip_their_text() {
    for state in State::ALL {
        assert_eq!(State::parse(state.as_str()), Some(state));
        assert_eq!(state.to_string(), state.as_str());
    }
    assert_eq!(State::parse("Pending"), None);
    assert_eq!(State::parse(""), None);
    assert_eq!(
        State::ALL.map(State::as_str),
        [
            "pending",
            "done",
            "refused",
            "unknown",
            "reversed",
            "confirmed"
        ]
    );
}
