//! The regional platform sandbox as the gateway meets it: a real
//! `jjj-gateway sandbox` process over mutual TLS (the gateway's own client
//! certificate), its record surviving a restart, its daily statement, and
//! its answers to the reconciliation transactions 3201 and 3202.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod harness;

use adapters::Dialect;
use contracts::model::settlement::SetlInfo;
use contracts::statement::{Reader, Row, RowState};
use contracts::{Answer, AnswerBody, Date, DateTime, Infno, Money};
use harness::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A Tianjin hospital (三级 by its last digit) treating Beijing-insured people.
const HOSPITAL: &str = "H12010100789";
/// Another institution, whose settlements must not count in the first's checks.
const OTHER: &str = "H12010100456";
/// Beijing employee, 46, in service; opening account 1500.01; outpatient
/// deductible 1,800 a year, 70% at 三级 above it.
const PERSON: &str = "110105198001010016";

/// A sandbox with two national-dialect platforms (Beijing, Tianjin), its
/// configuration and certificates in a scratch folder.
struct Sandbox {
    scratch: Scratch,
    ports: [u16; 2],
    process: Option<Process>,
}

impl Sandbox {
    fn new(name: &str) -> Sandbox {
        let scratch = Scratch::new(name);
        certs_init(&scratch.path("certs"), &[]);
        let ports = [free_port(), free_port()];
        let config = format!(
            r#"ca = "certs/ca.pem"
cert = "certs/server.pem"
key = "certs/server.key"
data = "records"
[[platforms]]
admdvs = "110000"
name = "北京"
dialect = "national"
listen = "127.0.0.1:{}"
[[platforms]]
admdvs = "120000"
name = "天津"
dialect = "national"
listen = "127.0.0.1:{}"
"#,
            ports[0], ports[1]
        );
        std::fs::write(scratch.path("sandbox.toml"), config).unwrap();
        let mut sandbox = Sandbox {
            scratch,
            ports,
            process: None,
        };
        sandbox.start();
        sandbox
    }

    fn config(&self) -> String {
        self.scratch.path("sandbox.toml").display().to_string()
    }

    fn start(&mut self) {
        assert!(self.process.is_none());
        self.process = Some(Process::start(&["sandbox", "--config", &self.config()], 2));
    }

    /// Kills the process outright (SIGKILL): nothing is flushed on the way out.
    fn kill(&mut self) {
        let mut process = self.process.take().expect("running");
        process.child.kill().unwrap();
        process.child.wait().unwrap();
    }

    /// A client presenting the gateway's certificate, as the gateway calls platforms.
    fn client(&self) -> TestClient {
        TestClient::new(&self.scratch.path("certs"), "gateway")
    }

    fn beijing(&self) -> String {
        format!("https://127.0.0.1:{}{NATIONAL}", self.ports[0])
    }

    /// Runs `sandbox --config … ARGS`: (exit code, stdout, stderr).
    fn command(&self, args: &[&str]) -> (i32, String, String) {
        let output = Command::new(BIN)
            .args(["sandbox", "--config", &self.config()])
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Platform `admdvs`'s statement for `date`, parsed by the contract's reader.
    fn statement(&self, admdvs: &str, date: Date) -> Vec<Row> {
        let out = self.scratch.path(&format!("statement-{admdvs}-{date}.csv"));
        let (code, stdout, stderr) = self.command(&[
            "--statement",
            admdvs,
            "--date",
            &date.to_string(),
            "--out",
            &out.display().to_string(),
        ]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        read_statement(&out)
    }
}

fn read_statement(path: &Path) -> Vec<Row> {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    Reader::new(file)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn msgid(institution: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{institution}{}{:04}",
        DateTime::now().to_compact(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A national request from `institution` (treatment region Tianjin) to the
/// Beijing platform; its msgid is returned with it.
fn request(infno: &str, institution: &str, input: serde_json::Value) -> (String, Vec<u8>) {
    let id = msgid(institution);
    let body = serde_json::json!({
        "infno": infno,
        "msgid": id,
        "mdtrtarea_admvs": "120000",
        "insuplc_admdvs": "110000",
        "recer_sys_code": "YBXT",
        "infver": "V1.0",
        "opter_type": "1",
        "opter": "1022",
        "opter_name": "李收费",
        "inf_time": DateTime::now().truncated_to_seconds().to_string(),
        "fixmedins_code": institution,
        "fixmedins_name": "天津市示例医院",
        "input": input,
    });
    (id, serde_json::to_vec(&body).unwrap())
}

/// Sends and decodes; the answer must be a success.
async fn call(client: &TestClient, url: &str, infno: Infno, body: Vec<u8>) -> Answer {
    let answer = client.post(url, body).await;
    assert_eq!(answer.status, 200);
    let decoded = adapters::national::National
        .decode_answer(infno, &answer.body, &adapters::Limits::DEFAULT)
        .unwrap_or_else(|r| panic!("{r:?}: {}", String::from_utf8_lossy(&answer.body)));
    assert_eq!(
        decoded.envelope.infcode,
        Some(0),
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    decoded
}

/// Sends; the answer must be a refusal. Returns its err_msg.
async fn refused(client: &TestClient, url: &str, body: Vec<u8>) -> String {
    let answer = client.post(url, body).await;
    let json = answer.json();
    assert_ne!(json["infcode"], 0, "{json}");
    json["err_msg"].as_str().unwrap_or_default().to_owned()
}

/// 1101 by ID card: (psn_no, account balance).
async fn lookup(client: &TestClient, url: &str) -> (String, Money) {
    let (_, body) = request(
        "1101",
        HOSPITAL,
        serde_json::json!({"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": PERSON,
            "psn_cert_type": "01", "certno": PERSON}}),
    );
    let answer = call(client, url, Infno::PersonLookup, body).await;
    let Some(AnswerBody::PersonLookup(output)) = answer.output else {
        panic!("no lookup output");
    };
    let insurance = output.insuinfo.first().expect("insuinfo").clone();
    (
        output.baseinfo.and_then(|b| b.psn_no).expect("psn_no"),
        insurance.balc.expect("balc"),
    )
}

fn settlement_of(answer: Answer) -> SetlInfo {
    match answer.output {
        Some(
            AnswerBody::OutpatientSettle(o)
            | AnswerBody::OutpatientPreSettle(o)
            | AnswerBody::OutpatientSettleCancel(o),
        ) => o.setlinfo,
        other => panic!("not a settlement: {other:?}"),
    }
}

/// Outpatient 2206/2207 by psn_no: `inscope` yuan all in scope.
fn settle_request(
    infno: &str,
    institution: &str,
    psn_no: &str,
    inscope: &str,
    account: bool,
) -> (String, Vec<u8>) {
    request(
        infno,
        institution,
        serde_json::json!({"data": {
            "psn_no": psn_no,
            "mdtrt_cert_type": "01",
            "mdtrt_cert_no": "EVOUCHER",
            "med_type": "11",
            "medfee_sumamt": inscope,
            "psn_setlway": "01",
            "mdtrt_id": format!("MD{}", msgid(institution)),
            "insutype": "310",
            "acct_used_flag": if account { "1" } else { "0" },
            "fulamt_ownpay_amt": "0",
            "overlmt_selfpay": "0",
            "preselfpay_amt": "0",
            "inscp_scp_amt": inscope,
        }}),
    )
}

/// A committed settlement: (msgid, its setlinfo).
async fn settle(
    client: &TestClient,
    url: &str,
    institution: &str,
    psn_no: &str,
    inscope: &str,
    account: bool,
) -> (String, SetlInfo) {
    let (id, body) = settle_request("2207", institution, psn_no, inscope, account);
    let info = settlement_of(call(client, url, Infno::OutpatientSettle, body).await);
    assert!(info.setl_id.is_some(), "{info:?}");
    (id, info)
}

fn cancel_request(institution: &str, info: &SetlInfo, psn_no: &str) -> (String, Vec<u8>) {
    request(
        "2208",
        institution,
        serde_json::json!({"data": {"setl_id": info.setl_id, "mdtrt_id": info.mdtrt_id,
            "psn_no": psn_no}}),
    )
}

fn reversal_request(institution: &str, omsgid: &str, psn_no: &str) -> (String, Vec<u8>) {
    request(
        "2601",
        institution,
        serde_json::json!({"data": {"psn_no": psn_no, "omsgid": omsgid, "oinfno": "2207"}}),
    )
}

fn yuan(text: &str) -> Money {
    Money::parse_yuan(text).unwrap()
}

fn sum(amounts: impl IntoIterator<Item = Option<Money>>) -> Money {
    Money::sum(amounts.into_iter().map(|m| m.unwrap_or(Money::ZERO))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_survives_a_restart_and_makes_the_statement() {
    let mut sandbox = Sandbox::new("sandbox-restart");
    let client = sandbox.client();
    let url = sandbox.beijing();

    let (psn_no, opening) = lookup(&client, &url).await;
    assert_eq!(opening, yuan("1500.01"));
    // Four settlements paid from the account, all within the 1,800 deductible.
    let (m1, s1) = settle(&client, &url, HOSPITAL, &psn_no, "600.00", true).await;
    assert_eq!(
        (s1.act_pay_dedc, s1.acct_pay, s1.fund_pay_sumamt),
        (
            Some(yuan("600.00")),
            Some(yuan("600.00")),
            Some(Money::ZERO)
        )
    );
    let (m2, s2) = settle(&client, &url, HOSPITAL, &psn_no, "100.00", true).await;
    let (m3, s3) = settle(&client, &url, HOSPITAL, &psn_no, "50.00", true).await;
    // Cancel the second, reverse the third.
    let (c2, body) = cancel_request(HOSPITAL, &s2, &psn_no);
    let cancel = settlement_of(call(&client, &url, Infno::OutpatientSettleCancel, body).await);
    assert_eq!(cancel.medfee_sumamt, Some(yuan("-100.00")));
    let (r3, body) = reversal_request(HOSPITAL, &m3, &psn_no);
    call(&client, &url, Infno::Reversal, body).await;
    let (m4, s4) = settle(&client, &url, HOSPITAL, &psn_no, "200.00", true).await;
    assert_eq!(s4.act_pay_dedc, Some(yuan("200.00")));
    // 1500.01 − 600 − 200 (the cancelled and the reversed ones gave theirs back).
    assert_eq!(lookup(&client, &url).await.1, yuan("700.01"));

    sandbox.kill();
    sandbox.start();
    let client = sandbox.client();

    // The year's use carried over: the account, and the deductible borne (800 of 1,800).
    let (psn_no_again, balance) = lookup(&client, &url).await;
    assert_eq!(psn_no_again, psn_no);
    assert_eq!(balance, yuan("700.01"));
    let (_, body) = settle_request("2206", HOSPITAL, &psn_no, "1500.00", false);
    let pre = settlement_of(call(&client, &url, Infno::OutpatientPreSettle, body).await);
    assert_eq!(pre.act_pay_dedc, Some(yuan("1000.00")), "{pre:?}");
    assert_eq!(pre.setl_id, None);
    // A settlement made before the restart is cancelled after it, by psn_no
    // (which the record remembered).
    let (c4, body) = cancel_request(HOSPITAL, &s4, &psn_no);
    let cancel4 = settlement_of(call(&client, &url, Infno::OutpatientSettleCancel, body).await);
    assert_eq!(cancel4.acct_pay, Some(yuan("-200.00")));
    assert_ne!(cancel4.setl_id, s4.setl_id);
    assert_eq!(lookup(&client, &url).await.1, yuan("900.01"));
    // A new settlement gets an id never given before; its deductible shows the earlier use.
    let (m5, s5) = settle(&client, &url, HOSPITAL, &psn_no, "100.00", false).await;
    let ids = [&s1, &s2, &s3, &s4, &s5, &cancel, &cancel4].map(|s| s.setl_id.clone().unwrap());
    for (i, id) in ids.iter().enumerate() {
        assert!(!ids[..i].contains(id), "{id} given twice: {ids:?}");
    }
    // The serial (the last 10 digits) continued past the record's highest.
    let serial = |s: &SetlInfo| -> u64 {
        let id = s.setl_id.clone().unwrap();
        id[id.len() - 10..].parse().unwrap()
    };
    let before_restart = [&s1, &s2, &s3, &s4, &cancel].map(serial);
    assert!(
        before_restart
            .iter()
            .all(|n| serial(&cancel4) > *n && serial(&s5) > *n),
        "{ids:?}"
    );
    assert_eq!(s5.act_pay_dedc, Some(yuan("100.00")));
    // What was undone before the restart stays undone.
    let (_, body) = cancel_request(HOSPITAL, &s2, &psn_no);
    let why = refused(&client, &url, body).await;
    assert!(why.contains("already cancelled"), "{why}");
    let (_, body) = cancel_request(HOSPITAL, &s3, &psn_no);
    let why = refused(&client, &url, body).await;
    assert!(why.contains("already reversed"), "{why}");
    // Another institution cannot cancel this one's settlement.
    let (_, body) = cancel_request(OTHER, &s5, &psn_no);
    let why = refused(&client, &url, body).await;
    assert!(why.contains("not made by this institution"), "{why}");
    // Reversals of what committed nothing (again; a pre-settlement; unknown) are acknowledged, no rows.
    for omsgid in [m3.as_str(), "H12010100789NOSUCHMSGID", c2.as_str()] {
        let (_, body) = reversal_request(HOSPITAL, omsgid, &psn_no);
        call(&client, &url, Infno::Reversal, body).await;
    }

    // The statement, read while the sandbox runs.
    let day = s1.setl_time.unwrap().date();
    let mut rows = sandbox.statement("110000", day);
    let today = DateTime::now().date();
    if today != day {
        rows.extend(sandbox.statement("110000", today)); // the test crossed midnight
    }
    let expected: [(&str, &str, Option<&str>, &SetlInfo, RowState); 8] = [
        (&m1, &m1, None, &s1, RowState::Settled),
        (&m2, &m2, None, &s2, RowState::Settled),
        (&m3, &m3, None, &s3, RowState::Settled),
        (&m2, &c2, Some(&m2), &s2, RowState::Cancelled),
        (&m3, &r3, Some(&m3), &s3, RowState::Reversed),
        (&m4, &m4, None, &s4, RowState::Settled),
        (&m4, &c4, Some(&m4), &s4, RowState::Cancelled),
        (&m5, &m5, None, &s5, RowState::Settled),
    ];
    assert_eq!(rows.len(), expected.len(), "{rows:#?}");
    for (row, (settling, msgid, omsgid, info, state)) in rows.iter().zip(expected) {
        assert_eq!(row.state, state, "{row:?}");
        assert_eq!(row.setl_id, info.setl_id, "{row:?}");
        assert_eq!(row.msgid.as_deref(), Some(msgid), "{row:?}");
        assert_eq!(row.omsgid.as_deref(), omsgid, "{row:?}");
        assert_eq!(row.settling_msgid(), Some(settling));
        assert_eq!(row.mdtrt_id, info.mdtrt_id);
        assert_eq!(row.fixmedins_code, HOSPITAL);
        assert_eq!(row.insuplc_admdvs.to_string(), "110000");
        assert_eq!(row.mdtrtarea_admvs.to_string(), "120000");
        assert_eq!(row.insutype.as_deref(), Some("310"));
        assert_eq!(row.med_type.as_deref(), Some("11"));
        assert_eq!(row.clr_type.as_deref(), Some("11"));
        let sign = |m: Option<Money>| {
            if state.is_undo() {
                m.map(Money::negated)
            } else {
                m
            }
        };
        assert_eq!(row.medfee_sumamt, sign(info.medfee_sumamt), "{row:?}");
        assert_eq!(row.fund_pay_sumamt, sign(info.fund_pay_sumamt), "{row:?}");
        assert_eq!(row.acct_pay, sign(info.acct_pay), "{row:?}");
        assert_eq!(row.psn_cash_pay, sign(info.psn_cash_pay), "{row:?}");
        if state == RowState::Settled {
            assert_eq!(row.setl_time, info.setl_time.unwrap());
            assert!(row.medfee_sumamt.unwrap() > Money::ZERO);
        } else {
            assert!(row.medfee_sumamt.unwrap() < Money::ZERO);
            assert!(row.setl_time >= info.setl_time.unwrap());
        }
    }
    // Each undone settlement's rows sum to zero; the others remain.
    for (settling, net_zero) in [
        (&m1, false),
        (&m2, true),
        (&m3, true),
        (&m4, true),
        (&m5, false),
    ] {
        let mine: Vec<&Row> = rows
            .iter()
            .filter(|r| r.settling_msgid() == Some(settling.as_str()))
            .collect();
        assert_eq!(mine.len(), if net_zero { 2 } else { 1 });
        if net_zero {
            for amount in 0..4 {
                let total = sum(mine.iter().map(|r| r.amounts()[amount].1));
                assert_eq!(total, Money::ZERO, "{settling}: {mine:?}");
            }
        } else {
            assert!(mine[0].medfee_sumamt.unwrap() > Money::ZERO);
        }
    }
    // The cancel's row carries the cancel's own time, the day's net what remains.
    assert_eq!(
        sum(rows.iter().map(|r| r.medfee_sumamt)),
        yuan("700.00"),
        "{rows:#?}"
    );
    // Tianjin's platform settled nothing: a header only.
    assert!(sandbox.statement("120000", day).is_empty());
    // Another day has no rows.
    let before = Date::from_ymd(2020, 1, 1).unwrap();
    assert!(sandbox.statement("110000", before).is_empty());

    // Errors name the problem and exit 2.
    let out = sandbox.scratch.path("bad.csv").display().to_string();
    let (code, _, stderr) = sandbox.command(&[
        "--statement",
        "130000",
        "--date",
        &day.to_string(),
        "--out",
        &out,
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("130000") && stderr.contains("no such platform"),
        "{stderr}"
    );
    let (code, _, stderr) = sandbox.command(&[
        "--statement",
        "110000",
        "--date",
        "2026-02-30",
        "--out",
        &out,
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--date") && stderr.contains("2026-02-30"),
        "{stderr}"
    );
    let (code, _, stderr) = sandbox.command(&[
        "--statement",
        "11000X",
        "--date",
        "2026-02-03",
        "--out",
        &out,
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("11000X"), "{stderr}");
    let (code, _, stderr) = sandbox.command(&["--statement", "110000", "--date", "2026-02-03"]);
    assert_eq!(code, 2, "clap: --statement needs --out");
    assert!(stderr.contains("--out"), "{stderr}");
    assert!(!Path::new(&out).exists());
    // An unreadable record: garbage where a platform's record should be.
    let elsewhere = sandbox.scratch.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("110000.sqlite"), b"not a database at all").unwrap();
    let moved = std::fs::read_to_string(sandbox.config())
        .unwrap()
        .replace("data = \"records\"", "data = \"elsewhere\"");
    let other_config: PathBuf = sandbox.scratch.path("elsewhere.toml");
    std::fs::write(&other_config, moved).unwrap();
    for (admdvs, expect) in [("110000", "110000.sqlite"), ("120000", "no record")] {
        let output = Command::new(BIN)
            .args(["sandbox", "--config", &other_config.display().to_string()])
            .args(["--statement", admdvs, "--date", "2026-02-03", "--out", &out])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expect), "{stderr}");
    }
}

/// 3201 from `institution` for today, insurance type `insutype`, with these figures.
fn totals_request(
    institution: &str,
    day: Date,
    insutype: &str,
    count: i64,
    medfee: Money,
    fund: Money,
    acct: Money,
) -> Vec<u8> {
    request(
        "3201",
        institution,
        serde_json::json!({"data": {
            "insutype": insutype,
            "clr_type": "11",
            "setl_optins": "110000",
            "stmt_begndate": day.to_string(),
            "stmt_enddate": day.to_string(),
            "medfee_sumamt": medfee.to_yuan_string(),
            "fund_pay_sumamt": fund.to_yuan_string(),
            "acct_pay": acct.to_yuan_string(),
            "fixmedins_setl_cnt": count,
            "refd_setl_flag": "0",
        }}),
    )
    .1
}

fn detail_request(
    institution: &str,
    day: Date,
    count: i64,
    medfee: Money,
    fund: Money,
    cash: Money,
) -> Vec<u8> {
    request(
        "3202",
        institution,
        serde_json::json!({"data": {
            "setl_optins": "110000",
            "file_qury_no": "",
            "stmt_begndate": day.to_string(),
            "stmt_enddate": day.to_string(),
            "medfee_sumamt": medfee.to_yuan_string(),
            "fund_pay_sumamt": fund.to_yuan_string(),
            "cash_payamt": cash.to_yuan_string(),
            "fixmedins_setl_cnt": count,
        }}),
    )
    .1
}

async fn totals_check(client: &TestClient, url: &str, body: Vec<u8>) -> (String, String) {
    let answer = call(client, url, Infno::TotalsCheck, body).await;
    let Some(AnswerBody::TotalsCheck(output)) = answer.output else {
        panic!("no 3201 output");
    };
    (
        output.stmtinfo.stmt_rslt.unwrap_or_default(),
        output.stmtinfo.stmt_rslt_dscr.unwrap_or_default(),
    )
}

/// Outpatient 2207 naming the person by ID card ([`PERSON`]) and, as the
/// hospital's system has it, `psn_no` (which need not be the platform's own).
fn settle_by_id_card(psn_no: &str) -> (String, Vec<u8>) {
    request(
        "2207",
        HOSPITAL,
        serde_json::json!({"data": {
            "psn_no": psn_no,
            "mdtrt_cert_type": "02",
            "mdtrt_cert_no": PERSON,
            "med_type": "11",
            "medfee_sumamt": "80.00",
            "psn_setlway": "01",
            "mdtrt_id": format!("MD{}", msgid(HOSPITAL)),
            "insutype": "310",
            "acct_used_flag": "0",
            "fulamt_ownpay_amt": "0",
            "overlmt_selfpay": "0",
            "preselfpay_amt": "0",
            "inscp_scp_amt": "80.00",
        }}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reversal_must_name_the_person_of_the_settlement_it_reverses() {
    let sandbox = Sandbox::new("sandbox-reversal-person");
    let client = sandbox.client();
    let url = sandbox.beijing();
    let records = sandbox.scratch.path("records");
    let (own, _) = lookup(&client, &url).await;
    let his = "HIS-PSN-0001";
    assert_ne!(own, his);

    let (m1, body) = settle_by_id_card(his);
    let s1 = settlement_of(call(&client, &url, Infno::OutpatientSettle, body).await);
    assert!(s1.setl_id.is_some());
    let kept = sandbox_settlement(&records, "110000", &m1).expect("recorded");
    assert_eq!(kept.request_psn_no.as_deref(), Some(his));
    assert_eq!(kept.psn_no.as_deref(), Some(own.as_str()));

    // Without a person number, or naming someone else: refused as a platform
    // refuses (infcode -1, err_msg), and the settlement stands.
    let no_person = request(
        "2601",
        HOSPITAL,
        serde_json::json!({"data": {"omsgid": m1, "oinfno": "2207"}}),
    )
    .1;
    let empty = reversal_request(HOSPITAL, &m1, "").1;
    for body in [no_person, empty] {
        let answer = client.post(&url, body).await;
        assert_eq!(
            answer.infcode(),
            -1,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let why = answer.json()["err_msg"].as_str().unwrap().to_owned();
        assert!(why.contains("psn_no is missing"), "{why}");
    }
    for other in ["-", "HIS-PSN-0002", "11000000000000000000"] {
        let why = refused(&client, &url, reversal_request(HOSPITAL, &m1, other).1).await;
        assert!(why.contains("psn_no is not the person"), "{why}");
        assert!(!why.contains(other), "the refusal quotes the number: {why}");
    }
    let kept = sandbox_settlement(&records, "110000", &m1).expect("recorded");
    assert_eq!(kept.undone, None);

    // Naming the person as the settlement did: reversed.
    let (r1, body) = reversal_request(HOSPITAL, &m1, his);
    call(&client, &url, Infno::Reversal, body).await;
    let kept = sandbox_settlement(&records, "110000", &m1).expect("recorded");
    assert_eq!(kept.undone, Some(RowState::Reversed));
    assert_eq!(kept.undone_by.as_deref(), Some(r1.as_str()));
    assert_eq!(kept.undone_psn_no.as_deref(), Some(his));
    // Again: acknowledged, and still refused when naming someone else.
    call(
        &client,
        &url,
        Infno::Reversal,
        reversal_request(HOSPITAL, &m1, his).1,
    )
    .await;
    let why = refused(&client, &url, reversal_request(HOSPITAL, &m1, "-").1).await;
    assert!(why.contains("psn_no is not the person"), "{why}");

    // The platform's own number for the person names them too.
    let (m2, body) = settle_by_id_card(his);
    settlement_of(call(&client, &url, Infno::OutpatientSettle, body).await);
    call(
        &client,
        &url,
        Infno::Reversal,
        reversal_request(HOSPITAL, &m2, &own).1,
    )
    .await;
    let kept = sandbox_settlement(&records, "110000", &m2).expect("recorded");
    assert_eq!(kept.undone, Some(RowState::Reversed));
    assert_eq!(kept.undone_psn_no.as_deref(), Some(own.as_str()));

    // A msgid that committed nothing: acknowledged, whoever is named.
    call(
        &client,
        &url,
        Infno::Reversal,
        reversal_request(HOSPITAL, "H12010100789NOSUCHMSGID", "-").1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_and_detail_checks_answer_from_the_record() {
    let sandbox = Sandbox::new("sandbox-checks");
    let client = sandbox.client();
    let url = sandbox.beijing();
    let (psn_no, _) = lookup(&client, &url).await;
    // Above the deductible, so the fund pays: 2,000 → 1,800 deductible, 70% of 200.
    let (_, t1) = settle(&client, &url, HOSPITAL, &psn_no, "2000.00", true).await;
    assert_eq!(t1.fund_pay_sumamt, Some(yuan("140.00")), "{t1:?}");
    let (_, t2) = settle(&client, &url, HOSPITAL, &psn_no, "300.00", false).await;
    let (_, body) = cancel_request(HOSPITAL, &t2, &psn_no);
    call(&client, &url, Infno::OutpatientSettleCancel, body).await;
    let (_, t3) = settle(&client, &url, HOSPITAL, &psn_no, "100.00", false).await;
    // Another institution's settlement does not count for HOSPITAL.
    let (_, other) = settle(&client, &url, OTHER, &psn_no, "55.00", false).await;
    let day = t1.setl_time.unwrap().date();
    let kept = [&t1, &t3];
    let medfee = sum(kept.iter().map(|s| s.medfee_sumamt));
    let fund = sum(kept.iter().map(|s| s.fund_pay_sumamt));
    let acct = sum(kept.iter().map(|s| s.acct_pay));
    let cash = sum(kept.iter().map(|s| s.psn_cash_pay));
    assert_eq!(medfee, yuan("2100.00"));

    // 3201 balanced: two settlements net of the cancel.
    let (rslt, dscr) = totals_check(
        &client,
        &url,
        totals_request(HOSPITAL, day, "310", 2, medfee, fund, acct),
    )
    .await;
    assert_eq!(rslt, "0", "{dscr}");
    // Not balanced: a count, an amount, an insurance type the platform has nothing of.
    let (rslt, dscr) = totals_check(
        &client,
        &url,
        totals_request(HOSPITAL, day, "310", 3, medfee, fund, acct),
    )
    .await;
    assert_eq!(rslt, "1");
    assert!(
        dscr.contains("fixmedins_setl_cnt: institution 3, platform 2"),
        "{dscr}"
    );
    assert!(!dscr.contains("medfee_sumamt"), "{dscr}");
    let off = medfee.checked_add(yuan("0.01")).unwrap();
    let (rslt, dscr) = totals_check(
        &client,
        &url,
        totals_request(HOSPITAL, day, "310", 2, off, fund, acct),
    )
    .await;
    assert_eq!(rslt, "1");
    assert!(
        dscr.contains("medfee_sumamt: institution 2100.01, platform 2100.00"),
        "{dscr}"
    );
    let (rslt, dscr) = totals_check(
        &client,
        &url,
        totals_request(HOSPITAL, day, "390", 2, medfee, fund, acct),
    )
    .await;
    assert_eq!(rslt, "1");
    assert!(dscr.contains("platform 0"), "{dscr}");
    // The other institution balances on its own figures.
    let (rslt, dscr) = totals_check(
        &client,
        &url,
        totals_request(
            OTHER,
            day,
            "310",
            1,
            yuan("55.00"),
            other.fund_pay_sumamt.unwrap(),
            Money::ZERO,
        ),
    )
    .await;
    assert_eq!(rslt, "0", "{dscr}");
    // Missing figures are refused, naming the field.
    let (_, body) = request(
        "3201",
        HOSPITAL,
        serde_json::json!({"data": {"insutype": "310", "clr_type": "11", "setl_optins": "110000",
            "stmt_begndate": day.to_string(), "medfee_sumamt": "0", "fund_pay_sumamt": "0",
            "acct_pay": "0", "fixmedins_setl_cnt": 0}}),
    );
    let why = refused(&client, &url, body).await;
    assert!(why.contains("stmt_enddate"), "{why}");

    // 3202 balanced: no differences.
    let answer = call(
        &client,
        &url,
        Infno::DetailCheck,
        detail_request(HOSPITAL, day, 2, medfee, fund, cash),
    )
    .await;
    let Some(AnswerBody::DetailCheck(output)) = answer.output else {
        panic!("no 3202 output");
    };
    assert!(output.fileinfo.is_empty(), "{:?}", output.fileinfo);
    // Not balanced: the platform's rows of the period, each named.
    let answer = call(
        &client,
        &url,
        Infno::DetailCheck,
        detail_request(HOSPITAL, day, 1, t1.medfee_sumamt.unwrap(), fund, cash),
    )
    .await;
    let Some(AnswerBody::DetailCheck(output)) = answer.output else {
        panic!("no 3202 output");
    };
    let listed: Vec<(Option<String>, Option<String>, Option<Money>)> = output
        .fileinfo
        .iter()
        .map(|d| (d.setl_id.clone(), d.refd_setl_flag.clone(), d.medfee_sumamt))
        .collect();
    assert_eq!(
        listed,
        vec![
            (t1.setl_id.clone(), Some("0".into()), t1.medfee_sumamt),
            (t2.setl_id.clone(), Some("0".into()), t2.medfee_sumamt),
            (
                t2.setl_id.clone(),
                Some("1".into()),
                t2.medfee_sumamt.map(Money::negated)
            ),
            (t3.setl_id.clone(), Some("0".into()), t3.medfee_sumamt),
        ]
    );
    for d in &output.fileinfo {
        assert_eq!(d.stmt_rslt.as_deref(), Some("1"));
        assert_eq!(d.psn_no.as_deref(), Some(psn_no.as_str()));
        assert!(d.msgid.as_deref().is_some_and(|m| m.starts_with(HOSPITAL)));
    }
    assert_eq!(output.fileinfo[1].msgid, output.fileinfo[2].msgid);
}
