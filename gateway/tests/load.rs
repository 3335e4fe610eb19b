#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `jjj-gateway load --json` against a real gateway world: the JSON has its
//! fields and sane values (no assertion on speed).

mod harness;

use harness::*;
use std::process::Command;

fn load(world: &World, code: &str, body: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let certs = world.scratch.path("certs");
    let output = Command::new(BIN)
        .arg("load")
        .args(["--target", &world.url(NATIONAL)])
        .args(["--ca", &certs.join("ca.pem").display().to_string()])
        .args([
            "--cert",
            &certs.join(format!("{code}.pem")).display().to_string(),
        ])
        .args([
            "--key",
            &certs.join(format!("{code}.key")).display().to_string(),
        ])
        .args(["--body", &body.display().to_string()])
        .args(["--duration", "2", "--threads", "1", "--json"])
        .args(extra)
        .output()
        .expect("run jjj-gateway load");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{:?}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn check_shape(report: &serde_json::Value) {
    let throughput = report["throughput_rps"].as_f64().expect("throughput_rps");
    assert!(throughput > 0.0, "{report}");
    let latency = &report["latency_ms"];
    let p: Vec<f64> = ["p50", "p90", "p99", "p999", "max"]
        .iter()
        .map(|k| {
            latency[k]
                .as_f64()
                .unwrap_or_else(|| panic!("latency_ms.{k}: {report}"))
        })
        .collect();
    assert!(p[0] > 0.0, "{report}");
    assert!(
        p.windows(2).all(|w| w[0] <= w[1]),
        "percentiles out of order: {report}"
    );
    // Nothing on loopback takes a minute.
    assert!(p[4] < 60_000.0, "{report}");
    let errors = report["errors"].as_object().expect("errors");
    for class in gateway::load::CLASSES {
        assert!(errors[class].is_u64(), "errors.{class}: {report}");
    }
    let ok = report["ok"].as_u64().unwrap();
    let requests = report["requests"].as_u64().unwrap();
    assert!(ok > 0 && ok <= requests, "{report}");
}

#[test]
fn closed_and_open_loop_report_throughput_latency_and_errors() {
    let world = World::start(
        "load",
        Settings {
            institution_per_second: 100_000,
            institution_burst: 100_000,
            ..Settings::default()
        },
    );
    let body = world.scratch.path("1101.json");
    std::fs::write(&body, fixture("1101-request.json")).unwrap();

    let closed = load(&world, BEIJING_HOSPITAL, &body, &["--connections", "4"]);
    check_shape(&closed);
    assert_eq!(closed["mode"], "closed");
    assert_eq!(closed["connections"], 4);
    assert_eq!(closed["errors_total"], 0, "{closed}");
    // Keep-alive: one handshake per connection.
    assert_eq!(closed["handshakes"], 4, "{closed}");

    let open = load(
        &world,
        BEIJING_HOSPITAL,
        &body,
        &["--rate", "50", "--connections", "4"],
    );
    check_shape(&open);
    assert_eq!(open["mode"], "open");
    assert_eq!(open["rate"], 50);
    // 2 s at 50/s: 100 due, each sent or counted as not sent.
    let not_sent = open["errors"]["not_sent"].as_u64().unwrap();
    assert_eq!(open["requests"].as_u64().unwrap() + not_sent, 100, "{open}");
    assert_eq!(open["errors_total"], 0, "{open}");

    // A hospital the gateway does not know: every answer is a 403, counted
    // as such, and the run says nothing succeeded (exit 1).
    let certs = world.scratch.path("certs");
    let refused = Command::new(BIN)
        .arg("load")
        .args(["--target", &world.url(NATIONAL)])
        .args(["--ca", &certs.join("ca.pem").display().to_string()])
        .args([
            "--cert",
            &certs.join(format!("{STRANGER}.pem")).display().to_string(),
        ])
        .args([
            "--key",
            &certs.join(format!("{STRANGER}.key")).display().to_string(),
        ])
        .args(["--body", &body.display().to_string()])
        .args(["--connections", "1", "--duration", "1", "--json"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert!(
        report["errors"]["http_4xx"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert_eq!(report["ok"], 0);

    // Handshake mode: a fresh connection per request.
    let handshakes = load(
        &world,
        BEIJING_HOSPITAL,
        &body,
        &["--connections", "2", "--handshakes"],
    );
    check_shape(&handshakes);
    assert!(
        handshakes["handshakes"].as_u64().unwrap() >= handshakes["ok"].as_u64().unwrap(),
        "{handshakes}"
    );
    assert!(handshakes["handshakes_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn unique_msgids_make_every_settlement_a_new_journal_entry() {
    let world = ledger_world(
        "load-ledger",
        Settings {
            institution_per_second: 100_000,
            institution_burst: 100_000,
            ..Settings::default()
        },
    );
    let body = world.scratch.path("2207.json");
    std::fs::write(&body, fixture("2207-request.json")).unwrap();
    let report = load(
        &world,
        BEIJING_HOSPITAL,
        &body,
        &["--rate", "20", "--connections", "2", "--unique-msgid"],
    );
    check_shape(&report);
    // No msgid was seen twice (that would be a replay or 409), and none was refused by HTTP status.
    assert_eq!(report["errors"]["http_4xx"], 0, "{report}");
    assert_eq!(report["errors"]["http_5xx"], 0, "{report}");
    let ok = report["ok"].as_u64().unwrap();
    // The journal, read while the gateway runs (WAL): an entry per settlement.
    let conn = rusqlite::Connection::open(world.scratch.path(LEDGER_FILE)).unwrap();
    let entries: i64 = conn
        .query_row("SELECT count(*) FROM journal", [], |row| row.get(0))
        .unwrap();
    assert!(
        entries as u64 >= ok,
        "{entries} journal entries for {ok} settlements: {report}"
    );
}
