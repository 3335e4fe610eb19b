//! What clearing keeps beside the journal — statements, verdicts, closed
//! days — run for real on both backends: a temporary SQLite file and a
//! throw-away PostgreSQL schema (skipped, loudly, when
//! `JJJ_TEST_POSTGRES_URL` is not set).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use ledger::{ClosedDay, Ledger, LedgerError, StoredStatement, Verdict};

both!(
    a_closed_day_refuses_every_change,
    checks_refuse_bad_input,
    ping_writes
);

fn statement(day: &str, admdvs: &str, body: &str) -> StoredStatement {
    StoredStatement {
        day: day.into(),
        admdvs: admdvs.into(),
        uploaded_by: format!("P{admdvs}"),
        uploaded_at_ms: 1_764_115_200_000,
        digest: "ab".repeat(32),
        rows: 2,
        body: body.into(),
    }
}

fn verdict(day: &str, setl_id: &str, flag: &str) -> Verdict {
    Verdict {
        admdvs: "110000".into(),
        setl_id: setl_id.into(),
        day: day.into(),
        cnfm_flag: flag.into(),
        mdtrt_id: None,
        memo: Some("重复收费".into()),
        by: "P110000".into(),
        at_ms: 1_764_115_200_000,
    }
}

async fn a_closed_day_refuses_every_change(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    let day = "2026-11-26";
    ledger
        .put_statement(statement(day, "110000", "first"))
        .await
        .unwrap();
    // A new upload replaces the earlier one while the day is open.
    ledger
        .put_statement(statement(day, "110000", "second, corrected"))
        .await
        .unwrap();
    ledger
        .put_statement(statement(day, "130000", "hebei"))
        .await
        .unwrap();
    let stored = ledger.statements(day).await.unwrap();
    let bodies: Vec<(&str, &str)> = stored
        .iter()
        .map(|s| (s.admdvs.as_str(), s.body.as_str()))
        .collect();
    assert_eq!(
        bodies,
        vec![("110000", "second, corrected"), ("130000", "hebei")]
    );
    assert!(ledger.statements("2026-11-27").await.unwrap().is_empty());
    // Verdicts: the latest stands; a roll-back is flag 0.
    ledger.put_verdict(verdict(day, "S1", "2")).await.unwrap();
    ledger.put_verdict(verdict(day, "S2", "1")).await.unwrap();
    ledger.put_verdict(verdict(day, "S1", "0")).await.unwrap();
    let flags: Vec<(String, String)> = ledger
        .verdicts(day)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.setl_id, v.cnfm_flag))
        .collect();
    assert_eq!(
        flags,
        vec![("S1".into(), "0".into()), ("S2".into(), "1".into())]
    );
    // Close once; then nothing changes.
    assert!(ledger.closed_day(day).await.unwrap().is_none());
    let closed = ClosedDay {
        day: day.into(),
        closed_by: "O0001".into(),
        closed_at_ms: 1_764_201_600_000,
        digest: "cd".repeat(32),
        report: "{\"status\": \"closed\"}".into(),
    };
    ledger.close_day(closed.clone()).await.unwrap();
    assert_eq!(ledger.closed_day(day).await.unwrap(), Some(closed.clone()));
    let again = ClosedDay {
        closed_by: "O0002".into(),
        ..closed.clone()
    };
    assert!(matches!(
        ledger.close_day(again).await,
        Err(LedgerError::Conflict(_))
    ));
    assert!(matches!(
        ledger.put_statement(statement(day, "110000", "late")).await,
        Err(LedgerError::Conflict(_))
    ));
    assert!(matches!(
        ledger.put_verdict(verdict(day, "S1", "1")).await,
        Err(LedgerError::Conflict(_))
    ));
    assert_eq!(ledger.statements(day).await.unwrap(), stored);
    assert_eq!(ledger.closed_day(day).await.unwrap(), Some(closed));
    // Another day is still open; and it all survives reopening.
    ledger
        .put_statement(statement("2026-11-27", "110000", "next"))
        .await
        .unwrap();
    drop(ledger);
    let ledger = Ledger::open(url).await.unwrap();
    assert_eq!(ledger.statements(day).await.unwrap().len(), 2);
    assert!(ledger.closed_day(day).await.unwrap().is_some());
    assert!(ledger.closed_day("2026-11-27").await.unwrap().is_none());
    // The closed days and when, from a day on (what makes a row late).
    assert_eq!(
        ledger.closed_since("2026-11-01").await.unwrap(),
        vec![(day.to_owned(), 1_764_201_600_000)]
    );
    assert!(ledger.closed_since("2026-11-27").await.unwrap().is_empty());
}

async fn checks_refuse_bad_input(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    assert!(matches!(
        ledger
            .put_statement(statement("26-11-2026", "110000", "x"))
            .await,
        Err(LedgerError::Invalid(_))
    ));
    assert!(matches!(
        ledger.put_verdict(verdict("2026-11-26", "S1", "3")).await,
        Err(LedgerError::Invalid(_))
    ));
    assert!(matches!(
        ledger
            .put_verdict(verdict("2026-11-26", "S\u{1}", "1"))
            .await,
        Err(LedgerError::Invalid(_))
    ));
}

async fn ping_writes(url: &str) {
    let ledger = Ledger::open(url).await.unwrap();
    ledger.ping().await.unwrap();
    ledger.ping().await.unwrap();
}
