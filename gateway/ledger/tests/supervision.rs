//! What supervision keeps beside the journal, on both backends: the fact
//! and the day's count written in the same transaction as the journal's
//! finish (so no crash separates an answered settlement from what the
//! windows need), nothing written when the finish does not take, nothing
//! added by a repeat, bad parts left out without failing the finish, and a
//! bill recorded later.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::{entry, finish, unique};
use ledger::{DailyCount, Key, Ledger, LedgerError, Money, Observed, State, SupervisionEvent};

both!(
    a_finish_keeps_its_fact_and_count_in_one_write,
    a_finish_that_does_not_take_keeps_nothing,
    bad_supervision_parts_never_fail_the_finish,
    a_bill_is_recorded_later,
);

const PERSON: &str = "5f2b0c6e1d7a4b3c9e8f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d";

fn observed(id: &str, at_ms: i64, institution: &str, fen: i64) -> Observed {
    Observed {
        event: SupervisionEvent {
            id: id.into(),
            at_ms,
            kind: "settlement".into(),
            person_key: Some(PERSON.into()),
            institution: institution.into(),
            insured: Some("110000".into()),
            treatment: Some("130100".into()),
            msgid: Some(format!("M{at_ms}")),
            mdtrt_id: Some("MD1".into()),
            setl_id: Some(format!("S{at_ms}")),
            med_type: Some("outpatient".into()),
            amount: Money::from_fen(fen),
            invono: Some("INV1".into()),
            bill: None,
            drugs: None,
            begin_ms: None,
        },
        count: Some(DailyCount {
            institution: institution.into(),
            day: "2026-11-26".into(),
            settlements: 1,
            amount: Money::from_fen(fen).unwrap(),
        }),
    }
}

/// The events of `institution` kept, and its count on 2026-11-26.
async fn kept(ledger: &Ledger, institution: &str) -> (Vec<SupervisionEvent>, Option<(i64, i64)>) {
    let events = ledger
        .supervision_events(0)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.institution == institution)
        .collect();
    let count = ledger
        .settlement_counts("2026-11-26")
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.institution == institution && c.day == "2026-11-26")
        .map(|c| (c.settlements, c.amount.fen()));
    (events, count)
}

async fn a_finish_keeps_its_fact_and_count_in_one_write(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    let institution = unique("I");
    let mut total = 0;
    for (n, fen) in [(1_i64, 12_345_i64), (2, 100)] {
        let at = 1_000 + n;
        ledger
            .begin(entry(&caller, &format!("M{n}"), at))
            .await
            .unwrap();
        let done = finish(State::Done, at + 1);
        let seen = observed(&format!("e{n}"), at, &institution, fen);
        let key = Key::new(&caller, format!("M{n}"));
        ledger
            .finish_observed(&key, done.clone(), Some(seen.clone()))
            .await
            .unwrap();
        total += fen;
        // An identical repeat of the finish is a no-op: nothing is added.
        ledger
            .finish_observed(&key, done, Some(seen))
            .await
            .unwrap();
    }
    let (events, count) = kept(&ledger, &institution).await;
    assert_eq!(
        events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["e1", "e2"]
    );
    assert_eq!(events[0].amount, Money::from_fen(12_345));
    assert_eq!(events[0].person_key.as_deref(), Some(PERSON));
    assert_eq!(count, Some((2, total)));
    // Read back after reopening: it was committed with the journal.
    drop(ledger);
    let ledger = Ledger::open(url).await.unwrap();
    assert_eq!(kept(&ledger, &institution).await.0.len(), 2);
    let entry = ledger.get(&Key::new(&caller, "M1")).await.unwrap().unwrap();
    assert_eq!(entry.state, State::Done);
}

async fn a_finish_that_does_not_take_keeps_nothing(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    let institution = unique("I");
    // Never begun: the finish is a conflict, and supervision keeps nothing.
    let missing = ledger
        .finish_observed(
            &Key::new(&caller, "nowhere"),
            finish(State::Done, 2_000),
            Some(observed("lost", 2_000, &institution, 500)),
        )
        .await;
    assert!(
        matches!(missing, Err(LedgerError::Conflict(_))),
        "{missing:?}"
    );
    // Finished once, then finished differently: the second is refused and adds nothing.
    ledger.begin(entry(&caller, "M1", 3_000)).await.unwrap();
    let key = Key::new(&caller, "M1");
    ledger
        .finish_observed(
            &key,
            finish(State::Done, 3_001),
            Some(observed("first", 3_000, &institution, 700)),
        )
        .await
        .unwrap();
    let again = ledger
        .finish_observed(
            &key,
            finish(State::Refused, 3_002),
            Some(observed("second", 3_002, &institution, 900)),
        )
        .await;
    assert!(matches!(again, Err(LedgerError::Conflict(_))), "{again:?}");
    let (events, count) = kept(&ledger, &institution).await;
    assert_eq!(
        events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["first"]
    );
    assert_eq!(count, Some((1, 700)));
}

async fn bad_supervision_parts_never_fail_the_finish(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    let institution = unique("I");
    ledger.begin(entry(&caller, "M1", 4_000)).await.unwrap();
    let mut bad = observed("bad", 4_000, &institution, 300);
    bad.event.person_key = Some("not a hex key".into());
    if let Some(count) = &mut bad.count {
        count.day = "26/11/2026".into();
    }
    let key = Key::new(&caller, "M1");
    ledger
        .finish_observed(&key, finish(State::Done, 4_001), Some(bad))
        .await
        .unwrap();
    assert_eq!(ledger.get(&key).await.unwrap().unwrap().state, State::Done);
    let (events, count) = kept(&ledger, &institution).await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(count, None);
}

async fn a_bill_is_recorded_later(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let caller = unique("H");
    let institution = unique("I");
    for (n, at) in [(1, 9_000_i64), (2, 7_000)] {
        ledger
            .begin(entry(&caller, &format!("M{n}"), at))
            .await
            .unwrap();
        ledger
            .finish_observed(
                &Key::new(&caller, format!("M{n}")),
                finish(State::Done, at + 1),
                Some(observed(&format!("b{n}"), at, &institution, 100)),
            )
            .await
            .unwrap();
    }
    let bill = "0123456789abcdef0123456789abcdef";
    ledger.set_supervision_bill("b2", bill).await.unwrap();
    let (events, _) = kept(&ledger, &institution).await;
    let billed: Vec<_> = events
        .iter()
        .map(|e| (e.id.as_str(), e.bill.as_deref()))
        .collect();
    assert_eq!(billed, [("b2", Some(bill)), ("b1", None)]);
    // Checked like every write: no control characters, not empty.
    assert!(matches!(
        ledger.set_supervision_bill("b1", "").await,
        Err(LedgerError::Invalid(_))
    ));
}
