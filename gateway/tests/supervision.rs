//! Cross-region supervision over real mutual TLS through the real gateway
//! (issue 11): each rule positive and negative across regions, refusal in
//! `refuse` mode, the signals API and its exports, `jjj-gateway signals`,
//! a restart in the middle of a window, and no ID number or name anywhere
//! supervision writes — on SQLite and (skipped loudly without
//! `JJJ_TEST_POSTGRES_URL`) PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod harness;

use harness::*;
use serde_json::Value;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

const HMAC_KEY: &str = "6a6a6a2d676174657761792d746573742d6b65792d3031323334353637383961626364";

fn today() -> String {
    contracts::DateTime::now().date().to_string()
}

fn time(offset_minutes: i64) -> String {
    let ms = contracts::DateTime::now().unix_millis() + offset_minutes * 60_000;
    contracts::DateTime::from_unix_millis(ms)
        .unwrap()
        .truncated_to_seconds()
        .to_string()
}

/// A valid ID number, distinct per `n`.
fn id(n: u32) -> String {
    gateway::sandbox::population::with_check_character(&format!("13060219800101{n:03}"))
        .expect("an ID number")
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn msgid(hospital: &str) -> String {
    format!(
        "{hospital}{}{:04}",
        contracts::DateTime::now().to_compact(),
        SEQ.fetch_add(1, Ordering::Relaxed) % 10_000
    )
}

fn region_of(hospital: &str) -> &'static str {
    if hospital == TIANJIN_HOSPITAL {
        "120000"
    } else {
        "110000"
    }
}

fn envelope(infno: &str, hospital: &str, insured: &str) -> Value {
    let mut json: Value = serde_json::from_str(&fixture(&format!("{infno}-request.json"))).unwrap();
    json["fixmedins_code"] = hospital.into();
    json["mdtrtarea_admvs"] = region_of(hospital).into();
    json["insuplc_admdvs"] = insured.into();
    json["msgid"] = msgid(hospital).into();
    json
}

struct Stage {
    world: World,
    ledger: ledger::Ledger,
}

impl Stage {
    async fn post(&self, hospital: &str, json: &Value) -> Answer {
        self.world
            .client(hospital)
            .post(&self.world.url(NATIONAL), serde_json::to_vec(json).unwrap())
            .await
    }

    async fn ok(&self, hospital: &str, json: &Value) -> Value {
        let answer = self.post(hospital, json).await;
        assert_eq!(
            (answer.status, answer.infcode()),
            (200, 0),
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        answer.json()
    }

    async fn admit(&self, hospital: &str, person: u32, begin: &str) -> String {
        let mut json = envelope("2401", hospital, "130600");
        json["input"]["mdtrtinfo"]["mdtrt_cert_no"] = id(person).into();
        json["input"]["mdtrtinfo"]["begntime"] = begin.into();
        let answer = self.ok(hospital, &json).await;
        answer["output"]["data"]["mdtrt_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn discharge(&self, hospital: &str, mdtrt_id: &str, end: &str) {
        let mut json = envelope("2402", hospital, "130600");
        json["input"]["dscginfo"]["mdtrt_id"] = mdtrt_id.into();
        json["input"]["dscginfo"]["endtime"] = end.into();
        self.ok(hospital, &json).await;
    }

    async fn upload(&self, hospital: &str, mdtrt_id: &str, code: &str) {
        let mut json = envelope("2204", hospital, "130600");
        for line in json["input"]["feedetail"].as_array_mut().unwrap() {
            line["mdtrt_id"] = mdtrt_id.into();
        }
        json["input"]["feedetail"][0]["med_list_codg"] = code.into();
        self.ok(hospital, &json).await;
    }

    fn outpatient(&self, hospital: &str, person: u32, mdtrt_id: &str, invono: &str) -> Value {
        let mut json = envelope("2207", hospital, "130600");
        json["input"]["data"]["mdtrt_cert_no"] = id(person).into();
        json["input"]["data"]["mdtrt_id"] = mdtrt_id.into();
        json["input"]["data"]["invono"] = invono.into();
        json
    }

    async fn settle(&self, hospital: &str, person: u32, mdtrt_id: &str, invono: &str) {
        let json = self.outpatient(hospital, person, mdtrt_id, invono);
        self.ok(hospital, &json).await;
    }

    async fn pharmacy(&self, hospital: &str, person: u32) {
        let mut json = envelope("2102", hospital, "130600");
        json["input"]["data"]["mdtrt_cert_no"] = id(person).into();
        self.ok(hospital, &json).await;
    }

    async fn signals(&self, query: &str) -> Vec<Value> {
        let answer = self
            .world
            .client(OFFICER)
            .get(
                &self
                    .world
                    .url(&format!("/v1/signals?date={}{query}", today())),
            )
            .await;
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        answer.json()["signals"].as_array().unwrap().clone()
    }

    /// Waits until `rule` has `count` signals (they are written off the request's path).
    async fn expect(&self, rule: &str, count: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let found = self.signals(&format!("&rule={rule}")).await;
            if found.len() >= count || std::time::Instant::now() > deadline {
                assert_eq!(found.len(), count, "{rule}: {found:#?}");
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the gateway (SIGKILL: no shutdown of any kind).
    fn stop(&mut self) {
        let _ = self.world.gateway.child.kill();
        let _ = self.world.gateway.child.wait();
    }

    /// Starts the gateway again, on the same configuration and ledger.
    fn start(&mut self) {
        let config = self.world.scratch.path("gateway.toml");
        self.world.gateway =
            Process::start(&["serve", "--config", &config.display().to_string()], 1);
    }

    fn restart(&mut self) {
        self.stop();
        self.start();
    }
}

/// A world whose gateway journals to `url` with supervision on; BEIJING_HOSPITAL_2
/// has a baseline of 1 settlement a day, BEIJING_HOSPITAL one of 30.
async fn stage(name: &str, url: &str) -> Stage {
    let mut world = World::start(name, Settings::default());
    let ledger = ledger::Ledger::open(url).await.expect("open the ledger");
    let yesterday = contracts::DateTime::from_unix_millis(
        contracts::DateTime::now().unix_millis() - 86_400_000,
    )
    .unwrap()
    .date()
    .to_string();
    for (institution, settlements) in [(BEIJING_HOSPITAL_2, 1), (BEIJING_HOSPITAL, 30)] {
        ledger
            .set_settlement_count(ledger::DailyCount {
                institution: institution.into(),
                day: yesterday.clone(),
                settlements,
                amount: contracts::Money::from_fen(settlements * 10_020).unwrap(),
            })
            .await
            .unwrap();
    }
    let config = world.scratch.path("gateway.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        r#"
[ledger]
url = "{url}"

[supervision]
hmac_key = "{HMAC_KEY}"

[[supervision.rules]]
name = "concurrent_inpatient"

[[supervision.rules]]
name = "duplicate_bill"
window = "7d"

[[supervision.rules]]
name = "frequency"
mode = "refuse"
window = "1d"
max = 3

[[supervision.rules]]
name = "pharmacy_quantity"
window = "30d"
max_quantity = "10"

[[supervision.rules]]
name = "institution_surge"
window = "30d"
factor = 2
min_count = 3
min_baseline_days = 1
"#
    ));
    std::fs::write(&config, text).unwrap();
    let _ = world.gateway.child.kill();
    let _ = world.gateway.child.wait();
    world.gateway = Process::start(&["serve", "--config", &config.display().to_string()], 1);
    Stage { world, ledger }
}

/// Journals, as the gateway does, a settlement answered at Tianjin's
/// hospital with the invoice number `INV-DUP` already settled there twice:
/// its entry begun and finished with its supervision fact, in the ledger
/// only (no gateway evaluated it).
async fn journal_unevaluated_duplicate(ledger: &ledger::Ledger) {
    let events = ledger.supervision_events(0).await.unwrap();
    let template = events
        .iter()
        .find(|e| e.institution == TIANJIN_HOSPITAL && e.invono.as_deref() == Some("INV-DUP"))
        .expect("Tianjin's INV-DUP settlement is kept")
        .clone();
    let now = contracts::DateTime::now().unix_millis();
    let msgid = msgid(TIANJIN_HOSPITAL);
    let caller = TIANJIN_HOSPITAL.to_owned();
    let key = ledger::Key::new(&caller, &msgid);
    let begun = ledger
        .begin(ledger::NewEntry {
            key: key.clone(),
            infno: "2207".into(),
            institution: caller.clone(),
            insured: template.insured.clone().unwrap_or_default(),
            treatment: template.treatment.clone().unwrap_or_default(),
            region: template.insured.clone().unwrap_or_default(),
            digest: "00".repeat(32),
            original_msgid: None,
            cancels_setl_id: None,
            psn_no: None,
            received_at_ms: now - 20,
        })
        .await
        .unwrap();
    assert_eq!(begun, ledger::Begin::Fresh);
    let event = ledger::SupervisionEvent {
        id: format!("crashed-{msgid}"),
        at_ms: now - 5,
        msgid: Some(msgid.clone()),
        mdtrt_id: Some("V-CRASH".into()),
        setl_id: Some(format!("S-{msgid}")),
        ..template
    };
    let finish = ledger::Finish {
        state: ledger::State::Done,
        answered: ledger::Answered {
            setl_id: event.setl_id.clone(),
            mdtrt_id: event.mdtrt_id.clone(),
            insutype: Some("310".into()),
            med_type: Some("11".into()),
            clr_type: Some("11".into()),
            setl_time_ms: Some(now - 10),
            medfee_sumamt: event.amount,
            fund_pay_sumamt: None,
            acct_pay: None,
            psn_cash_pay: None,
            error_code: None,
            anomalies: Vec::new(),
        },
        reply: ledger::Reply {
            status: 200,
            media_type: "application/json".into(),
            bytes: b"{}".to_vec(),
            finished_at_ms: now,
        },
    };
    ledger
        .finish_observed(&key, finish, Some(ledger::Observed { event, count: None }))
        .await
        .unwrap();
}

/// The person number the fixtures name: the platform's pseudonymous number,
/// not an ID number nor a name. The journal keeps it with each settlement
/// (the gateway's own 2601 must name it), so it is in the ledger's database
/// files; it must be nowhere else — logs, signals, their exports.
const PSN_NO: &str = "13000000000012345678";

const PERSONAL: [&str; 5] = ["张丽", "李收费", "赵主任", "王医生", PSN_NO];

fn assert_no_personal_data(what: &str, bytes: &[u8], people: &[u32]) {
    assert_none_of(what, bytes, people, &PERSONAL);
}

/// The ledger's own files: no ID number, no name; the journal's psn_no is expected.
fn assert_no_personal_data_but_the_journals_psn_no(what: &str, bytes: &[u8], people: &[u32]) {
    let personal: Vec<&str> = PERSONAL.into_iter().filter(|p| *p != PSN_NO).collect();
    assert_none_of(what, bytes, people, &personal);
}

fn assert_none_of(what: &str, bytes: &[u8], people: &[u32], personal: &[&str]) {
    let text = String::from_utf8_lossy(bytes);
    for person in people {
        let number = id(*person);
        assert!(!text.contains(&number), "{what} holds an ID number");
        assert!(
            !text.contains(&number.to_lowercase()),
            "{what} holds an ID number"
        );
    }
    for name in personal {
        assert!(!text.contains(name), "{what} holds {name}");
    }
}

async fn every_rule(mut stage: Stage, sqlite_files: Option<Vec<std::path::PathBuf>>) {
    let (bj, bj2, tj) = (BEIJING_HOSPITAL, BEIJING_HOSPITAL_2, TIANJIN_HOSPITAL);

    // concurrent_inpatient: admitted in Beijing, then in Tianjin while still in (flagged) …
    let stay = stage.admit(bj, 1, &time(-120)).await;
    let second = stage.admit(tj, 1, &time(-10)).await;
    // … but not after a discharge, nor at the same institution twice.
    let other = stage.admit(bj, 2, &time(-300)).await;
    stage.discharge(bj, &other, &time(-200)).await;
    stage.admit(tj, 2, &time(-100)).await;
    stage.admit(bj2, 3, &time(-60)).await;
    stage.admit(bj2, 3, &time(-50)).await;
    let found = stage.expect("concurrent_inpatient", 1).await;
    let ids: Vec<&str> = found[0]["mdtrt_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&stay.as_str()) && ids.contains(&second.as_str()),
        "{found:#?}"
    );
    let regions = found[0]["regions"].to_string();
    assert!(
        regions.contains("110000") && regions.contains("120000"),
        "{regions}"
    );
    assert_eq!(found[0]["person_key"].as_str().unwrap().len(), 64);

    // duplicate_bill: the same lines and total twice for one person at one institution …
    stage.upload(bj2, "V-C1", "XA10BAE056A001010100483").await;
    stage.settle(bj2, 10, "V-C1", "INV-C1").await;
    stage.upload(bj2, "V-C2", "XA10BAE056A001010100483").await;
    stage.settle(bj2, 10, "V-C2", "INV-C2").await;
    // … not with other lines …
    stage.upload(bj2, "V-D1", "XA10BAE056A001010100483").await;
    stage.settle(bj2, 11, "V-D1", "INV-D1").await;
    stage.upload(bj2, "V-D2", "XB01AC06000000000000000").await;
    stage.settle(bj2, 11, "V-D2", "INV-D2").await;
    // … one invoice number twice at one institution, not at another.
    stage.settle(tj, 12, "V-E1", "INV-DUP").await;
    stage.settle(tj, 13, "V-F1", "INV-DUP").await;
    stage.settle(bj, 14, "V-G1", "INV-DUP").await;
    let found = stage.expect("duplicate_bill", 2).await;
    assert!(found
        .iter()
        .any(|s| s["detail"].as_str().unwrap().contains("invoice INV-DUP")));
    assert!(found.iter().any(
        |s| s["institutions"] == serde_json::json!([BEIJING_HOSPITAL_2])
            && s["setl_ids"].as_array().unwrap().len() == 2
    ));

    // frequency (refuse, 3 a day): three outpatient settlements across regions pass …
    stage.settle(bj, 20, "V-H1", "INV-H1").await;
    stage.settle(bj2, 20, "V-H2", "INV-H2").await;
    stage.settle(tj, 20, "V-H3", "INV-H3").await;
    // … the fourth is refused before forwarding, naming the rule, and journalled.
    let fourth = stage.outpatient(tj, 20, "V-H4", "INV-H4");
    let answer = stage.post(tj, &fourth).await;
    assert_eq!((answer.status, answer.infcode()), (403, 3005));
    let message = answer.json()["err_msg"].as_str().unwrap().to_owned();
    assert!(message.contains("frequency"), "{message}");
    assert_no_personal_data("the refusal", &answer.body, &[20]);
    let found = stage.expect("frequency", 1).await;
    assert!(found[0]["detail"].as_str().unwrap().contains("refused"));
    assert!(found[0]["regions"].to_string().contains("120000"));
    // Someone else's three are fine.
    for (hospital, visit) in [(bj, "V-I1"), (bj2, "V-I2"), (tj, "V-I3")] {
        stage
            .settle(hospital, 21, visit, &format!("INV-{visit}"))
            .await;
    }

    // pharmacy_quantity (10 in 30 days): 4 × 3 across regions …
    for hospital in [bj, bj2, tj, bj] {
        stage.pharmacy(hospital, 30).await;
    }
    // … but not 3 × 3.
    for hospital in [bj, bj2, tj] {
        stage.pharmacy(hospital, 31).await;
    }
    let found = stage.expect("pharmacy_quantity", 1).await;
    assert!(
        found[0]["detail"].as_str().unwrap().contains("12"),
        "{found:#?}"
    );
    assert_eq!(found[0]["institutions"].as_array().unwrap().len(), 3);
    // The first and the last of the four are the same purchase at the same
    // pharmacy, lines and total: a duplicate bill as well.
    let found = stage.expect("duplicate_bill", 3).await;
    assert!(
        found
            .iter()
            .any(|s| s["detail"].as_str().unwrap().starts_with(&format!(
                "the same pharmacy bill (25.20 yuan, same fee lines) settled twice at {bj}"
            ))),
        "{found:#?}"
    );

    // institution_surge: Beijing hospital 2 against its baseline of 1 a day;
    // Beijing hospital 1 (30 a day) and Tianjin's (no baseline) are not surges.
    let found = stage.expect("institution_surge", 1).await;
    assert_eq!(
        found[0]["institutions"],
        serde_json::json!([BEIJING_HOSPITAL_2])
    );
    assert!(found[0]["person_key"].is_null());

    // A restart in the middle of the windows keeps them: the facts are
    // written with the journal's final write, before each answer, so the
    // gateway is killed (SIGKILL) right after the last answer, with no pause.
    stage.restart();
    let fifth = stage.outpatient(bj, 20, "V-H5", "INV-H5");
    let answer = stage.post(bj, &fifth).await;
    assert_eq!(
        (answer.status, answer.infcode()),
        (403, 3005),
        "the window was lost"
    );
    // The bill of the visits V-C1 and V-C2 (from their uploaded fee lines) survived.
    stage.upload(bj2, "V-C3", "XA10BAE056A001010100483").await;
    stage.settle(bj2, 10, "V-C3", "INV-C3").await;
    let found = stage.expect("duplicate_bill", 4).await;
    assert!(
        found
            .iter()
            .any(|s| s["mdtrt_ids"].to_string().contains("\"V-C3\"")),
        "{found:#?}"
    );
    stage.pharmacy(tj, 31).await;
    stage.expect("pharmacy_quantity", 2).await;
    let admitted = stage.admit(bj2, 1, &time(-5)).await;
    assert!(!admitted.is_empty());
    stage.expect("concurrent_inpatient", 2).await;

    // Killed between the journal's final write and the rules' evaluation:
    // the fact is in the ledger, its signal is not. Written here as such a
    // gateway leaves it — a third settlement with Tianjin's invoice INV-DUP
    // — the next start evaluates the newest facts again and finds it; a
    // second start finds nothing new (a finding keeps its id).
    let flagged = stage.signals("&rule=duplicate_bill").await.len();
    stage.stop();
    journal_unevaluated_duplicate(&stage.ledger).await;
    stage.start();
    stage.expect("duplicate_bill", flagged + 1).await;
    stage.restart();
    stage.expect("duplicate_bill", flagged + 1).await;

    // Refusals are journalled like any other.
    let refusals = stage
        .ledger
        .refusals(
            contracts::DateTime::now().unix_millis() - 3_600_000,
            i64::MAX,
        )
        .await
        .unwrap();
    assert_eq!(
        refusals
            .iter()
            .filter(|r| r.refusal.error_code == 3005)
            .count(),
        2
    );

    // Officers only.
    for code in [BEIJING_HOSPITAL, BEIJING_PLATFORM] {
        let answer = stage
            .world
            .client(code)
            .get(&stage.world.url(&format!("/v1/signals?date={}", today())))
            .await;
        assert_eq!(answer.status, 403, "{code}");
    }
    let officer = stage.world.client(OFFICER);
    let bad = officer
        .get(&stage.world.url("/v1/signals?date=2026-02-30"))
        .await;
    assert_eq!(bad.status, 400);

    // Exports per pair of regions, and no personal data anywhere.
    let people: Vec<u32> = vec![1, 2, 3, 10, 11, 12, 13, 14, 20, 21, 30, 31];
    let all = officer
        .get(&stage.world.url(&format!("/v1/signals?date={}", today())))
        .await;
    assert_no_personal_data("the API", &all.body, &people);
    let csv = officer
        .get(&stage.world.url(&format!(
            "/v1/signals?date={}&format=csv&pair=110000-120000",
            today()
        )))
        .await;
    assert_eq!(csv.status, 200);
    let text = String::from_utf8_lossy(&csv.body).to_string();
    assert!(
        text.contains("concurrent_inpatient") && text.contains("frequency"),
        "{text}"
    );
    assert!(!text.contains("institution_surge"), "{text}");
    assert_no_personal_data("the CSV", &csv.body, &people);
    let xlsx = officer
        .get(&stage.world.url(&format!(
            "/v1/signals?date={}&format=xlsx&pair=110000-130000",
            today()
        )))
        .await;
    assert_eq!(xlsx.status, 200);
    assert!(xlsx.body.starts_with(b"PK"));
    assert_no_personal_data("the XLSX", &xlsx.body, &people);

    let out = stage.world.scratch.path("signals-out");
    let output = std::process::Command::new(BIN)
        .args([
            "signals",
            "--config",
            &stage
                .world
                .scratch
                .path("gateway.toml")
                .display()
                .to_string(),
            "--date",
            &today(),
            "--out",
            &out.display().to_string(),
        ])
        .current_dir(stage.world.scratch.path(""))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("frequency"));
    assert_no_personal_data("the command's output", &output.stdout, &people);
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        assert_no_personal_data(
            &path.display().to_string(),
            &std::fs::read(&path).unwrap(),
            &people,
        );
    }
    assert!(out
        .join(format!("signals-{}-110000-120000.csv", today()))
        .exists());

    // The store itself.
    let signals = stage.ledger.signals(&today()).await.unwrap();
    let events = stage.ledger.supervision_events(0).await.unwrap();
    assert!(!events.is_empty());
    assert_no_personal_data(
        "the stored signals and events",
        format!("{signals:?}{events:?}").as_bytes(),
        &people,
    );
    for path in sqlite_files.unwrap_or_default() {
        if let Ok(bytes) = std::fs::read(&path) {
            let what = path.display().to_string();
            if path.extension().is_some_and(|e| e == "log") {
                assert_no_personal_data(&what, &bytes, &people);
            } else {
                assert_no_personal_data_but_the_journals_psn_no(&what, &bytes, &people);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_across_regions_on_sqlite() {
    let scratch = Scratch::new("supervision-db");
    let db = scratch.path("supervision.db");
    let url = format!("sqlite://{}", db.display());
    let stage = stage("supervision-sqlite", &url).await;
    let files = vec![
        db.clone(),
        scratch.path("supervision.db-wal"),
        stage.world.scratch.path("gateway.log"),
    ];
    every_rule(stage, Some(files)).await;
}

/// Says loudly, past the test harness's capture, that a test did not run.
fn skipped(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {test}: {why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_across_regions_on_postgres() {
    let base = match std::env::var("JJJ_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            skipped(
                "every_rule_across_regions_on_postgres",
                "JJJ_TEST_POSTGRES_URL is not set",
            );
            return;
        }
    };
    static N: AtomicU64 = AtomicU64::new(0);
    let schema = format!(
        "supervision_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("connect to JJJ_TEST_POSTGRES_URL");
    let task = tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-csearch_path%3D{schema}");
    let stage = stage("supervision-postgres", &url).await;
    every_rule(stage, None).await;
    let _ = client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await;
    drop(client);
    let _ = task.await;
}
