//! The clearing officers' page (`/clearing/`) in a real headless Chromium,
//! driven over the WebDriver protocol by `chromedriver`, against the real
//! `jjj-gateway serve` and `sandbox` processes over mutual TLS: Chromium
//! presents the officer's (or the platform's) client certificate from an NSS
//! database in a temporary HOME, picked without a prompt by the managed
//! policy `AutoSelectCertificateForUrls`.
//!
//! The world supervises: a person's second outpatient settlement of the day
//! raises a real `frequency` signal, which the officer finds, opens and
//! filters in the page's signals view, and a platform does not see.
//!
//! Needs the Debian packages `chromium`, `chromium-driver` and
//! `libnss3-tools`, and `openssl`; without them the test prints `SKIPPED`
//! and passes (CI installs them). It writes the managed policy file
//! [`POLICY_PATH`] (root is needed for that).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod harness;

use harness::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The common name of the development CA (`gateway/src/certs.rs`).
const CA_CN: &str = "jjj-gateway development CA";
/// The managed policy that makes Chromium present a client certificate of our CA without asking.
const POLICY_PATH: &str = "/etc/chromium/policies/managed/jjj-test.json";
/// The regions the harness configures.
const REGIONS: [&str; 3] = ["110000", "120000", "130000"];
/// How long the page may take to show what it should.
const PAGE_WAIT: Duration = Duration::from_secs(15);
/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Prints `SKIPPED: why` past the test harness's capture, so it is seen even when the test passes.
fn skipped(why: &str) {
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: officers_page: {why}");
}

/// The first of `names` found on `PATH`.
fn program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// The programs the test drives.
struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
    certutil: PathBuf,
    pk12util: PathBuf,
    openssl: PathBuf,
}

impl Tools {
    /// The tools, or `None` after printing SKIPPED.
    fn find() -> Option<Tools> {
        let need = [
            (
                &["chromium", "chromium-browser"][..],
                "Debian package chromium",
            ),
            (&["chromedriver"][..], "Debian package chromium-driver"),
            (&["certutil"][..], "Debian package libnss3-tools"),
            (&["pk12util"][..], "Debian package libnss3-tools"),
            (&["openssl"][..], "Debian package openssl"),
        ];
        let found: Vec<Option<PathBuf>> = need.iter().map(|(names, _)| program(names)).collect();
        let missing: Vec<String> = need
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|((names, package), _)| format!("{} ({package})", names[0]))
            .collect();
        if !missing.is_empty() {
            skipped(&format!(
                "not installed: {}; the officers' page was NOT tested in a browser",
                missing.join(", ")
            ));
            return None;
        }
        let mut found = found.into_iter().map(Option::unwrap);
        Some(Tools {
            chromium: found.next().unwrap(),
            chromedriver: found.next().unwrap(),
            certutil: found.next().unwrap(),
            pk12util: found.next().unwrap(),
            openssl: found.next().unwrap(),
        })
    }
}

/// Writes the managed policy unless it is already there as it should be;
/// `false` (after printing SKIPPED) when it cannot.
fn ensure_policy() -> bool {
    let entry = json!({
        "pattern": "https://127.0.0.1:*",
        "filter": {"ISSUER": {"CN": CA_CN}},
    });
    let policy = json!({ "AutoSelectCertificateForUrls": [entry.to_string()] });
    let text = format!("{}\n", serde_json::to_string_pretty(&policy).unwrap());
    if std::fs::read_to_string(POLICY_PATH).is_ok_and(|t| t == text) {
        return true;
    }
    let path = Path::new(POLICY_PATH);
    let written =
        std::fs::create_dir_all(path.parent().unwrap()).and_then(|()| std::fs::write(path, &text));
    match written {
        Ok(()) => true,
        Err(e) => {
            skipped(&format!(
                "cannot write the Chromium policy {POLICY_PATH} ({e}; it needs root): \
                 the officers' page was NOT tested in a browser"
            ));
            false
        }
    }
}

fn run(program: &Path, args: &[&str], env_home: Option<&Path>) {
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null());
    if let Some(home) = env_home {
        command.env("HOME", home);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{} {args:?} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A HOME whose NSS database (`$HOME/.pki/nssdb`) trusts the development CA
/// and holds `code`'s client certificate and key.
fn browser_home(tools: &Tools, world: &World, code: &str) -> PathBuf {
    let certs = world.scratch.path("certs");
    let home = world.scratch.path(&format!("home-{code}"));
    let nssdb = home.join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).unwrap();
    let db = format!("sql:{}", nssdb.display());
    run(
        &tools.certutil,
        &["-N", "-d", &db, "--empty-password"],
        Some(&home),
    );
    let ca = certs.join("ca.pem").display().to_string();
    run(
        &tools.certutil,
        &["-A", "-d", &db, "-n", "jjj-dev-ca", "-t", "C,,", "-i", &ca],
        Some(&home),
    );
    let p12 = home.join(format!("{code}.p12")).display().to_string();
    run(
        &tools.openssl,
        &[
            "pkcs12",
            "-export",
            "-in",
            &certs.join(format!("{code}.pem")).display().to_string(),
            "-inkey",
            &certs.join(format!("{code}.key")).display().to_string(),
            "-name",
            code,
            "-out",
            &p12,
            "-passout",
            "pass:jjj-test",
        ],
        Some(&home),
    );
    run(
        &tools.pk12util,
        &["-i", &p12, "-d", &db, "-W", "jjj-test"],
        Some(&home),
    );
    home
}

/// One HTTP/1.1 exchange with chromedriver on 127.0.0.1: status and JSON body.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    // Read the head, then exactly the body: chromedriver may keep the connection open.
    let mut raw = Vec::new();
    let mut buffer = [0u8; 8192];
    let split = loop {
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break split;
        }
        let n = stream.read(&mut buffer).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the end of the headers".into());
        }
        raw.extend_from_slice(&buffer[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let mut content = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head}"))?;
    let length = head.lines().find_map(|line| {
        line.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    if let Some(length) = length {
        while content.len() < length {
            let n = stream.read(&mut buffer).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed before the end of the body".into());
            }
            content.extend_from_slice(&buffer[..n]);
        }
        content.truncate(length);
    } else if head.contains("transfer-encoding: chunked") {
        while !content.ends_with(b"0\r\n\r\n") {
            let n = stream.read(&mut buffer).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            content.extend_from_slice(&buffer[..n]);
        }
        content = dechunk(&content)?;
    } else {
        stream
            .read_to_end(&mut content)
            .map_err(|e| e.to_string())?;
    }
    let value = if content.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&content)
            .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&content)))?
    };
    Ok((status, value))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk")?;
        let size = std::str::from_utf8(&data[..line])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .ok_or("bad chunk size")?;
        data = &data[line + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or("short chunk")?);
        data = data.get(size + 2..).ok_or("short chunk")?;
    }
}

/// chromedriver and one Chromium session; both ended on drop.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
    who: String,
}

impl Browser {
    fn start(tools: &Tools, home: &Path, who: &str) -> Browser {
        let port = free_port();
        let tmp = home.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let driver = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .env("HOME", home)
            // Chromium's temporary files stay in the scratch folder, removed with it.
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            who: who.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok((200, status)) = http(port, "GET", "/status", None) {
                if status["value"]["ready"] == true {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not get ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": false,
            "goog:chromeOptions": {
                "binary": tools.chromium.display().to_string(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                    "--window-size=1280,1800",
                    format!("--user-data-dir={}", home.join("profile").display()),
                ],
            },
        }}});
        let (status, answer) =
            http(port, "POST", "/session", Some(&capabilities)).expect("new WebDriver session");
        assert_eq!(status, 200, "new session: {answer}");
        browser.session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id: {answer}"))
            .to_owned();
        browser
    }

    /// A WebDriver command in the session: its `value`.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("/session/{}{path}", self.session);
        let (status, answer) = http(self.port, method, &url, body.as_ref())
            .unwrap_or_else(|e| panic!("[{}] WebDriver {method} {path}: {e}", self.who));
        assert_eq!(
            status, 200,
            "[{}] WebDriver {method} {path}: {answer}",
            self.who
        );
        answer["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    fn eval(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    fn find(&self, css: &str) -> String {
        let found = self.command(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("[{}] no element {css}: {found}", self.who))
            .to_owned()
    }

    /// A real click (WebDriver's: the element must be shown and not covered).
    fn click(&self, css: &str) {
        let element = self.find(css);
        self.command(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    fn displayed(&self, css: &str) -> bool {
        let element = self.find(css);
        self.command("GET", &format!("/element/{element}/displayed"), None) == true
    }

    /// Polls `script` until it returns something other than null, false or
    /// an empty string; panics with `what` and the page's error banner after [`PAGE_WAIT`].
    fn wait(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            let value = self.eval(script);
            let done = !(value.is_null() || value == false || value == "");
            if done {
                return value;
            }
            if Instant::now() >= deadline {
                let banner = self.eval(
                    "var e = document.querySelector('#error'); \
                     return e && !e.hidden ? e.textContent : '(no error banner)';",
                );
                let status = self.eval(
                    "var s = document.querySelector('#status'); \
                     return s ? s.getAttribute('data-status') + ': ' + s.textContent : '(no #status)';",
                );
                panic!(
                    "[{}] timed out after {PAGE_WAIT:?} waiting for {what}; #status = {status}; error banner: {banner}",
                    self.who
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn status(&self) -> String {
        self.eval("return document.querySelector('#status').getAttribute('data-status');")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http(
                self.port,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An amount as the page shows it: the JSON number's text with thousands separators.
fn shown(raw: &str) -> String {
    let (sign, digits) = raw.strip_prefix('-').map_or(("", raw), |rest| ("-", rest));
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}.{fraction:0<2}")
}

/// A report's positions with their amounts' exact JSON text.
#[derive(serde::Deserialize)]
struct RawPositions<'a> {
    #[serde(borrow)]
    positions: Vec<RawPosition<'a>>,
}

#[derive(serde::Deserialize)]
struct RawPosition<'a> {
    admdvs: String,
    #[serde(borrow)]
    receives: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    pays: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    net: &'a serde_json::value::RawValue,
}

/// The 2207 fixture as a Tianjin hospital sends it for a patient insured in Beijing.
fn tianjin_settles_a_beijing_patient() -> Vec<u8> {
    let mut text = fixture("2207-request.json");
    for (from, to) in [
        (
            "\"fixmedins_code\": \"H11010500123\"".to_owned(),
            format!("\"fixmedins_code\": \"{TIANJIN_HOSPITAL}\""),
        ),
        // Its own message id (a message id starts with the sender's code).
        (
            "\"msgid\": \"H11010500123".to_owned(),
            format!("\"msgid\": \"{TIANJIN_HOSPITAL}"),
        ),
        (
            "\"mdtrtarea_admvs\": \"110000\"".to_owned(),
            "\"mdtrtarea_admvs\": \"120000\"".to_owned(),
        ),
        (
            "\"insuplc_admdvs\": \"130600\"".to_owned(),
            "\"insuplc_admdvs\": \"110105\"".to_owned(),
        ),
    ] {
        assert!(text.contains(&from), "the fixture has no {from}");
        text = text.replacen(&from, &to, 1);
    }
    text.into_bytes()
}

/// Beijing's own statement of `day`, from the sandbox, with `setl_id`'s
/// `medfee_sumamt` raised by 10 yuan: an amount discrepancy.
fn beijing_statement_with_a_wrong_amount(world: &World, day: &str, setl_id: &str) -> Vec<u8> {
    let out = world.scratch.path("beijing-statement.csv");
    let status = Command::new(BIN)
        .args([
            "sandbox",
            "--config",
            &world.scratch.path("sandbox.toml").display().to_string(),
            "--statement",
            "110000",
            "--date",
            day,
            "--out",
            &out.display().to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .expect("sandbox --statement");
    assert!(status.success(), "sandbox --statement failed");
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
    };
    let (id, fee) = (column("setl_id"), column("medfee_sumamt"));
    let mut changed = false;
    let mut statement = format!("{}\n", header.join(","));
    for line in lines {
        let mut cells: Vec<String> = line.split(',').map(str::to_owned).collect();
        if cells.get(id).map(String::as_str) == Some(setl_id) && !changed {
            let amount = contracts::Money::parse_yuan(&cells[fee]).expect("an amount");
            cells[fee] = amount
                .checked_add(contracts::Money::from_fen(1000).unwrap())
                .unwrap()
                .to_yuan_string();
            changed = true;
        }
        statement.push_str(&cells.join(","));
        statement.push('\n');
    }
    assert!(
        changed,
        "settlement {setl_id} is not in Beijing's statement:\n{text}"
    );
    statement.into_bytes()
}

/// A test HMAC key for person keys (hex, 32+ bytes, not all the same byte).
const SIGNALS_HMAC_KEY: &str = "6f666669636572732d706167652d7369676e616c732d6b65792d303132333435";

/// Turns supervision on in a [`ledger_world`]: a `frequency` rule that flags
/// a person's second outpatient settlement of the day; the gateway is restarted.
fn supervise(world: &mut World) {
    let config = world.scratch.path("gateway.toml");
    let mut text = std::fs::read_to_string(&config).expect("gateway.toml");
    text.push_str(&format!(
        "\n[supervision]\nhmac_key = \"{SIGNALS_HMAC_KEY}\"\n\n\
         [[supervision.rules]]\nname = \"frequency\"\nmode = \"flag\"\nwindow = \"1d\"\nmax = 1\n"
    ));
    std::fs::write(&config, text).expect("gateway.toml");
    // The first gateway must be gone before the second binds its port.
    let _ = world.gateway.child.kill();
    let _ = world.gateway.child.wait();
    world.gateway = Process::start(&["serve", "--config", &config.display().to_string()], 1);
}

/// The officer's signals of `day` from the API, waiting (they are written
/// off the request's path) until there is at least one.
fn signals_of(runtime: &tokio::runtime::Runtime, world: &World, day: &str) -> Vec<Value> {
    let url = world.url(&format!("/v1/signals?date={day}"));
    let deadline = Instant::now() + PAGE_WAIT;
    loop {
        let answer = runtime.block_on(world.client(OFFICER).get(&url));
        assert_eq!(
            answer.status,
            200,
            "GET {url}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        let list = answer.json()["signals"]
            .as_array()
            .expect("a signals list")
            .clone();
        if !list.is_empty() {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "no supervision signal on {day} after {PAGE_WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The texts of the cells of the signals table's rows: `[data-id, data-rule, cells...]`.
fn signal_rows(browser: &Browser) -> Vec<Vec<String>> {
    let rows = browser.eval(
        "return Array.from(document.querySelectorAll('#signals tbody tr[data-id]')).map(function (tr) { \
           return [tr.getAttribute('data-id'), tr.getAttribute('data-rule')].concat( \
             Array.from(tr.cells).map(function (c) { return c.textContent.trim(); })); });",
    );
    rows.as_array()
        .expect("signal rows")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("a row")
                .iter()
                .map(|c| c.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .collect()
}

/// The text of the signal detail's field `key`.
fn signal_detail_field(browser: &Browser, key: &str) -> String {
    browser
        .eval(&format!(
            "var d = document.querySelector('#signal-detail dd[data-field=\"{key}\"]'); \
             return d ? d.textContent : null;"
        ))
        .as_str()
        .unwrap_or_else(|| panic!("the signal detail shows no field {key}"))
        .to_owned()
}

/// Chooses `rule` (empty: all) in the signals' rule filter, with a real click on its option.
fn choose_signal_rule(browser: &Browser, rule: &str) {
    browser.click(&format!("#signals-rule option[value=\"{rule}\"]"));
    let chosen = browser.eval("return document.querySelector('#signals-rule').value;");
    assert_eq!(chosen, rule, "the rule filter did not take {rule:?}");
}

/// The officer's signals view of a day with `signal` (the API's) among its signals.
fn officer_sees_signals(browser: &Browser, day: &str, listed: &[Value], signal: &Value) {
    let id = signal["id"].as_str().expect("signal id");
    let rule = signal["rule"].as_str().expect("signal rule");
    browser.wait(
        "the signals table to list the signal",
        &format!(
            "var s = document.querySelector('#signals'); \
             return s && s.getAttribute('data-state') === 'ready' && \
                    !!document.querySelector('#signals tbody tr[data-id=\"{id}\"]');"
        ),
    );
    assert!(
        browser.displayed("#signals table"),
        "the signals table is not shown"
    );
    assert!(
        !browser.displayed("#signals-empty"),
        "the empty state is shown with a signal listed"
    );
    assert!(
        !browser.displayed("#signals-officers-only"),
        "the officer is told the signals are for officers only"
    );
    let rows = signal_rows(browser);
    assert_eq!(
        rows.len(),
        listed.len(),
        "signal rows {rows:?} for {listed:?}"
    );
    let row = rows
        .iter()
        .find(|r| r[0] == id)
        .unwrap_or_else(|| panic!("no row for signal {id} in {rows:?}"));
    // [id, data-rule, rule, severity, detected at, regions, institutions, person key, detail]
    assert_eq!(row.len(), 9, "signal row {row:?}");
    assert_eq!(row[1], rule);
    assert!(row[2].contains(rule), "the rule cell {row:?}");
    assert!(
        row[3].contains(signal["severity"].as_str().unwrap()),
        "the severity cell {row:?}"
    );
    assert_eq!(row[4], signal["detected_at"].as_str().unwrap());
    for region in signal["regions"].as_array().unwrap() {
        assert!(row[5].contains(region.as_str().unwrap()), "regions {row:?}");
    }
    for institution in signal["institutions"].as_array().unwrap() {
        assert!(
            row[6].contains(institution.as_str().unwrap()),
            "institutions {row:?}"
        );
    }
    let key = signal["person_key"].as_str().expect("a person key");
    assert!(
        row[7].len() < key.len() && row[7].starts_with(&key[..8]),
        "the person key is not shortened: {row:?}"
    );
    assert_eq!(row[8], signal["detail"].as_str().unwrap());
    // Downloads per pair of regions.
    for pair in ["110000-120000", "110000-130000", "120000-130000"] {
        for format in ["csv", "xlsx"] {
            let href = format!("/v1/signals?date={day}&format={format}&pair={pair}");
            let found = browser.eval(&format!(
                "return !!document.querySelector('#signals a[href=\"{href}\"]');"
            ));
            assert_eq!(found, true, "no download link {href}");
        }
    }

    // Drill down: a real click on the row opens every field.
    assert!(
        !browser.displayed("#signal-detail"),
        "the signal detail is shown before a click"
    );
    browser.click(&format!("#signals tbody tr[data-id=\"{id}\"]"));
    browser.wait(
        "the detail of the clicked signal",
        &format!(
            "var d = document.querySelector('#signal-detail'); \
             return d && !d.hidden && d.getAttribute('data-id') === '{id}';"
        ),
    );
    assert!(browser.displayed("#signal-detail"));
    assert!(signal_detail_field(browser, "rule").contains(rule));
    assert_eq!(signal_detail_field(browser, "id"), id);
    assert_eq!(signal_detail_field(browser, "person_key"), key);
    assert_eq!(
        signal_detail_field(browser, "detail"),
        signal["detail"].as_str().unwrap()
    );
    for list in ["setl_ids", "mdtrt_ids"] {
        let shown = signal_detail_field(browser, list);
        let ids = signal[list].as_array().unwrap();
        assert!(!ids.is_empty(), "the signal has no {list}: {signal}");
        for one in ids {
            assert!(
                shown.contains(one.as_str().unwrap()),
                "the detail's {list} {shown:?} lack {one}"
            );
        }
    }

    // The rule filter: another rule hides the signal (and its detail) …
    let other = if rule == "duplicate_bill" {
        "frequency"
    } else {
        "duplicate_bill"
    };
    choose_signal_rule(browser, other);
    browser.wait(
        "another rule to hide the signal",
        &format!("return !document.querySelector('#signals tbody tr[data-id=\"{id}\"]');"),
    );
    let others = listed.iter().filter(|s| s["rule"] == other).count();
    assert_eq!(signal_rows(browser).len(), others, "rows of {other}");
    assert!(
        !browser.displayed("#signal-detail"),
        "the detail of a filtered-out signal stays open"
    );
    if others == 0 {
        assert!(
            browser.displayed("#signals-empty"),
            "no empty state for a rule without signals"
        );
    }
    // … its own rule and all rules show it again.
    choose_signal_rule(browser, rule);
    browser.wait(
        "the signal's rule to show it",
        &format!("return !!document.querySelector('#signals tbody tr[data-id=\"{id}\"]');"),
    );
    assert!(signal_rows(browser).iter().all(|r| r[1] == rule));
    choose_signal_rule(browser, "");
    browser.wait(
        "all rules to show every signal",
        &format!(
            "return document.querySelectorAll('#signals tbody tr[data-id]').length === {};",
            listed.len()
        ),
    );
}

#[test]
fn officers_close_the_day_on_the_page_and_platforms_cannot() {
    let Some(tools) = Tools::find() else { return };
    if !ensure_policy() {
        return;
    }
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut world = ledger_world("officers-page", Settings::default());
    supervise(&mut world);
    let world = world;

    // The day's data: a Beijing hospital settles a Hebei patient, a Tianjin
    // hospital a Beijing patient; Beijing's platform sends its statement with
    // one amount wrong.
    let settle = |code: &str, body: Vec<u8>| {
        let answer = runtime.block_on(world.client(code).post(&world.url(NATIONAL), body));
        assert_eq!(
            (answer.status, answer.infcode()),
            (200, 0),
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        answer.json()["output"]["setlinfo"].clone()
    };
    let hebei = settle(BEIJING_HOSPITAL, fixture("2207-request.json").into_bytes());
    let beijing = settle(TIANJIN_HOSPITAL, tianjin_settles_a_beijing_patient());
    let day = hebei["setl_time"].as_str().expect("setl_time")[..10].to_owned();
    let beijing_setl_id = beijing["setl_id"].as_str().expect("setl_id").to_owned();
    let statement = beijing_statement_with_a_wrong_amount(&world, &day, &beijing_setl_id);
    let report_url = world.url(&format!("/v1/clearing/{day}"));
    let upload = runtime.block_on(world.client(BEIJING_PLATFORM).post(
        &world.url(&format!("/v1/clearing/{day}/statements/110000")),
        statement,
    ));
    assert!(
        (200..300).contains(&upload.status),
        "uploading Beijing's statement: {} {}",
        upload.status,
        String::from_utf8_lossy(&upload.body)
    );

    // The report as the API gives it to the officer.
    let answer = runtime.block_on(world.client(OFFICER).get(&report_url));
    assert_eq!(
        answer.status,
        200,
        "GET {report_url}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    let report = answer.json();
    assert_eq!(report["status"], "open", "{report}");
    assert_eq!(
        report["viewer"],
        json!({"institution": OFFICER, "role": "officer"})
    );
    let raw: RawPositions<'_> = serde_json::from_slice(&answer.body).unwrap();
    let wrong = report["discrepancies"]
        .as_array()
        .expect("discrepancies")
        .iter()
        .find(|d| {
            (d["class"] == "amount_differs" || d["class"] == "field_differs")
                && d["setl_id"] == beijing_setl_id.as_str()
                && d["fields"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f["field"] == "medfee_sumamt"))
        })
        .unwrap_or_else(|| {
            panic!("no discrepancy of medfee_sumamt for {beijing_setl_id}: {report}")
        })
        .clone();

    // The same person settled twice in a day: a real frequency signal.
    let day_signals = signals_of(&runtime, &world, &day);
    let signal = day_signals
        .iter()
        .find(|s| s["rule"] == "frequency")
        .unwrap_or_else(|| panic!("no frequency signal on {day}: {day_signals:?}"))
        .clone();
    assert!(
        signal["setl_ids"]
            .as_array()
            .is_some_and(|ids| ids.iter().any(|i| i == beijing_setl_id.as_str())),
        "the signal does not name the second settlement {beijing_setl_id}: {signal}"
    );

    // A platform sees the page (today's day by default) but no close button.
    let today = contracts::DateTime::now().date().to_string();
    {
        let home = browser_home(&tools, &world, BEIJING_PLATFORM);
        let browser = Browser::start(&tools, &home, "platform");
        browser.goto(&world.url("/clearing/"));
        browser.wait(
            "the platform's page to load the report",
            "var s = document.querySelector('#status'); \
             var r = document.querySelector('#viewer'); \
             return s && s.getAttribute('data-status') === 'open' && r && r.getAttribute('data-role');",
        );
        let shown_day = browser.eval("return document.querySelector('#date-input').value;");
        let after = contracts::DateTime::now().date().to_string();
        assert!(
            shown_day == today.as_str() || shown_day == after.as_str(),
            "the page's default day is {shown_day}, not today in Shanghai ({today})"
        );
        assert_eq!(
            browser.eval("return document.querySelector('#viewer').getAttribute('data-role');"),
            "platform"
        );
        // The day of the data, through the date input.
        browser.goto(&world.url(&format!("/clearing/?date={day}")));
        browser.wait(
            "the platform's page for the day",
            "var s = document.querySelector('#status'); \
             return s && s.getAttribute('data-status') === 'open' && \
                    document.querySelectorAll('#positions tbody tr').length > 0;",
        );
        assert!(
            !browser.displayed("#close-button"),
            "a platform is offered the close button"
        );
        // Signals are for officers: no table, a short note, no error banner.
        browser.wait(
            "the platform's signals section to settle",
            "var s = document.querySelector('#signals'); \
             return !s || s.getAttribute('data-state') === 'forbidden' || s.hidden;",
        );
        let table = browser.eval(
            "var t = document.querySelector('#signals table'); \
             return !!t && t.getClientRects().length > 0;",
        );
        assert_eq!(table, false, "a platform is shown the signals table");
        assert_eq!(
            browser.eval("return document.querySelectorAll('#signals tbody tr').length;"),
            0,
            "a platform's page lists signals"
        );
        assert!(
            !browser.displayed("#error"),
            "the 403 of the signals shows the error banner"
        );
    }

    // The officer.
    let home = browser_home(&tools, &world, OFFICER);
    let browser = Browser::start(&tools, &home, "officer");
    let page = world.url(&format!("/clearing/?date={day}"));
    browser.goto(&page);
    browser.wait(
        "#status to show the day open",
        "var s = document.querySelector('#status'); return s && s.getAttribute('data-status') === 'open';",
    );
    assert!(browser
        .eval("return document.querySelector('#status').textContent;")
        .as_str()
        .unwrap()
        .contains(&day));
    assert!(
        browser.displayed("#close-button"),
        "the officer is not offered the close button"
    );

    // Net positions: a chart with a labelled bar per region, and a table row per region.
    let chart = browser.eval(
        "var svg = document.querySelector('#positions-chart'); if (!svg) return null; \
         return {bars: svg.querySelectorAll('rect').length, \
                 text: Array.from(svg.querySelectorAll('text')).map(function (t) { return t.textContent; }).join(' | ')};",
    );
    assert_eq!(chart["bars"], REGIONS.len(), "chart: {chart}");
    let rows = browser.eval(
        "return Array.from(document.querySelectorAll('#positions tbody tr')).map(function (tr) { \
           return Array.from(tr.cells).map(function (c) { return c.textContent.trim(); }); });",
    );
    let rows = rows.as_array().expect("positions rows");
    assert_eq!(rows.len(), REGIONS.len(), "positions table: {rows:?}");
    for position in &raw.positions {
        let row = rows
            .iter()
            .find(|r| r[0] == position.admdvs.as_str())
            .unwrap_or_else(|| panic!("no row for {} in {rows:?}", position.admdvs));
        assert_eq!(
            row[2],
            shown(position.receives.get()),
            "receives of {}",
            position.admdvs
        );
        assert_eq!(
            row[3],
            shown(position.pays.get()),
            "pays of {}",
            position.admdvs
        );
        assert_eq!(
            row[4],
            shown(position.net.get()),
            "net of {}",
            position.admdvs
        );
        assert!(
            chart["text"]
                .as_str()
                .unwrap()
                .contains(&shown(position.net.get())),
            "the chart does not label {}'s net {}: {chart}",
            position.admdvs,
            position.net.get()
        );
    }
    for region in REGIONS {
        assert!(
            rows.iter().any(|r| r[0] == region),
            "no positions row for {region}"
        );
    }
    // Each bar is coloured by the sign of the net: red (left) pays, green (right) receives.
    for position in &raw.positions {
        let net = position.net.get();
        let expected = if !net.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
            "bar zero"
        } else if net.starts_with('-') {
            "bar pay"
        } else {
            "bar receive"
        };
        let class = browser.eval(&format!(
            "var g = document.querySelector('#positions-chart g[data-admdvs=\"{}\"]'); \
             return g && g.getAttribute('class');",
            position.admdvs
        ));
        assert_eq!(
            class, expected,
            "the bar of {} (net {net})",
            position.admdvs
        );
    }
    // Tianjin and Hebei sent no statement: highlighted.
    let missing = browser.eval(
        "return Array.from(document.querySelectorAll('#sources tbody tr.missing')).map(function (tr) { return tr.getAttribute('data-admdvs'); });",
    );
    assert_eq!(missing, json!(["120000", "130000"]));

    // Drill down into the wrong amount.
    let id = wrong["id"].as_str().expect("discrepancy id");
    let listed = browser
        .eval("return document.querySelectorAll('#discrepancies tbody tr[data-id]').length;");
    assert_eq!(
        listed,
        report["discrepancies"].as_array().unwrap().len(),
        "discrepancy rows"
    );
    assert!(
        !browser.displayed("#detail"),
        "the detail panel is shown before a click"
    );
    browser.click(&format!("#discrepancies tbody tr[data-id=\"{id}\"]"));
    browser.wait(
        "the detail panel of the clicked discrepancy",
        &format!(
            "var d = document.querySelector('#detail'); \
             return d && !d.hidden && d.getAttribute('data-id') === '{id}';"
        ),
    );
    assert!(browser.displayed("#detail"));
    let differing = browser.eval(
        "return Array.from(document.querySelectorAll('#detail tr.differs')).map(function (tr) { \
           return [tr.getAttribute('data-field')].concat(Array.from(tr.cells).slice(1).map(function (c) { return c.textContent.trim(); })); });",
    );
    let fields = wrong["fields"].as_array().unwrap();
    assert_eq!(
        differing.as_array().unwrap().len(),
        fields.len(),
        "highlighted fields {differing} for {fields:?}"
    );
    let fee = wrong["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "medfee_sumamt")
        .unwrap();
    let fee_row = differing
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[0] == "medfee_sumamt")
        .unwrap_or_else(|| panic!("medfee_sumamt is not highlighted: {differing}"));
    assert_eq!(fee_row[1], shown(fee["gateway"].as_str().unwrap()));
    assert_eq!(fee_row[2], shown(fee["region"].as_str().unwrap()));
    assert_eq!(fee_row[3], "10.00");

    // The supervision signals of the day: listed, drilled into, filtered.
    officer_sees_signals(&browser, &day, &day_signals, &signal);

    // A second tab on the same open day, to try closing it twice.
    let first = browser.command("GET", "/window", None);
    let second = browser.command("POST", "/window/new", Some(json!({"type": "tab"})));
    let second = second["handle"].as_str().expect("new tab").to_owned();
    browser.command("POST", "/window", Some(json!({ "handle": second })));
    browser.goto(&page);
    browser.wait(
        "the second tab to show the day open",
        "var s = document.querySelector('#status'); return s && s.getAttribute('data-status') === 'open';",
    );
    browser.command("POST", "/window", Some(json!({ "handle": first })));

    // Close the day: the button, then the confirmation.
    assert!(
        !browser.displayed("#close-confirm"),
        "the confirmation is shown before the button is clicked"
    );
    browser.click("#close-button");
    browser.wait(
        "the confirmation panel",
        "var c = document.querySelector('#close-confirm'); return c && c.offsetParent !== null;",
    );
    assert_eq!(
        browser.status(),
        "open",
        "clicking once must not close the day"
    );
    browser.click("#close-confirm");
    browser.wait(
        "#status to show the day closed",
        "var s = document.querySelector('#status'); return s && s.getAttribute('data-status') === 'closed';",
    );
    assert!(
        !browser.displayed("#close-button"),
        "a closed day still offers the close button"
    );
    let closed_by = browser.wait(
        "who closed the day",
        "var b = document.querySelector('#closed-by'); return b && b.textContent;",
    );
    assert_eq!(closed_by, OFFICER);

    // The API agrees.
    let answer = runtime.block_on(world.client(OFFICER).get(&report_url));
    assert_eq!(answer.status, 200);
    let closed = answer.json();
    assert_eq!(closed["status"], "closed", "{closed}");
    assert_eq!(closed["closed"]["by"], OFFICER);
    let digest = browser.eval("return document.querySelector('#closed-digest').textContent;");
    assert_eq!(digest, closed["closed"]["digest"]);

    // The second tab still offers to close: the gateway refuses, the page says so.
    browser.command("POST", "/window", Some(json!({ "handle": second })));
    assert_eq!(browser.status(), "open");
    browser.click("#close-button");
    browser.click("#close-confirm");
    let banner = browser.wait(
        "the error banner after closing a closed day",
        "var e = document.querySelector('#error'); return e && !e.hidden && e.textContent;",
    );
    assert!(
        banner.as_str().unwrap().contains("409"),
        "the banner does not tell of the conflict: {banner}"
    );
    browser.wait(
        "the second tab to show the day closed",
        "var s = document.querySelector('#status'); return s && s.getAttribute('data-status') === 'closed';",
    );
    let again = runtime.block_on(
        world
            .client(OFFICER)
            .post(&format!("{report_url}/close"), Vec::new()),
    );
    assert_eq!(
        again.status,
        409,
        "closing a closed day: {}",
        String::from_utf8_lossy(&again.body)
    );
    let refusal = again.json();
    let why = refusal["err_msg"]
        .as_str()
        .or(refusal["error"].as_str())
        .unwrap_or_else(|| panic!("the 409 names no err_msg or error: {refusal}"));
    assert!(
        banner.as_str().unwrap().contains(why),
        "the banner {banner} does not show the gateway's message {why:?}"
    );

    // A settlement after the close is late: the next open day carries it,
    // and its page says so.
    assert!(
        !browser.displayed("#late"),
        "a day without late rows shows the late rows"
    );
    let late = String::from_utf8(tianjin_settles_a_beijing_patient())
        .unwrap()
        .replacen("202611250930150011\"", "202611250930150012\"", 1);
    settle(TIANJIN_HOSPITAL, late.into_bytes());
    let next = contracts::Date::parse(&day).unwrap().next().unwrap();
    browser.command("POST", "/window", Some(json!({ "handle": first })));
    browser.goto(&world.url(&format!("/clearing/?date={next}")));
    let shown_late = browser.wait(
        "the next day to show its late row",
        "var l = document.querySelector('#late'); return l && !l.hidden && \
         document.querySelector('#late-rows').textContent;",
    );
    assert_eq!(shown_late, "1");

    // A day without signals: the empty state.
    browser.goto(&world.url("/clearing/?date=2020-01-01"));
    browser.wait(
        "the empty state of a day without signals",
        "var s = document.querySelector('#signals'); \
         return s && s.getAttribute('data-state') === 'empty' && \
                document.querySelector('#date-input').value === '2020-01-01';",
    );
    assert!(
        browser.displayed("#signals-empty"),
        "no empty state for a day without signals"
    );
    assert_eq!(signal_rows(&browser).len(), 0);
    drop(browser);
    let _ = writeln!(
        std::io::stderr().lock(),
        "officers_page: took {:?}",
        started.elapsed()
    );
}
