#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

//! Start-up recovery of the journal with real processes: a gateway starting
//! on a ledger it shares with (what looks like) another live gateway reverses
//! only orphans — calls received before it started that nothing can still be
//! forwarding — and leaves the other gateway's calls in flight alone. Its
//! 2601s name the person each reversed call named, as the journal kept it.

mod harness;

use harness::*;
use ledger::{Answered, Finish, Key, Ledger, NewEntry, PsnNo, Reply, State};
use std::time::{Duration, Instant};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn key(name: &str) -> Key {
    Key::new(BEIJING_HOSPITAL, format!("{BEIJING_HOSPITAL}{name}"))
}

/// The person number the settlements here name (not the Hebei platform's own
/// for the fixture's patient, who is named by ID card: a platform takes the
/// psn_no the settlement named, or its own, on a 2601).
const PSN_NO: &str = "13060000000000000042";

/// Journals a pending outpatient settlement routed to Hebei, received at
/// `received_at_ms`, naming the person `psn_no` (`None`: journalled by a
/// gateway before the ledger kept person numbers).
async fn pending(ledger: &Ledger, name: &str, received_at_ms: i64, psn_no: Option<&str>) -> Key {
    let key = key(name);
    let begun = ledger
        .begin(NewEntry {
            key: key.clone(),
            infno: "2207".into(),
            institution: BEIJING_HOSPITAL.into(),
            insured: "130600".into(),
            treatment: "110105".into(),
            region: "130000".into(),
            digest: format!("{:064x}", received_at_ms),
            original_msgid: None,
            cancels_setl_id: None,
            psn_no: psn_no.map(|n| PsnNo::new(n).unwrap()),
            received_at_ms,
        })
        .await
        .unwrap();
    assert_eq!(begun, ledger::Begin::Fresh);
    key
}

fn finish(state: State, setl_id: Option<&str>) -> Finish {
    Finish {
        state,
        answered: Answered {
            setl_id: setl_id.map(str::to_owned),
            mdtrt_id: None,
            insutype: None,
            med_type: None,
            clr_type: None,
            setl_time_ms: None,
            medfee_sumamt: None,
            fund_pay_sumamt: None,
            acct_pay: None,
            psn_cash_pay: None,
            error_code: None,
            anomalies: Vec::new(),
        },
        reply: Reply {
            status: if state == State::Done { 200 } else { 504 },
            media_type: "application/json".into(),
            bytes: b"{}".to_vec(),
            finished_at_ms: now_ms(),
        },
    }
}

async fn state_of(ledger: &Ledger, key: &Key) -> (State, u32) {
    let entry = ledger.get(key).await.unwrap().expect("journalled");
    (entry.state, entry.attempts)
}

async fn readyz(client: &TestClient, world: &World) -> u16 {
    client
        .try_send("GET", &world.url("/readyz"), Vec::new())
        .await
        .map(|a| a.status)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_reverses_orphans_and_leaves_a_live_gateways_young_calls_alone() {
    let mut world = World::start("recovery", Settings::default());
    // The gateway restarts below on a ledger prepared while it is down.
    let _ = world.gateway.child.kill();
    let _ = world.gateway.child.wait();
    let config_path = world.scratch.path("gateway.toml");
    let mut text = std::fs::read_to_string(&config_path).unwrap();
    text.push_str(&format!("\n[ledger]\nurl = \"sqlite://{LEDGER_FILE}\"\n"));
    std::fs::write(&config_path, text).unwrap();
    let config = gateway::config::Config::load(&config_path).unwrap();
    let orphan_ms = gateway::journal::orphan_age(&config).as_millis() as i64;
    let ledger = ledger_open(&world).await;

    // The old orphan's settlement reached the Hebei platform and was
    // committed there before its gateway died: the crash left it pending.
    let old_msgid = key("000000000000000001").msgid;
    let mut settlement: serde_json::Value =
        serde_json::from_str(&fixture("2207-request.json")).unwrap();
    settlement["msgid"] = old_msgid.as_str().into();
    settlement["input"]["data"]["psn_no"] = PSN_NO.into();
    let hebei = format!("https://127.0.0.1:{}{NATIONAL}", world.platform_ports[2]);
    let platform = TestClient::new(&world.scratch.path("certs"), "gateway");
    let settled = platform
        .post(&hebei, serde_json::to_vec(&settlement).unwrap())
        .await;
    assert_eq!(
        settled.infcode(),
        0,
        "{}",
        String::from_utf8_lossy(&settled.body)
    );
    let data = world.scratch.path("sandbox-data");
    let at_platform = sandbox_settlement(&data, "130000", &old_msgid).expect("committed");
    assert_eq!(at_platform.undone, None);

    // What the ledger holds as the gateway starts. "Young" entries reach the
    // orphan age `young` after now: another live gateway may be forwarding them.
    let young = 8_000;
    let now = now_ms();
    let old = pending(
        &ledger,
        "000000000000000001",
        now - orphan_ms - 60_000,
        Some(PSN_NO),
    )
    .await;
    let answered = pending(
        &ledger,
        "000000000000000002",
        now - orphan_ms + young,
        Some(PSN_NO),
    )
    .await;
    let abandoned = pending(
        &ledger,
        "000000000000000003",
        now - orphan_ms + young,
        Some(PSN_NO),
    )
    .await;
    // Journalled before the ledger kept person numbers: reversed with "-"
    // (it committed nothing at the platform, which acknowledges that).
    let unknown = pending(&ledger, "000000000000000004", now - 1_000, None).await;
    ledger
        .finish(&unknown, finish(State::Unknown, None))
        .await
        .unwrap();
    let young_orphan_at = Instant::now() + Duration::from_millis(young as u64);

    world.gateway = Process::start(
        &["serve", "--config", &config_path.display().to_string()],
        1,
    );
    // A call received after the start (by another replica, say): never
    // start-up recovery's, however long it stays pending.
    let later = pending(&ledger, "000000000000000005", now_ms(), Some(PSN_NO)).await;
    // The other gateway answers its call in flight.
    tokio::time::sleep(Duration::from_millis(500)).await;
    ledger
        .finish(&answered, finish(State::Done, Some("S1")))
        .await
        .unwrap();

    // The unknown one is reversed at once, while the young ones are awaited
    // (and /readyz says not ready meanwhile).
    let client = world.client(BEIJING_HOSPITAL);
    let deadline = young_orphan_at - Duration::from_millis(2_000);
    while state_of(&ledger, &unknown).await.0 != State::Reversed {
        assert!(
            Instant::now() < deadline,
            "the unknown entry was not reversed at once"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The platforms' reachability is probed every 2 s: then only recovery holds readiness back.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    if Instant::now() + Duration::from_millis(500) < young_orphan_at {
        assert_eq!(
            readyz(&client, &world).await,
            503,
            "ready before the young calls reached the orphan age"
        );
    }
    assert_eq!(state_of(&ledger, &abandoned).await, (State::Pending, 0));

    let deadline = young_orphan_at + Duration::from_secs(20);
    while readyz(&client, &world).await != 200 {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        Instant::now() + Duration::from_millis(200) >= young_orphan_at,
        "ready before the young calls reached the orphan age"
    );

    let (state, attempts) = state_of(&ledger, &old).await;
    assert_eq!(state, State::Reversed, "an old orphan is reversed");
    assert!(attempts >= 1);
    // At the platform too, by the gateway's own 2601, which named the person
    // the settlement named (the platform refuses a 2601 naming another).
    let at_platform = sandbox_settlement(&data, "130000", &old_msgid).expect("committed");
    assert_eq!(
        at_platform.undone,
        Some(contracts::statement::RowState::Reversed)
    );
    assert!(
        at_platform
            .undone_by
            .as_deref()
            .is_some_and(|by| by.starts_with("JJJGW")),
        "{:?}",
        at_platform.undone_by
    );
    assert_eq!(at_platform.request_psn_no.as_deref(), Some(PSN_NO));
    assert_eq!(at_platform.undone_psn_no.as_deref(), Some(PSN_NO));
    assert_eq!(
        state_of(&ledger, &answered).await,
        (State::Done, 0),
        "the live gateway's call, answered, was reversed (or a reversal attempted)"
    );
    assert_eq!(
        state_of(&ledger, &abandoned).await.0,
        State::Reversed,
        "a young call still pending at the orphan age is an orphan"
    );
    assert_eq!(state_of(&ledger, &unknown).await.0, State::Reversed);
    assert_eq!(
        state_of(&ledger, &later).await,
        (State::Pending, 0),
        "a call received after the start was touched by start-up recovery"
    );
}
