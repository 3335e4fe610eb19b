//! The gateway as hospitals and platforms meet it: real `jjj-gateway serve`
//! and `sandbox` processes, real mutual TLS, real sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod harness;

use harness::*;
use std::time::Duration;

fn with_field(text: &str, from: &str, to: &str) -> Vec<u8> {
    assert!(text.contains(from), "{from}");
    text.replacen(from, to, 1).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlement_is_routed_to_the_insured_region_and_answered_in_the_callers_dialect() {
    let world = World::start("route", Settings::default());
    let hospital = world.client(BEIJING_HOSPITAL);
    // A Beijing hospital settles a patient insured in Baoding (130600): Hebei's platform, by prefix.
    let answer = hospital
        .post(
            &world.url(NATIONAL),
            fixture("2207-request.json").into_bytes(),
        )
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let json = answer.json();
    assert_eq!(json["infcode"], 0);
    let info = &json["output"]["setlinfo"];
    assert!(
        info["setl_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("130000")),
        "{info}"
    );
    // Amounts go out exactly, with two decimals (read from the raw text, not through a float).
    let raw = String::from_utf8(answer.body.clone()).unwrap();
    assert!(raw.contains("\"medfee_sumamt\":100.20"), "{raw}");
    // The split is Hebei's policy's, and balances to the fen.
    use adapters::Dialect;
    let canonical = adapters::national::National
        .decode_answer(
            contracts::Infno::OutpatientSettle,
            &answer.body,
            &adapters::Limits::DEFAULT,
        )
        .unwrap();
    assert_eq!(
        contracts::validate::check_answer(contracts::Infno::OutpatientSettle, &canonical),
        vec![]
    );
    // 95.16 in scope is below a Baoding employee's 100-yuan outpatient deductible: the fund pays nothing yet.
    assert!(
        raw.contains("\"act_pay_dedc\":95.16") && raw.contains("\"fund_pay_sumamt\":0.00"),
        "{raw}"
    );
    // Beijing-insured patient: Beijing's platform.
    let local = with_field(
        &fixture("2206-request.json"),
        "\"insuplc_admdvs\": \"130600\"",
        "\"insuplc_admdvs\": \"110105\"",
    );
    let answer = hospital.post(&world.url(NATIONAL), local).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["output"]["setlinfo"]["clr_optins"], "110000");
    // The same through the dialect path.
    let answer = hospital
        .post(
            &world.url("/v1/messages/national"),
            fixture("1101-request.json").into_bytes(),
        )
        .await;
    assert_eq!(answer.status, 200);
    let answer = hospital
        .post(
            &world.url("/v1/messages/klingon"),
            fixture("1101-request.json").into_bytes(),
        )
        .await;
    assert_eq!((answer.status, answer.infcode()), (404, 1013));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_fails_over_to_the_regions_second_address() {
    let world = World::start("failover", Settings::default());
    let request = with_field(
        &fixture("2206-request.json"),
        "\"insuplc_admdvs\": \"130600\"",
        "\"insuplc_admdvs\": \"120000\"",
    );
    let answer = world
        .client(BEIJING_HOSPITAL)
        .post(&world.url(NATIONAL), request)
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["output"]["setlinfo"]["clr_optins"], "120000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_refuses_no_certificate_and_a_foreign_ca() {
    let world = World::start("handshake", Settings::default());
    let certs = world.scratch.path("certs");
    gateway::tls::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in gateway::tls::read_certs(&certs.join("ca.pem")).unwrap() {
        roots.add(cert).unwrap();
    }
    let anonymous = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let result = TestClient::with_tls(anonymous)
        .try_send("GET", &world.url("/healthz"), Vec::new())
        .await;
    assert!(
        result.is_err(),
        "a client without a certificate was served: {:?}",
        result.map(|a| a.status)
    );
    let foreign = world.scratch.path("foreign");
    certs_init(&foreign, &[BEIJING_HOSPITAL]);
    let impostor = gateway::tls::client_config(
        &certs.join("ca.pem"),
        &foreign.join(format!("{BEIJING_HOSPITAL}.pem")),
        &foreign.join(format!("{BEIJING_HOSPITAL}.key")),
    )
    .unwrap();
    let result = TestClient::with_tls(impostor)
        .try_send("GET", &world.url("/healthz"), Vec::new())
        .await;
    assert!(
        result.is_err(),
        "a certificate of a foreign CA was accepted"
    );
    // The real one passes.
    assert_eq!(
        world
            .client(BEIJING_HOSPITAL)
            .get(&world.url("/healthz"))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_must_agree_with_the_callers_identity() {
    let world = World::start("authz", Settings::default());
    let url = world.url(NATIONAL);
    let request = fixture("2207-request.json");
    // A certificate of our CA that names no configured caller.
    let answer = world
        .client(STRANGER)
        .post(&url, request.clone().into_bytes())
        .await;
    assert_eq!((answer.status, answer.infcode()), (403, 3001));
    // Another hospital's code in the message.
    let answer = world
        .client(BEIJING_HOSPITAL_2)
        .post(&url, request.clone().into_bytes())
        .await;
    assert_eq!((answer.status, answer.infcode()), (403, 3002));
    // A Beijing hospital claiming Tianjin as the treatment region.
    let elsewhere = with_field(
        &request,
        "\"mdtrtarea_admvs\": \"110000\"",
        "\"mdtrtarea_admvs\": \"120000\"",
    );
    let answer = world.client(BEIJING_HOSPITAL).post(&url, elsewhere).await;
    assert_eq!((answer.status, answer.infcode()), (403, 3003));
    // Officers reach only the clearing API.
    let answer = world
        .client(OFFICER)
        .post(&url, request.clone().into_bytes())
        .await;
    assert_eq!((answer.status, answer.infcode()), (403, 3004));
    // A platform acts for institutions of its own region…
    let answer = world
        .client(BEIJING_PLATFORM)
        .post(&url, request.clone().into_bytes())
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    // …and not for Tianjin's.
    let tianjin = with_field(
        &request,
        "\"fixmedins_code\": \"H11010500123\"",
        &format!("\"fixmedins_code\": \"{TIANJIN_HOSPITAL}\""),
    );
    let tianjin = String::from_utf8(tianjin).unwrap().replacen(
        "\"mdtrtarea_admvs\": \"110000\"",
        "\"mdtrtarea_admvs\": \"120000\"",
        1,
    );
    let answer = world
        .client(BEIJING_PLATFORM)
        .post(&url, tianjin.into_bytes())
        .await;
    assert_eq!((answer.status, answer.infcode()), (403, 3003));
    // Refusals are national answers with the catalogue's text.
    let answer = world
        .client(BEIJING_HOSPITAL_2)
        .post(&url, request.into_bytes())
        .await;
    assert!(answer.json()["err_msg"]
        .as_str()
        .unwrap()
        .starts_with("[E3002]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_platform_gives_504_and_a_closed_one_502() {
    let world = World::start(
        "timeout",
        Settings {
            medium_timeout_ms: 700,
            ..Settings::default()
        },
    );
    let platform = TestClient::new(&world.scratch.path("certs"), "gateway");
    let admin = format!("https://127.0.0.1:{}/admin/faults", world.platform_ports[2]);
    assert_eq!(
        platform
            .post(&admin, b"latency_ms = 1500".to_vec())
            .await
            .status,
        200
    );
    let answer = world
        .client(BEIJING_HOSPITAL)
        .post(
            &world.url(NATIONAL),
            fixture("2206-request.json").into_bytes(),
        )
        .await;
    assert_eq!((answer.status, answer.infcode()), (504, 5040));
    assert!(answer.json()["err_msg"].as_str().unwrap().contains("2601"));
    assert_eq!(
        platform
            .post(&admin, b"garbage_percent = 100".to_vec())
            .await
            .status,
        200
    );
    let answer = world
        .client(BEIJING_HOSPITAL)
        .post(
            &world.url(NATIONAL),
            fixture("2206-request.json").into_bytes(),
        )
        .await;
    assert_eq!((answer.status, answer.infcode()), (502, 5021));
    let metrics = String::from_utf8(
        world
            .client(BEIJING_HOSPITAL)
            .get(&world.url("/metrics"))
            .await
            .body,
    )
    .unwrap();
    assert!(
        metrics.contains("jjj_upstream_failures_total{region=\"130000\",kind=\"timeout\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("jjj_refusals_total{code=\"upstream_bad_answer\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_outcome_is_reversed_by_the_gateway_naming_the_settlements_person() {
    let world = ledger_world("reverse-person", Settings::default());
    // Hebei commits the settlement, then the connection drops: the outcome is unknown.
    let platform = TestClient::new(&world.scratch.path("certs"), "gateway");
    let admin = format!("https://127.0.0.1:{}/admin/faults", world.platform_ports[2]);
    assert_eq!(
        platform
            .post(&admin, b"drop_after_commit_percent = 100".to_vec())
            .await
            .status,
        200
    );
    let psn_no = "13060000000000000077";
    let msgid = "H11010500123202611250930150011"; // the fixture's
    let request = with_field(
        &fixture("2207-request.json"),
        "\"psn_no\": \"13000000000012345678\"",
        &format!("\"psn_no\": \"{psn_no}\""),
    );
    let answer = world
        .client(BEIJING_HOSPITAL)
        .post(&world.url(NATIONAL), request)
        .await;
    assert_eq!((answer.status, answer.infcode()), (504, 5040));

    // The gateway reverses it by itself, and the journal says so.
    let ledger = ledger_open(&world).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let entry = loop {
        let entry = ledger
            .by_msgid(BEIJING_HOSPITAL, msgid)
            .await
            .unwrap()
            .expect("journalled");
        if entry.state == ledger::State::Reversed {
            break entry;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not reversed: {:?}",
            entry.state
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        entry.new.psn_no.as_ref().map(ledger::PsnNo::as_str),
        Some(psn_no)
    );

    // Hebei's record: the settlement was committed, then reversed by the
    // gateway's own 2601 naming the person the settlement named.
    let settled = sandbox_settlement(&world.scratch.path("sandbox-data"), "130000", msgid)
        .expect("committed before the connection dropped");
    assert_eq!(
        settled.undone,
        Some(contracts::statement::RowState::Reversed)
    );
    assert!(
        settled
            .undone_by
            .as_deref()
            .is_some_and(|by| by.starts_with("JJJGW")),
        "{:?}",
        settled.undone_by
    );
    assert_eq!(settled.request_psn_no.as_deref(), Some(psn_no));
    assert_eq!(settled.undone_psn_no.as_deref(), Some(psn_no));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_number_the_journal_cannot_keep_is_refused_before_forwarding() {
    let world = ledger_world("long-psn-no", Settings::default());
    let long = "1".repeat(31);
    let request = with_field(
        &fixture("2207-request.json"),
        "\"psn_no\": \"13000000000012345678\"",
        &format!("\"psn_no\": \"{long}\""),
    );
    let answer = world
        .client(BEIJING_HOSPITAL)
        .post(&world.url(NATIONAL), request)
        .await;
    assert_eq!((answer.status, answer.infcode()), (400, 1012));
    let why = answer.json()["err_msg"].as_str().unwrap().to_owned();
    assert!(why.contains("input.data.psn_no"), "{why}");
    assert!(!why.contains(&long), "{why}");
    // Nothing was journalled, nothing reached the platform.
    let ledger = ledger_open(&world).await;
    assert_eq!(
        ledger
            .by_msgid(BEIJING_HOSPITAL, "H11010500123202611250930150011")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        sandbox_settlement(
            &world.scratch.path("sandbox-data"),
            "130000",
            "H11010500123202611250930150011"
        ),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_hospital_is_limited_while_another_is_served() {
    let world = World::start(
        "flood",
        Settings {
            institution_per_second: 5,
            institution_burst: 5,
            ..Settings::default()
        },
    );
    let noisy = world.client(BEIJING_HOSPITAL);
    let request = fixture("1101-request.json");
    let mut limited = 0;
    let mut served = 0;
    for _ in 0..30 {
        let answer = noisy
            .post(&world.url(NATIONAL), request.clone().into_bytes())
            .await;
        match answer.status {
            429 => {
                limited += 1;
                assert_eq!(answer.infcode(), 4029);
                let wait: u64 = answer.retry_after.as_deref().unwrap().parse().unwrap();
                assert!((1..=2).contains(&wait));
            }
            200 => served += 1,
            other => panic!("status {other}"),
        }
    }
    assert!(
        served >= 5 && limited >= 10,
        "served {served}, limited {limited}"
    );
    // The other hospital has its own allowance.
    let other = fixture("1101-request.json").replace(BEIJING_HOSPITAL, BEIJING_HOSPITAL_2);
    let answer = world
        .client(BEIJING_HOSPITAL_2)
        .post(&world.url(NATIONAL), other.into_bytes())
        .await;
    assert_eq!(answer.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused_with_413() {
    let world = World::start(
        "large",
        Settings {
            body_bytes_max: 4096,
            ..Settings::default()
        },
    );
    let big = format!("{{\"infno\":\"1101\",\"pad\":\"{}\"}}", "x".repeat(10_000));
    let answer = world
        .client(BEIJING_HOSPITAL)
        .post(&world.url(NATIONAL), big.into_bytes())
        .await;
    assert_eq!((answer.status, answer.infcode()), (413, 4013));
}

async fn server_certificate(world: &World) -> Vec<u8> {
    let certs = world.scratch.path("certs");
    let tls = gateway::tls::client_config(
        &certs.join("ca.pem"),
        &certs.join(format!("{BEIJING_HOSPITAL}.pem")),
        &certs.join(format!("{BEIJING_HOSPITAL}.key")),
    )
    .unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", world.gateway_port))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, stream).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .as_ref()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_picks_up_a_renewed_certificate() {
    let world = World::start("sighup", Settings::default());
    let before = server_certificate(&world).await;
    certs_init(&world.scratch.path("certs"), &[]);
    // Until the signal, the old certificate is served.
    assert_eq!(server_certificate(&world).await, before);
    world.gateway.signal("HUP");
    let mut renewed = false;
    for _ in 0..50 {
        if server_certificate(&world).await != before {
            renewed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(renewed, "the renewed certificate was not picked up");
    assert_eq!(
        world
            .client(BEIJING_HOSPITAL)
            .get(&world.url("/healthz"))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_loses_no_answer_in_flight() {
    let mut world = World::start("sigterm", Settings::default());
    let platform = TestClient::new(&world.scratch.path("certs"), "gateway");
    let admin = format!("https://127.0.0.1:{}/admin/faults", world.platform_ports[2]);
    assert_eq!(
        platform
            .post(&admin, b"latency_ms = 1000".to_vec())
            .await
            .status,
        200
    );
    let url = world.url(NATIONAL);
    let client = world.client(BEIJING_HOSPITAL);
    let in_flight = tokio::spawn(async move {
        client
            .post(&url, fixture("2207-request.json").into_bytes())
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    world.gateway.signal("TERM");
    let answer = in_flight.await.unwrap();
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(answer.json()["output"]["setlinfo"]["setl_id"].is_string());
    let status = world.gateway.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let world = World::start("health", Settings::default());
    let client = world.client(BEIJING_HOSPITAL);
    assert_eq!(client.get(&world.url("/healthz")).await.status, 200);
    let mut ready = false;
    for _ in 0..50 {
        if client.get(&world.url("/readyz")).await.status == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ready,
        "every region has a reachable platform, so the gateway is ready"
    );
    client
        .post(
            &world.url(NATIONAL),
            fixture("2206-request.json").into_bytes(),
        )
        .await;
    let metrics = String::from_utf8(client.get(&world.url("/metrics")).await.body).unwrap();
    assert!(
        metrics.contains("jjj_requests_total{infno=\"2206\",outcome=\"answered\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("jjj_request_duration_seconds_count{infno=\"2206\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_concurrency_bound_requests_are_shed_at_once() {
    let world = World::start(
        "shed",
        Settings {
            concurrency_max: 1,
            ..Settings::default()
        },
    );
    let platform = TestClient::new(&world.scratch.path("certs"), "gateway");
    let admin = format!("https://127.0.0.1:{}/admin/faults", world.platform_ports[2]);
    assert_eq!(
        platform
            .post(&admin, b"latency_ms = 1000".to_vec())
            .await
            .status,
        200
    );
    let url = world.url(NATIONAL);
    let client = world.client(BEIJING_HOSPITAL);
    let slow = tokio::spawn(async move {
        client
            .post(&url, fixture("2206-request.json").into_bytes())
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let shed = world
        .client(BEIJING_HOSPITAL_2)
        .post(
            &world.url(NATIONAL),
            fixture("1101-request.json").into_bytes(),
        )
        .await;
    assert_eq!((shed.status, shed.infcode()), (503, 5003));
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "shed at once, not queued behind the slow one"
    );
    assert_eq!(slow.await.unwrap().status, 200);
}

/// A fee upload of `lines` lines (the fixture's first line, numbered anew),
/// in the national dialect and in tj XML (GB18030, edited as bytes: every
/// marker is ASCII, which GB18030 never uses inside a character).
fn fee_upload(lines: usize) -> (Vec<u8>, Vec<u8>) {
    let mut national: serde_json::Value =
        serde_json::from_str(&fixture("2204-request.json")).unwrap();
    let first = national["input"]["feedetail"][0].clone();
    national["input"]["feedetail"] = (0..lines)
        .map(|n| {
            let mut line = first.clone();
            line["feedetl_sn"] = format!("F{n:05}").into();
            line
        })
        .collect();
    let tj = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../contracts/fixtures/tj/2204-request.xml"),
    )
    .unwrap();
    let find = |needle: &[u8]| tj.windows(needle.len()).position(|w| w == needle).unwrap();
    let (start, end) = (find(b"<ROW>"), find(b"</ROW>") + b"</ROW>".len());
    let row = &tj[start..end];
    let serial = find(b"F0001") - start;
    let mut xml = tj[..start].to_vec();
    for n in 0..lines {
        xml.extend_from_slice(&row[..serial]);
        xml.extend_from_slice(format!("F{n:04}").as_bytes());
        xml.extend_from_slice(&row[serial + 5..]);
        xml.push(b'\n');
    }
    let rest = find(b"</FYMX>");
    xml.extend_from_slice(&tj[rest..]);
    (serde_json::to_vec(&national).unwrap(), xml)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fee_upload_of_thousands_of_lines_is_answered_line_by_line_beside_a_lookup() {
    const LINES: usize = 3000;
    let world = World::start(
        "fee-upload",
        Settings {
            body_bytes_max: 4 << 20,
            ..Settings::default()
        },
    );
    let hospital = world.client(BEIJING_HOSPITAL);
    let (national, tj) = fee_upload(LINES);
    assert!(national.len().min(tj.len()) > 1 << 20);
    let lookup = fixture("1101-request.json").into_bytes();
    let (national_url, tj_url) = (world.url(NATIONAL), world.url("/v1/messages/tj"));
    let (national_answer, tj_answer, small) = tokio::join!(
        hospital.post(&national_url, national),
        hospital.post(&tj_url, tj),
        hospital.post(&national_url, lookup),
    );
    assert_eq!((small.status, small.infcode()), (200, 0));
    // The national answer: one classification per line, in the lines' order.
    assert_eq!(national_answer.status, 200);
    let json = national_answer.json();
    assert_eq!(json["infcode"], 0, "{json}");
    let result = json["output"]["result"].as_array().unwrap();
    assert_eq!(result.len(), LINES);
    for (n, line) in result.iter().enumerate() {
        assert_eq!(line["feedetl_sn"], format!("F{n:05}"));
    }
    let raw = String::from_utf8_lossy(&national_answer.body);
    assert_eq!(raw.matches("\"det_item_fee_sumamt\":25.20,").count(), LINES);
    // The tj answer (GB18030 XML, read as bytes: its markers are ASCII): as
    // many rows, the last line's among them.
    assert_eq!(tj_answer.status, 200);
    let count = |needle: &[u8]| {
        tj_answer
            .body
            .windows(needle.len())
            .filter(|w| *w == needle)
            .count()
    };
    assert_eq!(count(b"<JYZTM>0</JYZTM>"), 1);
    assert_eq!(count(b"<ROW>"), LINES);
    assert_eq!(count(b"<MXXMFYZE>25.20</MXXMFYZE>"), LINES);
    assert_eq!(
        count(format!("<FYMXLSH>F{:04}</FYMXLSH>", LINES - 1).as_bytes()),
        1
    );
}
