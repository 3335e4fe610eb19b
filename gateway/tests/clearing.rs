//! Clearing as officers and platforms meet it, over real mutual TLS between
//! real processes: settlements through the gateway, the sandbox's own
//! statements, `jjj-gateway reconcile`, statement upload, the report API,
//! the claims exchange (3260–3262) and closing a day.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod harness;

use contracts::Money;
use harness::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn today() -> String {
    contracts::DateTime::now().date().to_string()
}

/// A 2207 of the fixture, by `hospital` in `treatment`, for a person insured in `insured`.
fn settlement(hospital: &str, treatment: &str, insured: &str, msgid: &str) -> Vec<u8> {
    let mut json: Value = serde_json::from_str(&fixture("2207-request.json")).unwrap();
    json["fixmedins_code"] = hospital.into();
    json["mdtrtarea_admvs"] = treatment.into();
    json["insuplc_admdvs"] = insured.into();
    json["msgid"] = msgid.into();
    json["input"]["data"]["mdtrt_id"] = format!("D{msgid}").into();
    serde_json::to_vec(&json).unwrap()
}

/// A platform message (3260–3262) of the fixture with `data`.
fn claims(infno: &str, platform: &str, admdvs: &str, msgid: &str, data: Value) -> Vec<u8> {
    let mut json: Value = serde_json::from_str(&fixture(&format!("{infno}-request.json"))).unwrap();
    json["fixmedins_code"] = platform.into();
    json["mdtrtarea_admvs"] = admdvs.into();
    json["insuplc_admdvs"] = admdvs.into();
    json["msgid"] = msgid.into();
    json["input"]["data"] = data;
    serde_json::to_vec(&json).unwrap()
}

/// Money from a JSON value that is a yuan string or number.
fn money(value: &Value) -> Money {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Money::parse_yuan(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn add(a: Money, b: Money) -> Money {
    a.checked_add(b).unwrap()
}

fn sub(a: Money, b: Money) -> Money {
    a.checked_sub(b).unwrap()
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_jjj-gateway")
}

/// The sandbox's statement for `admdvs` today, via the command line.
fn sandbox_statement(world: &World, admdvs: &str) -> PathBuf {
    let out = world.scratch.path(&format!("statement-{admdvs}.csv"));
    let status = Command::new(binary())
        .args([
            "sandbox",
            "--config",
            &world.scratch.path("sandbox.toml").display().to_string(),
            "--statement",
            admdvs,
            "--date",
            &today(),
            "--out",
            &out.display().to_string(),
        ])
        .status()
        .unwrap();
    assert!(status.success(), "sandbox --statement {admdvs}");
    out
}

fn reconcile(world: &World, statements: &[(&str, &Path)], out: &Path) -> (i32, String) {
    let mut args = vec![
        "reconcile".to_owned(),
        "--config".into(),
        world.scratch.path("gateway.toml").display().to_string(),
        "--date".into(),
        today(),
        "--out".into(),
        out.display().to_string(),
    ];
    for (admdvs, path) in statements {
        args.push("--statement".into());
        args.push(format!("{admdvs}={}", path.display()));
    }
    let output = Command::new(binary())
        .current_dir(world.scratch.path(""))
        .args(&args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// What the insured region owes for a settlement: funds plus personal
/// account, from the gateway's own record of it.
async fn owed(world: &World, setl_id: &str) -> Money {
    let answer = world
        .client(OFFICER)
        .get(&world.url(&format!("/v1/settlements/{setl_id}")))
        .await;
    assert_eq!(answer.status, 200);
    let json = answer.json();
    add(money(&json["fund_pay_sumamt"]), money(&json["acct_pay"]))
}

async fn settle(world: &World, hospital: &str, body: Vec<u8>) -> String {
    let answer = world
        .client(hospital)
        .post(&world.url(NATIONAL), body)
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(
        answer.infcode(),
        0,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()["output"]["setlinfo"]["setl_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_is_reconciled_cleared_disputed_and_closed() {
    let world = ledger_world("clearing", Settings::default());
    let day = today();
    let stamp = contracts::DateTime::now().to_compact();
    // Hebei's patient in Beijing; Beijing's patient in Tianjin; Hebei's patient in Tianjin.
    let a = settle(
        &world,
        BEIJING_HOSPITAL,
        settlement(
            BEIJING_HOSPITAL,
            "110000",
            "130600",
            &format!("{BEIJING_HOSPITAL}{stamp}01"),
        ),
    )
    .await;
    let b = settle(
        &world,
        TIANJIN_HOSPITAL,
        settlement(
            TIANJIN_HOSPITAL,
            "120000",
            "110105",
            &format!("{TIANJIN_HOSPITAL}{stamp}02"),
        ),
    )
    .await;
    let c = settle(
        &world,
        TIANJIN_HOSPITAL,
        settlement(
            TIANJIN_HOSPITAL,
            "120000",
            "130100",
            &format!("{TIANJIN_HOSPITAL}{stamp}03"),
        ),
    )
    .await;
    let (owed_a, owed_b, owed_c) = (
        owed(&world, &a).await,
        owed(&world, &b).await,
        owed(&world, &c).await,
    );
    assert!(owed_a.fen() > 0 && owed_b.fen() > 0 && owed_c.fen() > 0);

    // The command line, with every region's own statement from the sandbox: all matched.
    let statements: Vec<(&str, PathBuf)> = ["110000", "120000", "130000"]
        .into_iter()
        .map(|r| (r, sandbox_statement(&world, r)))
        .collect();
    let refs: Vec<(&str, &Path)> = statements.iter().map(|(r, p)| (*r, p.as_path())).collect();
    let out = world.scratch.path("report");
    let (code, printed) = reconcile(&world, &refs, &out);
    assert_eq!(code, 0, "{printed}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["matched"], true, "{report}");
    assert_eq!(report["discrepancies"].as_array().unwrap().len(), 0);
    let net = |report: &Value, admdvs: &str| {
        money(
            &report["positions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["admdvs"] == admdvs)
                .unwrap()["net"],
        )
    };
    // Positions against independent arithmetic, and their sum is zero.
    assert_eq!(net(&report, "110000"), sub(owed_a, owed_b));
    assert_eq!(net(&report, "120000"), add(owed_b, owed_c));
    assert_eq!(
        net(&report, "130000"),
        sub(Money::default(), add(owed_a, owed_c))
    );
    let xlsx = std::fs::read(out.join("report.xlsx")).unwrap();
    assert_eq!(&xlsx[..4], b"PK\x03\x04");
    let csv = String::from_utf8(std::fs::read(out.join("report.csv")).unwrap()).unwrap();
    assert!(
        csv.starts_with('\u{feff}') && csv.contains("净额头寸"),
        "{csv}"
    );

    // A tampered statement: one fen moved from the fund to cash for Beijing's patient.
    let beijing = std::fs::read_to_string(&statements[0].1).unwrap();
    let line = beijing
        .lines()
        .find(|l| l.starts_with(&b))
        .unwrap()
        .to_owned();
    let mut cells: Vec<String> = line.split(',').map(str::to_owned).collect();
    let plus_fen = |text: &str, fen: i64| {
        Money::from_fen(Money::parse_yuan(text).unwrap().fen() + fen)
            .unwrap()
            .to_yuan_string()
    };
    cells[12] = plus_fen(&cells[12], -1);
    cells[14] = plus_fen(&cells[14], 1);
    let tampered = beijing.replace(&line, &cells.join(","));
    let tampered_path = world.scratch.path("tampered.csv");
    std::fs::write(&tampered_path, &tampered).unwrap();
    let (code, printed) = reconcile(
        &world,
        &[
            ("110000", &tampered_path),
            ("120000", &statements[1].1),
            ("130000", &statements[2].1),
        ],
        &world.scratch.path("report-tampered"),
    );
    assert_eq!(code, 1, "{printed}");
    let report: Value = serde_json::from_slice(
        &std::fs::read(world.scratch.path("report-tampered/report.json")).unwrap(),
    )
    .unwrap();
    let found = report["discrepancies"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{report}");
    assert_eq!(found[0]["class"], "amount_differs");
    assert_eq!(found[0]["setl_id"], b.as_str());
    let fields: Vec<(&str, String)> = found[0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["field"].as_str().unwrap(), f["difference"].to_string()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("fund_pay_sumamt", "-0.01".to_owned()),
            ("psn_cash_pay", "0.01".to_owned())
        ]
    );
    // A malformed statement: exit 2, the line and column named.
    let broken = world.scratch.path("broken.csv");
    std::fs::write(
        &broken,
        tampered.replacen(&cells.join(","), &line.replace(",settled", ",paid"), 1),
    )
    .unwrap();
    let (code, printed) = reconcile(&world, &[("110000", &broken)], &world.scratch.path("r3"));
    assert_eq!(code, 2, "{printed}");
    assert!(
        printed.contains("column 16") && printed.contains("state"),
        "{printed}"
    );

    // Upload over the API: the platform's own region only, whole or nothing.
    let upload = |admdvs: &str| world.url(&format!("/v1/clearing/{day}/statements/{admdvs}"));
    let platform = world.client(BEIJING_PLATFORM);
    let answer = platform
        .post(&upload("110000"), std::fs::read(&broken).unwrap())
        .await;
    assert_eq!(answer.status, 400);
    assert!(answer.json()["err_msg"]
        .as_str()
        .unwrap()
        .contains("column 16"));
    let answer = platform
        .post(&upload("120000"), std::fs::read(&statements[1].1).unwrap())
        .await;
    assert_eq!(answer.status, 403);
    let answer = world
        .client(BEIJING_HOSPITAL)
        .post(&upload("110000"), beijing.clone().into_bytes())
        .await;
    assert_eq!(answer.status, 403);
    let answer = platform
        .post(&upload("110000"), tampered.clone().into_bytes())
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["rows"], 1);

    // The live report: Beijing's statement in, the tampered row found.
    let report_url = world.url(&format!("/v1/clearing/{day}"));
    let officer = world.client(OFFICER);
    let answer = officer.get(&report_url).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let report = answer.json();
    assert_eq!(report["status"], "open");
    assert_eq!(report["viewer"]["role"], "officer");
    assert_eq!(
        report["sources"]["missing_statements"],
        serde_json::json!(["120000", "130000"])
    );
    assert_eq!(report["discrepancy_counts"]["amount_differs"], 1);
    assert_eq!(net(&report, "120000"), add(owed_b, owed_c));
    assert_eq!(
        world.client(BEIJING_HOSPITAL).get(&report_url).await.status,
        403
    );
    // The corrected statement replaces it while the day is open.
    let answer = platform
        .post(&upload("110000"), beijing.clone().into_bytes())
        .await;
    assert_eq!(answer.status, 200);
    let report = officer.get(&report_url).await.json();
    assert_eq!(
        report["discrepancy_counts"]["amount_differs"], 0,
        "{report}"
    );

    // Claims exchange: Beijing fetches its people treated elsewhere (b only).
    let fetch = |msgid: &str, size: i64| {
        claims(
            "3260",
            BEIJING_PLATFORM,
            "110000",
            msgid,
            serde_json::json!({"clr_date": day, "page_num": 1, "page_size": size}),
        )
    };
    let answer = platform
        .post(
            &world.url(NATIONAL),
            fetch(&format!("P110000{stamp}1"), 100),
        )
        .await;
    assert_eq!(
        answer.infcode(),
        0,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let page = answer.json()["output"].clone();
    assert_eq!(page["recordcounts"], 1, "{page}");
    assert_eq!(page["data"][0]["setl_id"], b.as_str());
    assert_eq!(page["data"][0]["cnfm_flag"], "0");
    assert_eq!(money(&page["data"][0]["optins_pay_sumamt"]), owed_b);
    let answer = platform
        .post(
            &world.url(NATIONAL),
            fetch(&format!("P110000{stamp}2"), 101),
        )
        .await;
    assert_ne!(answer.infcode(), 0);
    // Dispute it, see it in the report, roll it back.
    let verdict = |infno: &str, msgid: &str, setl_id: &str, flag: &str| {
        claims(
            infno,
            BEIJING_PLATFORM,
            "110000",
            msgid,
            serde_json::json!([{"setl_id": setl_id, "cnfm_flag": flag, "memo": "重复收费"}]),
        )
    };
    let answer = platform
        .post(
            &world.url(NATIONAL),
            verdict("3261", &format!("P110000{stamp}3"), &b, "2"),
        )
        .await;
    assert_eq!(
        answer.infcode(),
        0,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let report = officer.get(&report_url).await.json();
    assert_eq!(report["disputes"][0]["setl_id"], b.as_str(), "{report}");
    assert_eq!(report["disputes"][0]["memo"], "重复收费");
    let answer = platform
        .post(
            &world.url(NATIONAL),
            fetch(&format!("P110000{stamp}4"), 100),
        )
        .await;
    assert_eq!(answer.json()["output"]["data"][0]["cnfm_flag"], "2");
    let answer = platform
        .post(
            &world.url(NATIONAL),
            verdict("3262", &format!("P110000{stamp}5"), &b, "1"),
        )
        .await;
    assert_eq!(answer.infcode(), 0);
    let report = officer.get(&report_url).await.json();
    assert_eq!(report["disputes"], serde_json::json!([]));
    // Not Beijing's person: refused.
    let answer = platform
        .post(
            &world.url(NATIONAL),
            verdict("3261", &format!("P110000{stamp}6"), &a, "1"),
        )
        .await;
    assert_eq!(answer.status, 404);
    // A hospital cannot use the exchange.
    let answer = world
        .client(BEIJING_HOSPITAL)
        .post(
            &world.url(NATIONAL),
            fetch(&format!("P110000{stamp}7"), 100),
        )
        .await;
    assert_eq!(answer.status, 403);

    // Closing: officers only, once; then the day refuses change.
    let close = world.url(&format!("/v1/clearing/{day}/close"));
    assert_eq!(platform.post(&close, Vec::new()).await.status, 403);
    let answer = officer.post(&close, Vec::new()).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let closed = answer.json();
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["closed"]["by"], OFFICER);
    let digest = closed["closed"]["digest"].as_str().unwrap().to_owned();
    assert_eq!(digest.len(), 64);
    assert_eq!(officer.post(&close, Vec::new()).await.status, 409);
    assert_eq!(
        platform
            .post(&upload("110000"), beijing.into_bytes())
            .await
            .status,
        409
    );
    let answer = platform
        .post(
            &world.url(NATIONAL),
            verdict("3261", &format!("P110000{stamp}8"), &b, "1"),
        )
        .await;
    assert_eq!(answer.status, 409);
    // A settlement after the close does not change the closed report: it is
    // late, an adjustment of the next open day. (Beijing's patient in Tianjin.)
    let late_msgid = format!("{TIANJIN_HOSPITAL}{stamp}09");
    let late = settle(
        &world,
        TIANJIN_HOSPITAL,
        settlement(TIANJIN_HOSPITAL, "120000", "110105", &late_msgid),
    )
    .await;
    let report = officer.get(&report_url).await.json();
    assert_eq!(report["status"], "closed");
    assert_eq!(report["closed"]["digest"], digest.as_str());
    assert_eq!(report["sources"]["gateway_rows"], 3);
    assert_eq!(report["viewer"]["institution"], OFFICER);
    let answer = officer.get(&format!("{report_url}?format=xlsx")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(&answer.body[..4], b"PK\x03\x04");
    let answer = officer.get(&format!("{report_url}?format=csv")).await;
    assert!(String::from_utf8(answer.body).unwrap().contains("差异明细"));

    // The next day carries the late settlement on the gateway's side ...
    let next = contracts::Date::parse(&day).unwrap().next().unwrap();
    let next_url = world.url(&format!("/v1/clearing/{next}"));
    let report = officer.get(&next_url).await.json();
    assert_eq!(report["status"], "open");
    assert_eq!(report["sources"]["gateway_rows"], 1);
    assert_eq!(report["sources"]["late_rows"], 1);
    // ... and Beijing's platform sends its late row (setl_time on the closed
    // day) with the next day's statement: accepted, and matched there.
    let beijing_today = std::fs::read_to_string(sandbox_statement(&world, "110000")).unwrap();
    let late_rows: String = beijing_today
        .lines()
        .enumerate()
        .filter(|(n, line)| *n == 0 || line.contains(&late_msgid))
        .map(|(_, line)| format!("{line}\n"))
        .collect();
    assert_eq!(late_rows.lines().count(), 2, "{beijing_today}");
    let answer = platform
        .post(
            &world.url(&format!("/v1/clearing/{next}/statements/110000")),
            late_rows.into_bytes(),
        )
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let report = officer.get(&next_url).await.json();
    assert_eq!(report["sources"]["late_rows"], 2);
    // (Tianjin and Hebei send nothing that day, so the day is not all matched.)
    assert_eq!(report["discrepancies"], serde_json::json!([]), "{report:#}");
    let totals = report["totals"].as_array().unwrap();
    assert_eq!(totals.len(), 1);
    assert_eq!(totals[0]["gateway"], totals[0]["region"], "{report:#}");
    // It is cleared with the next day: Beijing owes Tianjin its shares.
    let owed_late = owed(&world, &late).await;
    let position = |code: &str| {
        report["positions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["admdvs"] == code)
            .map(|p| money(&p["net"]))
            .unwrap()
    };
    assert_eq!(position("120000"), owed_late);
    assert_eq!(position("110000"), sub(Money::ZERO, owed_late));
}
