//! The ledger as the outside world meets it, over real mutual TLS between
//! real processes: refusals journalled in the ledger's refusals table,
//! `GET /v1/settlements/{setl_id}` by role, and `jjj-gateway ledger export`
//! while the gateway runs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod harness;

use harness::*;
use std::process::Command;
use std::time::{Duration, Instant};

const FIXTURE_MSGID: &str = "H11010500123202611250930150011";
/// The person number the 2207 fixture names.
const FIXTURE_PSN_NO: &str = "13000000000012345678";
const CANCEL_MSGID: &str = "H11010500123202611250930150012";

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Waits until the ledger holds at least `count` refusals (they are written
/// in the background), then returns them all.
async fn refusals(ledger: &ledger::Ledger, count: usize) -> Vec<ledger::RecordedRefusal> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = ledger.refusals(0, i64::MAX).await.unwrap();
        if rows.len() >= count || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_of_identified_callers_are_journalled() {
    let world = ledger_world("refusals", Settings::default());
    let url = world.url(NATIONAL);
    // Another hospital's code in the message: 403, journalled.
    let request = fixture("2207-request.json").into_bytes();
    let answer = world
        .client(BEIJING_HOSPITAL_2)
        .post(&url, request.clone())
        .await;
    assert_eq!((answer.status, answer.infcode()), (403, 3002));
    // Bytes that are no message: 400, journalled with nothing but the caller.
    let garbage = b"{\"infno\": \"2207\", \"msgid\": ".to_vec();
    let answer = world
        .client(BEIJING_HOSPITAL)
        .post(&url, garbage.clone())
        .await;
    assert_eq!((answer.status, answer.infcode()), (400, 1001));
    // A certificate that names no configured caller: refused, not journalled.
    let answer = world.client(STRANGER).post(&url, request.clone()).await;
    assert_eq!((answer.status, answer.infcode()), (403, 3001));

    let ledger = ledger_open(&world).await;
    let mut rows = refusals(&ledger, 2).await;
    // Give a wrongly journalled third refusal the time to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    rows = if rows.len() == 2 {
        ledger.refusals(0, i64::MAX).await.unwrap()
    } else {
        rows
    };
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let violation = rows
        .iter()
        .map(|r| &r.refusal)
        .find(|r| r.error_code == 3002)
        .expect("the 403 is journalled");
    assert_eq!(violation.caller, BEIJING_HOSPITAL_2);
    assert_eq!(violation.http_status, 403);
    assert_eq!(violation.msgid.as_deref(), Some(FIXTURE_MSGID));
    assert_eq!(violation.infno.as_deref(), Some("2207"));
    assert_eq!(violation.institution.as_deref(), Some(BEIJING_HOSPITAL));
    assert_eq!(violation.insured.as_deref(), Some("130600"));
    assert_eq!(violation.treatment.as_deref(), Some("110000"));
    assert_eq!(violation.digest, sha256_hex(&request));
    let received = violation.received_at_ms;
    let now = contracts::DateTime::now().unix_millis();
    assert!(received <= now && received > now - 60_000, "{received}");
    let malformed = rows
        .iter()
        .map(|r| &r.refusal)
        .find(|r| r.error_code == 1001)
        .expect("the 400 is journalled");
    assert_eq!(malformed.caller, BEIJING_HOSPITAL);
    assert_eq!(malformed.http_status, 400);
    assert_eq!(malformed.msgid, None);
    assert_eq!(malformed.digest, sha256_hex(&garbage));

    // No personal data reached the ledger: the fixture's names and ID number.
    let file = std::fs::read(world.scratch.path(LEDGER_FILE)).unwrap();
    let wal = std::fs::read(world.scratch.path(&format!("{LEDGER_FILE}-wal"))).unwrap_or_default();
    for secret in ["李收费", "130602197805123013", "13000000000012345678"] {
        for bytes in [&file, &wal] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} is in the ledger"
            );
        }
    }

    let metrics = world.client(OFFICER).get(&world.url("/metrics")).await;
    let metrics = String::from_utf8(metrics.body).unwrap();
    assert!(
        metrics.contains("jjj_refusals_journalled_total 2\n"),
        "{metrics}"
    );
    assert!(metrics.contains("jjj_refusals_dropped_total{reason=\"queue_full\"} 0\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlements_are_shown_to_platforms_and_officers_only() {
    let world = ledger_world("settlements", Settings::default());
    let url = world.url(NATIONAL);
    // A Beijing hospital settles a Baoding patient: Beijing treats, Hebei insures.
    let answer = world
        .client(BEIJING_HOSPITAL)
        .post(&url, fixture("2207-request.json").into_bytes())
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let setl_id = answer.json()["output"]["setlinfo"]["setl_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A Tianjin hospital settles a Baoding patient: Beijing is neither region.
    let tianjin = fixture("2207-request.json")
        .replacen(
            "\"fixmedins_code\": \"H11010500123\"",
            &format!("\"fixmedins_code\": \"{TIANJIN_HOSPITAL}\""),
            1,
        )
        .replacen(
            "\"mdtrtarea_admvs\": \"110000\"",
            "\"mdtrtarea_admvs\": \"120000\"",
            1,
        );
    let answer = world
        .client(TIANJIN_HOSPITAL)
        .post(&url, tianjin.into_bytes())
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let tianjin_setl_id = answer.json()["output"]["setlinfo"]["setl_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(setl_id, tianjin_setl_id);

    let path = |id: &str| world.url(&format!("/v1/settlements/{id}"));
    // The officer sees it, with every field.
    let answer = world.client(OFFICER).get(&path(&setl_id)).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let json = answer.json();
    assert_eq!(json["setl_id"], setl_id.as_str());
    assert_eq!(json["msgid"], FIXTURE_MSGID);
    assert_eq!(json["infno"], "2207");
    assert_eq!(json["state"], "done");
    assert_eq!(json["institution"], BEIJING_HOSPITAL);
    assert_eq!(json["insuplc_admdvs"], "130600");
    assert_eq!(json["mdtrtarea_admvs"], "110000");
    assert_eq!(json["insutype"], "310");
    assert_eq!(json["med_type"], "11");
    // Amounts as exact yuan strings, not numbers.
    assert_eq!(json["medfee_sumamt"], "100.20");
    assert_eq!(json["fund_pay_sumamt"], "0.00");
    for key in ["acct_pay", "psn_cash_pay"] {
        let text = json[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: {json}"));
        assert!(contracts::Money::parse_yuan(text).is_ok() && text.contains('.'));
    }
    let setl_time = json["setl_time"].as_str().unwrap().to_owned();
    for key in ["setl_time", "received_at", "finished_at"] {
        let text = json[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: {json}"));
        assert!(contracts::DateTime::parse(text).is_ok(), "{key}: {text}");
    }
    assert!(json["resolved_at"].is_null());
    assert!(json["cancelled_by"].is_null());
    // The journal keeps the request's person number, for the gateway's own
    // reversals; the settlement's page does not show it.
    let entry = ledger_open(&world)
        .await
        .by_msgid(BEIJING_HOSPITAL, FIXTURE_MSGID)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        entry.new.psn_no.as_ref().map(ledger::PsnNo::as_str),
        Some(FIXTURE_PSN_NO)
    );
    assert!(json.get("psn_no").is_none(), "{json}");
    assert!(!String::from_utf8_lossy(&answer.body).contains(FIXTURE_PSN_NO));
    // The Beijing platform: the treatment region is its own.
    let answer = world.client(BEIJING_PLATFORM).get(&path(&setl_id)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["setl_id"], setl_id.as_str());
    // …but not Tianjin's settlement of a Hebei patient: exactly like an unknown id.
    let hidden = world
        .client(BEIJING_PLATFORM)
        .get(&path(&tianjin_setl_id))
        .await;
    let unknown = world
        .client(BEIJING_PLATFORM)
        .get(&path("130000999999999999999999"))
        .await;
    assert_eq!((hidden.status, hidden.infcode()), (404, 4004));
    assert_eq!((unknown.status, unknown.infcode()), (404, 4004));
    assert_eq!(hidden.json()["err_msg"], unknown.json()["err_msg"]);
    // The officer sees that one too.
    let answer = world.client(OFFICER).get(&path(&tianjin_setl_id)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["institution"], TIANJIN_HOSPITAL);
    // A hospital may not browse settlements, not even its own.
    let answer = world.client(BEIJING_HOSPITAL).get(&path(&setl_id)).await;
    assert_eq!((answer.status, answer.infcode()), (403, 3004));
    let answer = world.client(BEIJING_HOSPITAL_2).get(&path(&setl_id)).await;
    assert_eq!((answer.status, answer.infcode()), (403, 3004));
    // An unknown id, for the officer.
    let answer = world.client(OFFICER).get(&path("no-such-settlement")).await;
    assert_eq!((answer.status, answer.infcode()), (404, 4004));
    // Settlements are read, not written.
    let answer = world
        .client(OFFICER)
        .post(&path(&setl_id), Vec::new())
        .await;
    assert_eq!((answer.status, answer.infcode()), (405, 4005));

    // The hospital cancels it: the settlement names its cancel.
    let cancel = fixture("2208-request.json").replacen(
        "\"setl_id\": \"130600026112500000998877\"",
        &format!("\"setl_id\": \"{setl_id}\""),
        1,
    );
    assert!(cancel.contains(&setl_id));
    let answer = world
        .client(BEIJING_HOSPITAL)
        .post(&url, cancel.into_bytes())
        .await;
    assert_eq!(
        (answer.status, answer.infcode()),
        (200, 0),
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let answer = world.client(OFFICER).get(&path(&setl_id)).await;
    assert_eq!(answer.json()["cancelled_by"], CANCEL_MSGID);

    // The day's statement from the running gateway's ledger.
    let date = &setl_time[..10];
    let config = world.scratch.path("gateway.toml").display().to_string();
    let output = Command::new(BIN)
        .args([
            "ledger", "export", "--config", &config, "--date", date, "--format", "csv",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let csv = String::from_utf8(output.stdout).unwrap();
    let mut reader = contracts::statement::Reader::new(csv.as_bytes()).unwrap();
    let mut rows = Vec::new();
    while let Some(row) = reader.next_row().unwrap() {
        rows.push(row);
    }
    assert_eq!(rows.len(), 3, "{csv}");
    let ours = rows
        .iter()
        .find(|r| r.setl_id.as_deref() == Some(setl_id.as_str()))
        .unwrap_or_else(|| panic!("{csv}"));
    assert_eq!(ours.msgid.as_deref(), Some(FIXTURE_MSGID));
    assert_eq!(ours.fixmedins_code, BEIJING_HOSPITAL);
    assert_eq!(ours.state, contracts::statement::RowState::Settled);
    assert_eq!(ours.setl_time.to_string(), setl_time);
    assert_eq!(
        ours.medfee_sumamt,
        Some(contracts::Money::parse_yuan("100.20").unwrap())
    );
    let cancelled = rows
        .iter()
        .find(|r| r.state == contracts::statement::RowState::Cancelled)
        .unwrap_or_else(|| panic!("{csv}"));
    assert_eq!(cancelled.setl_id.as_deref(), Some(setl_id.as_str()));
    assert_eq!(cancelled.msgid.as_deref(), Some(CANCEL_MSGID));
    assert_eq!(cancelled.omsgid.as_deref(), Some(FIXTURE_MSGID));
    assert_eq!(
        cancelled.medfee_sumamt,
        Some(contracts::Money::parse_yuan("-100.20").unwrap()),
        "{csv}"
    );
    // JSON lines into a file.
    let out = world.scratch.path("gateway.jsonl");
    let status = Command::new(BIN)
        .args([
            "ledger",
            "export",
            "--config",
            &config,
            "--date",
            date,
            "--format",
            "jsonl",
            "--out",
            &out.display().to_string(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    let line = lines
        .iter()
        .find(|l| l["setl_id"] == setl_id.as_str())
        .unwrap();
    assert_eq!(line["medfee_sumamt"], "100.20");
    assert!(line["omsgid"].is_null());
    assert_eq!(line["state"], "settled");
    // A bad date is an error, exit 2.
    let output = Command::new(BIN)
        .args([
            "ledger",
            "export",
            "--config",
            &config,
            "--date",
            "2026-13-01",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}
