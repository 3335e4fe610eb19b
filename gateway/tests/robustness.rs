#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

//! The gateway under the failures it is built for, with real processes over
//! real mutual TLS: `kill -9` mid-load, two replicas on one PostgreSQL
//! ledger, the ledger's database cut or its disk full, a dead platform
//! address behind a circuit breaker.
//!
//! How a settlement's fate upstream is observed: every settlement here is for
//! its own person, and the sandbox's year-to-date deductible is the witness.
//! A fresh Baoding employee pays 95.16 of the 100-yuan outpatient deductible
//! on the fixture's visit. A pre-settlement (2206, which commits nothing, its
//! 100.20 all in scope) then pays the deductible still open: 100.00 when no
//! settlement of that person stands at the platform (never settled, or
//! reversed), 4.84 after one, 0.00 after two or more (settled twice).

mod harness;

use harness::*;
use ledger::{Ledger, State};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- the stage

/// A scratch folder with a PKI and the three platforms' sandbox.
struct Stage {
    scratch: Scratch,
    _sandbox: Process,
    /// Beijing, Tianjin, Hebei.
    ports: [u16; 3],
}

impl Stage {
    /// `hebei_faults`: an inline TOML table of the Hebei platform's faults at start.
    fn start(name: &str, hebei_faults: &str) -> Stage {
        let scratch = Scratch::new(&format!("robust-{name}"));
        certs_init(
            &scratch.path("certs"),
            &[BEIJING_HOSPITAL, BEIJING_HOSPITAL_2, OFFICER],
        );
        let ports = [free_port(), free_port(), free_port()];
        let mut sandbox = String::from(
            "ca = \"certs/ca.pem\"\ncert = \"certs/server.pem\"\nkey = \"certs/server.key\"\n",
        );
        for (i, (admdvs, name)) in [("110000", "北京"), ("120000", "天津"), ("130000", "河北")]
            .iter()
            .enumerate()
        {
            sandbox.push_str(&format!(
                "[[platforms]]\nadmdvs = \"{admdvs}\"\nname = \"{name}\"\ndialect = \"national\"\nlisten = \"127.0.0.1:{}\"\n",
                ports[i]
            ));
            if i == 2 && !hebei_faults.is_empty() {
                sandbox.push_str(&format!("faults = {hebei_faults}\n"));
            }
        }
        std::fs::write(scratch.path("sandbox.toml"), sandbox).unwrap();
        let config = scratch.path("sandbox.toml").display().to_string();
        let sandbox = spawn_logged(
            &["sandbox", "--config", &config],
            3,
            &scratch.path("sandbox.log"),
        );
        Stage {
            scratch,
            _sandbox: sandbox,
            ports,
        }
    }

    fn platform_url(&self, index: usize) -> String {
        format!("https://127.0.0.1:{}{NATIONAL}", self.ports[index])
    }

    /// Sets the Hebei platform's faults at run time.
    async fn hebei_faults(&self, toml: &str) {
        let admin = TestClient::new(&self.scratch.path("certs"), "gateway");
        let url = format!("https://127.0.0.1:{}/admin/faults", self.ports[2]);
        let answer = admin.post(&url, toml.as_bytes().to_vec()).await;
        assert_eq!(answer.status, 200);
        assert!(
            String::from_utf8_lossy(&answer.body).contains("faults set"),
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
    }

    fn client(&self) -> TestClient {
        TestClient::new(&self.scratch.path("certs"), BEIJING_HOSPITAL)
    }

    /// Writes a gateway configuration `file` and returns its path.
    fn gateway_config(&self, file: &str, spec: &Spec) -> PathBuf {
        let mut config = format!(
            r#"[server]
listen = "127.0.0.1:{}"
ca = "certs/ca.pem"
cert = "certs/server.pem"
key = "certs/server.key"
concurrency_max = 256
shutdown_grace_ms = 2000

[limits]
institution_per_second = 5000
institution_burst = 5000
"#,
            spec.listen
        );
        if let Some(url) = &spec.ledger {
            config.push_str(&format!("\n[ledger]\nurl = \"{url}\"\n"));
        }
        let urls = |list: &[String]| {
            list.iter()
                .map(|u| format!("\"{u}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let default = |i: usize| vec![self.platform_url(i)];
        for (admdvs, name, list) in [
            ("110000", "北京", default(0)),
            (
                "120000",
                "天津",
                spec.tianjin.clone().unwrap_or_else(|| default(1)),
            ),
            (
                "130000",
                "河北",
                spec.hebei.clone().unwrap_or_else(|| default(2)),
            ),
        ] {
            config.push_str(&format!(
                r#"
[[regions]]
admdvs = "{admdvs}"
name = "{name}"
dialect = "national"
upstreams = [{}]
ca = "certs/ca.pem"
client_cert = "certs/gateway.pem"
client_key = "certs/gateway.key"
timeouts_ms = {{ short = 3000, medium = {}, long = {} }}
"#,
                urls(&list),
                spec.medium_timeout_ms,
                spec.long_timeout_ms
            ));
        }
        for (code, role, admdvs) in [
            (BEIJING_HOSPITAL, "hospital", "110105"),
            (BEIJING_HOSPITAL_2, "hospital", "110108"),
            (OFFICER, "officer", "110000"),
        ] {
            config.push_str(&format!(
                "\n[[institutions]]\ncode = \"{code}\"\nname = \"{code}\"\nrole = \"{role}\"\nadmdvs = \"{admdvs}\"\nlevel = 3\n"
            ));
        }
        let path = self.scratch.path(file);
        std::fs::write(&path, config).unwrap();
        path
    }
}

/// What differs between the gateways of these tests.
struct Spec {
    listen: u16,
    ledger: Option<String>,
    tianjin: Option<Vec<String>>,
    hebei: Option<Vec<String>>,
    medium_timeout_ms: u64,
    /// The longest upstream timeout; with the ledger's write timeout it sets
    /// the orphan age, which a restarting gateway may wait for before it is
    /// ready (see gateway::journal).
    long_timeout_ms: u64,
}

impl Spec {
    fn new(ledger: Option<String>) -> Spec {
        Spec {
            listen: free_port(),
            ledger,
            tianjin: None,
            hebei: None,
            medium_timeout_ms: 5000,
            long_timeout_ms: 10000,
        }
    }
}

/// Starts `jjj-gateway ARGS` with stderr (the JSON logs) appended to `log`,
/// and waits for `count` lines saying `listening on`.
fn spawn_logged(args: &[&str], count: usize, log: &Path) -> Process {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("spawn jjj-gateway");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = 0;
    while seen < count {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "{args:?} did not start; its log ends:\n{}",
                    log_tail(log, 20)
                )
            });
        if line.contains("listening on") {
            seen += 1;
        }
    }
    Process { child, lines: rx }
}

/// A gateway process on `config`, logging to `log` (from async code).
async fn start_gateway(config: &Path, log: &Path) -> Process {
    let (config, log) = (config.display().to_string(), log.to_owned());
    tokio::task::spawn_blocking(move || spawn_logged(&["serve", "--config", &config], 1, &log))
        .await
        .unwrap()
}

/// `kill -9`: no chance to finish anything.
fn kill9(process: &mut Process) {
    process.child.kill().unwrap();
    let _ = process.child.wait();
}

fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn gateway_url(port: u16, path: &str) -> String {
    format!("https://127.0.0.1:{port}{path}")
}

/// Waits (bounded) until `/readyz` answers `want`.
async fn wait_readyz(client: &TestClient, port: u16, want: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Ok(answer)) = tokio::time::timeout(
            Duration::from_secs(5),
            client.try_send("GET", &gateway_url(port, "/readyz"), Vec::new()),
        )
        .await
        {
            if answer.status == want {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn metrics(client: &TestClient, port: u16) -> String {
    String::from_utf8(client.get(&gateway_url(port, "/metrics")).await.body).unwrap()
}

// ------------------------------------------------------------- the messages

/// A valid Baoding ID number, one per `n`: male employees born 1970–1985, no chronic disease.
fn person(n: usize) -> String {
    let year = 1970 + (n / (12 * 28)) % 16;
    let month = 1 + (n / 28) % 12;
    let day = 1 + n % 28;
    let first17 = format!("130602{year:04}{month:02}{day:02}013");
    let check = contracts::codes::IdNumber::check_character(first17.as_bytes()).unwrap();
    format!("{first17}{}", check as char)
}

/// A msgid of `BEIJING_HOSPITAL`: its code and 18 digits.
fn msgid(tag: u32, n: usize) -> String {
    format!("{BEIJING_HOSPITAL}{tag:04}{n:014}")
}

/// The national fixture `name` with its msgid and patient replaced.
fn message(name: &str, msgid: &str, person: &str) -> Vec<u8> {
    let mut json: Value = serde_json::from_str(&fixture(name)).unwrap();
    json["msgid"] = msgid.into();
    json["input"]["data"]["mdtrt_cert_no"] = person.into();
    serde_json::to_vec(&json).unwrap()
}

fn settlement(msgid: &str, person: &str) -> Vec<u8> {
    message("2207-request.json", msgid, person)
}

/// What a caller got.
#[derive(Debug, Clone)]
enum Got {
    /// 200, infcode 0, with this setl_id.
    Settled(String),
    /// The outcome is unknown (infcode 5040, HTTP 504).
    Unknown(String),
    /// No answer at all (connection refused, reset, timed out).
    NoAnswer(String),
    /// Anything else.
    Other {
        status: u16,
        infcode: i64,
        text: String,
    },
}

fn classify(result: Result<Answer, String>) -> Got {
    let answer = match result {
        Ok(answer) => answer,
        Err(error) => return Got::NoAnswer(error),
    };
    let json: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let infcode = json["infcode"].as_i64().unwrap_or(i64::MIN);
    let setl_id = json["output"]["setlinfo"]["setl_id"].as_str();
    match (answer.status, infcode, setl_id) {
        (200, 0, Some(id)) => Got::Settled(id.to_owned()),
        (_, 5040, _) => Got::Unknown(json["err_msg"].as_str().unwrap_or_default().to_owned()),
        _ => Got::Other {
            status: answer.status,
            infcode,
            text: String::from_utf8_lossy(&answer.body)
                .chars()
                .take(300)
                .collect(),
        },
    }
}

async fn send(client: &TestClient, url: &str, body: Vec<u8>) -> Got {
    match tokio::time::timeout(Duration::from_secs(20), client.try_send("POST", url, body)).await {
        Ok(result) => classify(result),
        Err(_) => Got::NoAnswer("no answer within 20 s".into()),
    }
}

/// How many settlements of `person` stand at the Hebei platform (see the module doc).
async fn standing(client: &TestClient, url: &str, msgid: &str, person: &str) -> usize {
    let answer = client
        .post(url, message("2206-request.json", msgid, person))
        .await;
    assert_eq!(
        answer.status,
        200,
        "pre-settlement: {}",
        String::from_utf8_lossy(&answer.body)
    );
    // Read from the raw text, as the gateway wrote it: money is never a float.
    let raw = String::from_utf8_lossy(&answer.body);
    let paid = raw
        .split("\"act_pay_dedc\":")
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .unwrap_or_else(|| panic!("no act_pay_dedc: {raw}"))
        .trim();
    match paid {
        "100.00" => 0,
        "4.84" => 1,
        "0.00" => 2,
        other => panic!("unexpected deductible {other} for {person}: {raw}"),
    }
}

/// One settlement sent by a load client, and what its caller got.
#[derive(Debug, Clone)]
struct Sent {
    msgid: String,
    person: String,
    port: u16,
    got: Got,
}

/// Clients sending unique settlements until `stop`, to the ports in turn.
fn load(
    stage: &Stage,
    clients: usize,
    ports: Vec<u16>,
    tag: u32,
    next: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<Vec<Sent>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|_| {
            let client = stage.client();
            let (ports, next, stop, sent) =
                (ports.clone(), next.clone(), stop.clone(), sent.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let (msgid, person) = (msgid(tag, n), person(n));
                    let port = ports[n % ports.len()];
                    let got = send(
                        &client,
                        &gateway_url(port, NATIONAL),
                        settlement(&msgid, &person),
                    )
                    .await;
                    let pause = matches!(got, Got::NoAnswer(_));
                    sent.lock().unwrap().push(Sent {
                        msgid,
                        person,
                        port,
                        got,
                    });
                    if pause {
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    }
                }
            })
        })
        .collect()
}

/// A tiny deterministic generator for kill moments (seed printed).
struct Dice(u64);

impl Dice {
    fn new() -> Dice {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        eprintln!("kill moments seed: {seed}");
        Dice(seed | 1)
    }
    fn ms(&mut self, from: u64, to: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(from + self.0 % (to - from))
    }
}

/// The person number of the settlement fixture, which every settlement here names.
const FIXTURE_PSN_NO: &str = "13000000000012345678";

/// The checks every ledger must pass after the load, once nothing is unresolved:
/// an acknowledged settlement is journalled done (or confirmed) with its
/// setl_id and replays it; an unknown outcome ends reversed or confirmed; the
/// platform agrees with the journal about every person; nothing is settled
/// twice; a settlement the platform committed and the gateway reversed was
/// reversed by a 2601 naming the settlement's person (from the Hebei
/// platform's record in the sandbox's `data` folder).
async fn check_ledger_against_callers(
    ledger: &Ledger,
    client: &TestClient,
    port: u16,
    sent: &[Sent],
    tag: u32,
    data: &Path,
) {
    let url = gateway_url(port, NATIONAL);
    let mut problems = Vec::new();
    let mut states: HashMap<String, usize> = HashMap::new();
    let mut reversed_at_platform = 0usize;
    for (i, s) in sent.iter().enumerate() {
        let entry = ledger.by_msgid(BEIJING_HOSPITAL, &s.msgid).await.unwrap();
        let state = entry.as_ref().map(|e| e.state);
        *states
            .entry(state.map_or("absent".into(), |s| s.to_string()))
            .or_default() += 1;
        let expected_standing = match state {
            Some(State::Done | State::Confirmed) => 1,
            _ => 0,
        };
        match (&s.got, state) {
            (Got::Settled(id), Some(State::Done | State::Confirmed)) => {
                let journalled = entry.as_ref().and_then(|e| e.answered.setl_id.clone());
                if journalled.as_deref() != Some(id) {
                    problems.push(format!(
                        "{}: answered setl_id {id}, journalled {journalled:?}",
                        s.msgid
                    ));
                }
            }
            (Got::Settled(id), state) => problems.push(format!(
                "{}: acknowledged with setl_id {id} but journalled {state:?}",
                s.msgid
            )),
            (Got::Unknown(_), Some(State::Reversed | State::Confirmed)) => {}
            (Got::Unknown(why), state) => problems.push(format!(
                "{}: answered 'outcome unknown' ({why}) but journalled {state:?}",
                s.msgid
            )),
            // Killed after the final journal write, before the answer left:
            // done is right (a repeat replays it), as is anything resolved.
            (Got::NoAnswer(_), None | Some(State::Reversed | State::Confirmed | State::Done)) => {}
            (Got::NoAnswer(why), state) => problems.push(format!(
                "{}: no answer ({why}) and journalled {state:?}",
                s.msgid
            )),
            (
                Got::Other {
                    status,
                    infcode,
                    text,
                },
                state,
            ) => problems.push(format!(
                "{}: unexpected answer {status}/{infcode} {text}, journalled {state:?}",
                s.msgid
            )),
        }
        // A repeat of a done message replays its setl_id, without settling again.
        if state == Some(State::Done) {
            let replay = send(client, &url, settlement(&s.msgid, &s.person)).await;
            let journalled = entry.as_ref().and_then(|e| e.answered.setl_id.clone());
            match replay {
                Got::Settled(id) if Some(&id) == journalled.as_ref() => {}
                other => problems.push(format!(
                    "{}: repeat of a done settlement got {other:?}, journalled {journalled:?}",
                    s.msgid
                )),
            }
        }
        if state == Some(State::Reversed) {
            if let Some(settled) = sandbox_settlement(data, "130000", &s.msgid) {
                let named = settled.undone_psn_no.as_deref();
                reversed_at_platform += usize::from(settled.undone.is_some());
                if settled.undone.is_some() && named != Some(FIXTURE_PSN_NO) {
                    problems.push(format!(
                        "{}: undone at the platform ({:?}) by a message naming another person",
                        s.msgid, settled.undone
                    ));
                }
            }
        }
        let stands = standing(client, &url, &msgid(tag + 1, i), &s.person).await;
        if stands != expected_standing {
            problems.push(format!(
                "{} (answered {:?}, journalled {state:?}): {stands} settlement(s) stand at the platform, expected {expected_standing}",
                s.msgid, s.got
            ));
        }
    }
    eprintln!(
        "journal states: {states:?}; {reversed_at_platform} committed at the platform, then reversed by the gateway"
    );
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn summary(sent: &[Sent]) -> String {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for s in sent {
        let kind = match &s.got {
            Got::Settled(_) => "settled",
            Got::Unknown(_) => "unknown",
            Got::NoAnswer(_) => "no answer",
            Got::Other { .. } => "other",
        };
        *counts.entry(kind).or_default() += 1;
    }
    format!("{} sent: {counts:?}", sent.len())
}

// ------------------------------------------------------------ 1. kill -9

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_load_loses_no_acknowledged_settlement_and_leaves_nothing_unresolved() {
    const TAG: u32 = 1000;
    let stage = Stage::start(
        "crash",
        "{ latency_ms = 120, drop_after_commit_percent = 10 }",
    );
    let db = stage.scratch.path("data/ledger.db");
    let mut spec = Spec::new(Some(format!("sqlite://{}", db.display())));
    // A restarted gateway waits for calls of the killed one until they reach
    // the orphan age (5 s + 2 × 5 s + 5 s = 20 s here) before it is ready.
    spec.long_timeout_ms = 5000;
    let config = stage.gateway_config("gateway.toml", &spec);
    let log = stage.scratch.path("gateway.log");
    let mut gateway = start_gateway(&config, &log).await;
    let probe = stage.client();
    assert!(
        wait_readyz(&probe, spec.listen, 200, Duration::from_secs(20)).await,
        "the gateway never turned ready:\n{}",
        log_tail(&log, 20)
    );

    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let clients = load(
        &stage,
        4,
        vec![spec.listen],
        TAG,
        next.clone(),
        stop.clone(),
        sent.clone(),
    );
    let mut dice = Dice::new();
    for round in 0..3 {
        tokio::time::sleep(dice.ms(600, 1800)).await;
        let before = sent.lock().unwrap().len();
        kill9(&mut gateway);
        eprintln!("kill -9 #{round} after {before} answers");
        gateway = start_gateway(&config, &log).await;
    }
    tokio::time::sleep(dice.ms(800, 1500)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    // Whatever is still being reversed in the background is left to recovery.
    kill9(&mut gateway);
    let _gateway = start_gateway(&config, &log).await;
    assert!(
        wait_readyz(&probe, spec.listen, 200, Duration::from_secs(30)).await,
        "not ready after the final restart:\n{}",
        log_tail(&log, 20)
    );
    let ledger = Ledger::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let unresolved = ledger.unresolved().await.unwrap();
    assert!(
        unresolved.is_empty(),
        "ready, yet {} entries are pending or unknown: {:?}",
        unresolved.len(),
        unresolved
            .iter()
            .map(|e| (&e.new.key.msgid, e.state))
            .collect::<Vec<_>>()
    );

    let sent = sent.lock().unwrap().clone();
    eprintln!("{}", summary(&sent));
    let settled = sent
        .iter()
        .filter(|s| matches!(s.got, Got::Settled(_)))
        .count();
    assert!(settled >= 10, "too little got through: {}", summary(&sent));
    // Quick platform for the checks.
    stage
        .hebei_faults("latency_ms = 0\ndrop_after_commit_percent = 0")
        .await;
    let data = stage.scratch.path("sandbox-data");
    check_ledger_against_callers(&ledger, &probe, spec.listen, &sent, TAG, &data).await;
}

// ------------------------------------------------------- PostgreSQL helpers

/// Says loudly, past the test harness's capture, that a test did not run.
fn skipped(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {test}: {why}");
}

/// A fresh schema on `JJJ_TEST_POSTGRES_URL`, dropped with everything in it on drop.
struct PgSchema {
    base: String,
    name: String,
}

impl PgSchema {
    async fn create(test: &str) -> Option<PgSchema> {
        let base = match std::env::var("JJJ_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                skipped(test, "JJJ_TEST_POSTGRES_URL is not set");
                return None;
            }
        };
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "robust_{}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
            .await
            .expect("connect to JJJ_TEST_POSTGRES_URL");
        let task = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap();
        drop(client);
        let _ = task.await;
        Some(PgSchema { base, name })
    }

    fn config(&self) -> tokio_postgres::Config {
        self.base.parse().unwrap()
    }

    /// The ledger URL of this schema.
    fn url(&self) -> String {
        let separator = if self.base.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-csearch_path%3D{}",
            self.base, self.name
        )
    }

    /// The server's address.
    fn target(&self) -> SocketAddr {
        let config = self.config();
        let host = match &config.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(host) if host == "localhost" => "127.0.0.1".into(),
            tokio_postgres::config::Host::Tcp(host) => host.clone(),
            #[allow(unreachable_patterns)]
            _ => panic!("the test server must be reached over TCP"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        SocketAddr::new(host.parse().unwrap(), port)
    }

    /// The ledger URL of this schema through a proxy on `port`.
    fn url_via(&self, port: u16) -> String {
        let config = self.config();
        let user = config.get_user().unwrap_or("postgres");
        let password = config
            .get_password()
            .map(|p| format!(":{}", String::from_utf8_lossy(p)))
            .unwrap_or_default();
        let db = config.get_dbname().unwrap_or("postgres");
        format!(
            "postgres://{user}{password}@127.0.0.1:{port}/{db}?options=-csearch_path%3D{}",
            self.name
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&base, tokio_postgres::NoTls).await
                {
                    let task = tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .await;
                    drop(client);
                    let _ = task.await;
                }
            });
        })
        .join();
    }
}

/// A TCP proxy between the gateway and PostgreSQL that can be cut (every
/// connection closed, new ones closed at once) and restored.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    relays: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let relays = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = (cut.clone(), relays.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if c.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                r.lock().unwrap().push(relay);
            }
        });
        Proxy {
            port,
            cut,
            relays,
            accept,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for relay in self.relays.lock().unwrap().drain(..) {
            relay.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

// ------------------------------------------- 2. two gateways, one ledger

async fn two_gateways(stage: &Stage, schema: &PgSchema) -> (Spec, Spec, PathBuf, PathBuf) {
    let mut a = Spec::new(Some(schema.url()));
    let mut b = Spec::new(Some(schema.url()));
    // A restarting replica waits for the calls in flight in the shared ledger
    // until they reach the orphan age (5 s + 2 × 5 s + 5 s = 20 s here)
    // before it is ready.
    a.long_timeout_ms = 5000;
    b.long_timeout_ms = 5000;
    let config_a = stage.gateway_config("gateway-a.toml", &a);
    let config_b = stage.gateway_config("gateway-b.toml", &b);
    (a, b, config_a, config_b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_on_one_postgres_ledger_settle_each_msgid_once_and_lose_nothing_when_one_dies()
{
    const TAG: u32 = 2000;
    let Some(schema) = PgSchema::create("two_gateways_on_one_postgres_ledger").await else {
        return;
    };
    let stage = Stage::start("two", "{ latency_ms = 100 }");
    let (a, b, config_a, config_b) = two_gateways(&stage, &schema).await;
    let (log_a, log_b) = (stage.scratch.path("a.log"), stage.scratch.path("b.log"));
    let mut gateway_a = start_gateway(&config_a, &log_a).await;
    let _gateway_b = start_gateway(&config_b, &log_b).await;
    let client = stage.client();
    for (port, log) in [(a.listen, &log_a), (b.listen, &log_b)] {
        assert!(
            wait_readyz(&client, port, 200, Duration::from_secs(20)).await,
            "not ready:\n{}",
            log_tail(log, 20)
        );
    }
    let ledger = Ledger::open(&schema.url()).await.unwrap();

    // The same messages to both replicas at once, six streams of six.
    let client = Arc::new(client);
    let mut streams = Vec::new();
    for stream in 0..6 {
        let client = client.clone();
        let (port_a, port_b) = (a.listen, b.listen);
        streams.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for k in 0..6 {
                let n = stream * 6 + k;
                let (msgid, person) = (msgid(TAG, n), person(n));
                let body = settlement(&msgid, &person);
                let (url_a, url_b) = (gateway_url(port_a, NATIONAL), gateway_url(port_b, NATIONAL));
                let (got_a, got_b) = tokio::join!(
                    send(&client, &url_a, body.clone()),
                    send(&client, &url_b, body.clone())
                );
                results.push((n, msgid, person, got_a, got_b));
            }
            results
        }));
    }
    let mut results = Vec::new();
    for stream in streams {
        results.extend(stream.await.unwrap());
    }
    stage.hebei_faults("latency_ms = 0").await;
    let mut problems = Vec::new();
    let mut in_flight = 0;
    for (n, mid, who, got_a, got_b) in results {
        let body = settlement(&mid, &who);
        let setl_id = match (&got_a, &got_b) {
            (Got::Settled(x), Got::Settled(y)) if x == y => Some(x.clone()),
            (Got::Settled(x), Got::Other { status: 409, .. }) => {
                in_flight += 1;
                match send(&client, &gateway_url(b.listen, NATIONAL), body).await {
                    Got::Settled(y) if &y == x => Some(y),
                    other => {
                        problems.push(format!("{mid}: repeat after 409 got {other:?}"));
                        None
                    }
                }
            }
            (Got::Other { status: 409, .. }, Got::Settled(y)) => {
                in_flight += 1;
                match send(&client, &gateway_url(a.listen, NATIONAL), body).await {
                    Got::Settled(x) if &x == y => Some(x),
                    other => {
                        problems.push(format!("{mid}: repeat after 409 got {other:?}"));
                        None
                    }
                }
            }
            _ => {
                problems.push(format!("{mid}: A got {got_a:?}, B got {got_b:?}"));
                None
            }
        };
        let entry = ledger.by_msgid(BEIJING_HOSPITAL, &mid).await.unwrap();
        if let Some(id) = setl_id {
            if entry
                .as_ref()
                .map(|e| (e.state, e.answered.setl_id.clone()))
                != Some((State::Done, Some(id.clone())))
            {
                problems.push(format!("{mid}: both answered {id}, journalled {entry:?}"));
            }
        }
        let stands = standing(
            &client,
            &gateway_url(b.listen, NATIONAL),
            &msgid(TAG + 1, n),
            &who,
        )
        .await;
        if stands != 1 {
            problems.push(format!(
                "{mid}: {stands} settlement(s) stand at the platform, expected exactly 1"
            ));
        }
    }
    eprintln!("same msgids to both: {in_flight} answered 409 in flight first");
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );

    // Load on both; one is killed mid-load.
    stage.hebei_faults("latency_ms = 100").await;
    let next = Arc::new(AtomicUsize::new(100));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let clients = load(
        &stage,
        4,
        vec![a.listen, b.listen],
        TAG + 2,
        next,
        stop.clone(),
        sent.clone(),
    );
    let mut dice = Dice::new();
    tokio::time::sleep(dice.ms(800, 1600)).await;
    kill9(&mut gateway_a);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let sent = sent.lock().unwrap().clone();
    eprintln!("{}", summary(&sent));
    // With A dead: everything acknowledged, by either, is in the ledger.
    let mut lost = Vec::new();
    for s in &sent {
        if let Got::Settled(id) = &s.got {
            let entry = ledger.by_msgid(BEIJING_HOSPITAL, &s.msgid).await.unwrap();
            let ok = entry.as_ref().is_some_and(|e| {
                matches!(e.state, State::Done | State::Confirmed)
                    && e.answered.setl_id.as_deref() == Some(id.as_str())
            });
            if !ok {
                lost.push(format!(
                    "{} via {}: acknowledged {id}, journalled {entry:?}",
                    s.msgid, s.port
                ));
            }
        }
    }
    assert!(lost.is_empty(), "lost:\n{}", lost.join("\n"));
    // A comes back: what it left pending is resolved before it is ready.
    let _gateway_a = start_gateway(&config_a, &log_a).await;
    stage.hebei_faults("latency_ms = 0").await;
    assert!(
        wait_readyz(&client, a.listen, 200, Duration::from_secs(30)).await,
        "A not ready after its restart:\n{}",
        log_tail(&log_a, 20)
    );
    let unresolved = ledger.unresolved().await.unwrap();
    assert!(
        unresolved.is_empty(),
        "ready, yet unresolved: {unresolved:?}"
    );
    let data = stage.scratch.path("sandbox-data");
    check_ledger_against_callers(&ledger, &client, b.listen, &sent, TAG + 2, &data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_restarting_leaves_the_other_replicas_calls_in_flight_alone() {
    const TAG: u32 = 3000;
    let Some(schema) = PgSchema::create("a_replica_restarting").await else {
        return;
    };
    let stage = Stage::start("replica", "{ latency_ms = 200 }");
    let (a, b, config_a, config_b) = two_gateways(&stage, &schema).await;
    let (log_a, log_b) = (stage.scratch.path("a.log"), stage.scratch.path("b.log"));
    let mut gateway_a = start_gateway(&config_a, &log_a).await;
    let _gateway_b = start_gateway(&config_b, &log_b).await;
    let client = stage.client();
    for (port, log) in [(a.listen, &log_a), (b.listen, &log_b)] {
        assert!(
            wait_readyz(&client, port, 200, Duration::from_secs(20)).await,
            "not ready:\n{}",
            log_tail(log, 20)
        );
    }
    let ledger = Ledger::open(&schema.url()).await.unwrap();
    // Load on B only; A restarts (as after a crash, or a rolling deploy) meanwhile.
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let clients = load(
        &stage,
        6,
        vec![b.listen],
        TAG,
        next,
        stop.clone(),
        sent.clone(),
    );
    let mut dice = Dice::new();
    for _ in 0..3 {
        tokio::time::sleep(dice.ms(500, 1000)).await;
        kill9(&mut gateway_a);
        gateway_a = start_gateway(&config_a, &log_a).await;
        assert!(
            wait_readyz(&client, a.listen, 200, Duration::from_secs(30)).await,
            "A not ready after its restart:\n{}",
            log_tail(&log_a, 20)
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    // B resolves its own unknowns in the background: wait for that, boundedly.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let unresolved = ledger.unresolved().await.unwrap();
        if unresolved.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still unresolved after 30 s: {unresolved:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sent = sent.lock().unwrap().clone();
    eprintln!("{}", summary(&sent));
    stage.hebei_faults("latency_ms = 0").await;
    let data = stage.scratch.path("sandbox-data");
    check_ledger_against_callers(&ledger, &client, b.listen, &sent, TAG, &data).await;
}

// ------------------------------------- 3. ledger unreachable, disk full

/// Sends settlement `n` and expects the refusal of a ledger that cannot journal.
async fn expect_ledger_unavailable(client: &TestClient, port: u16, tag: u32, n: usize) {
    let url = gateway_url(port, NATIONAL);
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        client.try_send("POST", &url, settlement(&msgid(tag, n), &person(n))),
    )
    .await
    .expect("no answer within 20 s while the ledger is unavailable")
    .expect("no answer while the ledger is unavailable");
    let json: Value = serde_json::from_slice(&answer.body).unwrap_or_else(|e| {
        panic!(
            "not the caller's dialect ({e}): {}",
            String::from_utf8_lossy(&answer.body)
        )
    });
    assert_eq!(
        (answer.status, json["infcode"].as_i64()),
        (503, Some(5004)),
        "{json}"
    );
    let message = json["err_msg"].as_str().unwrap_or_default();
    assert!(message.starts_with("[E5004]"), "{json}");
    assert!(
        json["output"]["setlinfo"]["setl_id"].is_null(),
        "a setl_id came back: {json}"
    );
}

/// Retries settlement `n` (the same msgid) until it settles, boundedly.
async fn settles_again(client: &TestClient, port: u16, tag: u32, n: usize, log: &Path) {
    let url = gateway_url(port, NATIONAL);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = send(client, &url, settlement(&msgid(tag, n), &person(n))).await;
        if matches!(got, Got::Settled(_)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "settlement {n} refused with the ledger back for 30 s; last: {got:?}\n{}",
            log_tail(log, 20)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_database_cut_mid_run_gives_503_forwards_nothing_and_recovers() {
    const TAG: u32 = 4000;
    let Some(schema) = PgSchema::create("ledger_database_cut").await else {
        return;
    };
    let proxy = Proxy::start(schema.target()).await;
    let stage = Stage::start("pgcut", "");
    let spec = Spec::new(Some(schema.url_via(proxy.port)));
    let config = stage.gateway_config("gateway.toml", &spec);
    let log = stage.scratch.path("gateway.log");
    let _gateway = start_gateway(&config, &log).await;
    let client = stage.client();
    assert!(
        wait_readyz(&client, spec.listen, 200, Duration::from_secs(20)).await,
        "not ready:\n{}",
        log_tail(&log, 20)
    );
    let url = gateway_url(spec.listen, NATIONAL);
    let first = send(&client, &url, settlement(&msgid(TAG, 0), &person(0))).await;
    assert!(matches!(first, Got::Settled(_)), "{first:?}");

    proxy.cut();
    for n in 1..=3 {
        expect_ledger_unavailable(&client, spec.listen, TAG, n).await;
    }
    assert!(
        wait_readyz(&client, spec.listen, 503, Duration::from_secs(15)).await,
        "/readyz still ready with the ledger's database cut off"
    );

    proxy.restore();
    // "Nothing was forwarded; retry later": the same message settles now.
    settles_again(&client, spec.listen, TAG, 1, &log).await;
    assert!(
        wait_readyz(&client, spec.listen, 200, Duration::from_secs(15)).await,
        "not ready again with the ledger's database back"
    );
    let ledger = Ledger::open(&schema.url()).await.unwrap();
    for n in 0..=3 {
        let stands = standing(&client, &url, &msgid(TAG + 1, n), &person(n)).await;
        let entry = ledger
            .by_msgid(BEIJING_HOSPITAL, &msgid(TAG, n))
            .await
            .unwrap();
        if n <= 1 {
            assert_eq!(stands, 1, "settlement {n}");
            assert_eq!(entry.map(|e| e.state), Some(State::Done), "settlement {n}");
        } else {
            assert_eq!(
                stands, 0,
                "settlement {n} was refused with 503, yet the platform settled it"
            );
            assert_eq!(
                entry, None,
                "settlement {n} was refused with 503, yet journalled"
            );
        }
    }
}

/// A tmpfs mounted for one test, unmounted (lazily) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: PathBuf, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(Tmpfs(path))
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` to the last byte.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    while file.write_all(&chunk).and_then(|()| file.flush()).is_ok() {}
    let _ = file.write_all(&[0u8; 1]);
    let _ = file.sync_all();
    path
}

/// A SQLite ledger on a small tmpfs, filled to the last byte mid-run.
/// Returns `None` (after saying SKIPPED) when no tmpfs can be mounted.
async fn disk_full(test: &str, tag: u32, watch_ready: bool) -> Option<bool> {
    let stage = Stage::start("diskfull", "");
    let disk = match Tmpfs::mount(stage.scratch.path("disk"), "4m") {
        Ok(disk) => disk,
        Err(why) => {
            skipped(test, &format!("cannot mount a small tmpfs ({why})"));
            return None;
        }
    };
    let db = disk.0.join("ledger.db");
    let spec = Spec::new(Some(format!("sqlite://{}", db.display())));
    let config = stage.gateway_config("gateway.toml", &spec);
    let log = stage.scratch.path("gateway.log");
    let _gateway = start_gateway(&config, &log).await;
    let client = stage.client();
    assert!(
        wait_readyz(&client, spec.listen, 200, Duration::from_secs(20)).await,
        "not ready:\n{}",
        log_tail(&log, 20)
    );
    let url = gateway_url(spec.listen, NATIONAL);
    let first = send(&client, &url, settlement(&msgid(tag, 0), &person(0))).await;
    assert!(matches!(first, Got::Settled(_)), "{first:?}");

    let filler = fill(&disk.0);
    for n in 1..=3 {
        expect_ledger_unavailable(&client, spec.listen, tag, n).await;
    }
    let not_ready =
        watch_ready && wait_readyz(&client, spec.listen, 503, Duration::from_secs(10)).await;

    std::fs::remove_file(&filler).unwrap();
    settles_again(&client, spec.listen, tag, 1, &log).await;
    assert!(
        wait_readyz(&client, spec.listen, 200, Duration::from_secs(15)).await,
        "not ready again with space on the disk"
    );
    let ledger = Ledger::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    for n in 0..=3 {
        let stands = standing(&client, &url, &msgid(tag + 1, n), &person(n)).await;
        let entry = ledger
            .by_msgid(BEIJING_HOSPITAL, &msgid(tag, n))
            .await
            .unwrap();
        if n <= 1 {
            assert_eq!(stands, 1, "settlement {n}");
            assert_eq!(entry.map(|e| e.state), Some(State::Done), "settlement {n}");
        } else {
            assert_eq!(
                stands, 0,
                "settlement {n} was refused with 503, yet the platform settled it"
            );
            assert_eq!(
                entry, None,
                "settlement {n} was refused with 503, yet journalled"
            );
        }
    }
    Some(not_ready)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_disk_full_gives_503_forwards_nothing_and_recovers() {
    disk_full(
        "ledger_disk_full_gives_503_forwards_nothing_and_recovers",
        5000,
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_disk_full_turns_readyz_not_ready() {
    if let Some(not_ready) = disk_full("ledger_disk_full_turns_readyz_not_ready", 5100, true).await
    {
        assert!(
            not_ready,
            "/readyz stayed ready with the ledger's disk full"
        );
    }
}

// ---------------------------------------------------- 4. circuit breaker

/// A platform address that accepts TCP and never completes a TLS handshake:
/// it counts the calls that reach it (a connection that sends a byte; the
/// gateway's reachability probe connects and sends nothing), holds each for
/// `hold`, then closes it.
struct Blackhole {
    port: u16,
    tries: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Blackhole {
    async fn start(hold: Duration) -> Blackhole {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tries = Arc::new(AtomicU64::new(0));
        let counter = tries.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut byte = [0u8; 1];
                    if let Ok(Ok(1)) =
                        tokio::time::timeout(Duration::from_secs(2), stream.read(&mut byte)).await
                    {
                        counter.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(hold).await;
                    }
                });
            }
        });
        Blackhole { port, tries, task }
    }

    fn tries(&self) -> u64 {
        self.tries.load(Ordering::SeqCst)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn breaker_open(metrics: &str, region: &str, upstream: usize) -> Option<u8> {
    let prefix =
        format!("jjj_upstream_breaker_open{{region=\"{region}\",upstream=\"{upstream}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

async fn presettle(client: &TestClient, port: u16, n: usize, insured: &str) -> Answer {
    let mut json: Value = serde_json::from_str(&fixture("2206-request.json")).unwrap();
    json["msgid"] = msgid(6000, n).into();
    json["insuplc_admdvs"] = insured.into();
    client
        .post(
            &gateway_url(port, NATIONAL),
            serde_json::to_vec(&json).unwrap(),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_platform_address_is_failed_over_and_its_breaker_keeps_calls_off_it() {
    let stage = Stage::start("breaker", "");
    let blackhole = Blackhole::start(Duration::from_millis(400)).await;
    let mut spec = Spec::new(None);
    // Tianjin's first address refuses connections; Hebei's accepts and never shakes hands.
    spec.tianjin = Some(vec![
        format!("https://127.0.0.1:{}{NATIONAL}", free_port()),
        stage.platform_url(1),
    ]);
    spec.hebei = Some(vec![
        format!("https://127.0.0.1:{}{NATIONAL}", blackhole.port),
        stage.platform_url(2),
    ]);
    let config = stage.gateway_config("gateway.toml", &spec);
    let log = stage.scratch.path("gateway.log");
    let _gateway = start_gateway(&config, &log).await;
    let client = stage.client();
    assert!(
        wait_readyz(&client, spec.listen, 200, Duration::from_secs(20)).await,
        "not ready:\n{}",
        log_tail(&log, 20)
    );
    let port = spec.listen;
    let served = |answer: &Answer, region: &str| {
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(answer.json()["output"]["setlinfo"]["clr_optins"], region);
    };

    // Refused connections: every call fails over and is served; the breaker opens.
    for n in 0..7 {
        served(&presettle(&client, port, n, "120000").await, "120000");
    }
    let text = metrics(&client, port).await;
    assert_eq!(breaker_open(&text, "120000", 0), Some(1), "{text}");
    assert_eq!(breaker_open(&text, "120000", 1), Some(0), "{text}");

    // The address that accepts and hangs: tried by each call until the breaker opens…
    let max = gateway::upstream::BREAKER_FAILURES_MAX as usize;
    for n in 0..max {
        served(&presettle(&client, port, 100 + n, "130600").await, "130000");
    }
    let opened = Instant::now();
    assert_eq!(
        blackhole.tries(),
        max as u64,
        "one try per call before opening"
    );
    let text = metrics(&client, port).await;
    assert_eq!(breaker_open(&text, "130000", 0), Some(1), "{text}");
    // …and no longer while it is open.
    for n in 0..10 {
        served(&presettle(&client, port, 200 + n, "130600").await, "130000");
    }
    assert_eq!(
        blackhole.tries(),
        max as u64,
        "calls still went to an address whose breaker is open"
    );
    // Once the open period is over, one call probes it (half-open), however many come at once.
    let open = Duration::from_millis(gateway::upstream::BREAKER_OPEN_MS);
    tokio::time::sleep(
        (opened + open + Duration::from_millis(300)).saturating_duration_since(Instant::now()),
    )
    .await;
    let client = Arc::new(client);
    let burst: Vec<_> = (0..8)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move { presettle(&client, port, 300 + n, "130600").await })
        })
        .collect();
    for answer in burst {
        served(&answer.await.unwrap(), "130000");
    }
    assert_eq!(
        blackhole.tries(),
        max as u64 + 1,
        "half-open lets exactly one call try the address"
    );
    let text = metrics(&client, port).await;
    assert_eq!(
        breaker_open(&text, "130000", 0),
        Some(1),
        "open again: {text}"
    );
}
