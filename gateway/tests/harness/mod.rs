//! Real processes over real sockets: a scratch folder with a development
//! PKI and configuration, the `jjj-gateway sandbox` and `serve` processes
//! (killed on drop), and a mutual-TLS client.

#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_jjj-gateway");
pub const NATIONAL: &str = "/fsi/api/rsfComIfsService/callService";

/// A scratch folder, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "jjj-e2e-{}-{name}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch folder");
        Scratch(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop.
pub struct Process {
    pub child: Child,
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl Process {
    /// Starts `jjj-gateway ARGS` and waits until it has printed `count` lines containing `listening on`.
    pub fn start(args: &[&str], count: usize) -> Process {
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn jjj-gateway");
        let stdout = child.stdout.take().expect("stdout");
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
                .unwrap_or_else(|_| panic!("{args:?} did not start"));
            if line.contains("listening on") {
                seen += 1;
            }
        }
        Process { child, lines: rx }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free now on 127.0.0.1, never one this test process handed out
/// before (tests run in parallel: the system may offer a port again as soon
/// as the probe that found it is closed).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub fn certs_init(dir: &Path, clients: &[&str]) {
    let mut args = vec![
        "certs".to_owned(),
        "init".to_owned(),
        "--out".to_owned(),
        dir.display().to_string(),
    ];
    for c in clients {
        args.push("--client".into());
        args.push((*c).to_owned());
    }
    let status = Command::new(BIN)
        .args(&args)
        .stdout(Stdio::null())
        .status()
        .expect("certs init");
    assert!(status.success());
}

/// Hospitals, platforms and officers of the test world.
pub const BEIJING_HOSPITAL: &str = "H11010500123";
pub const BEIJING_HOSPITAL_2: &str = "H11010800456";
pub const TIANJIN_HOSPITAL: &str = "H12010100789";
pub const BEIJING_PLATFORM: &str = "P110000";
pub const OFFICER: &str = "O0001";
pub const STRANGER: &str = "H99999999999";

/// A running world: sandbox platforms and a gateway.
pub struct World {
    pub scratch: Scratch,
    pub gateway: Process,
    pub sandbox: Process,
    pub gateway_port: u16,
    pub platform_ports: [u16; 3],
}

/// Settings a test may change.
pub struct Settings {
    pub institution_per_second: u32,
    pub institution_burst: u32,
    pub medium_timeout_ms: u64,
    pub body_bytes_max: usize,
    pub concurrency_max: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            institution_per_second: 1000,
            institution_burst: 1000,
            medium_timeout_ms: 5000,
            body_bytes_max: 1 << 20,
            concurrency_max: 64,
        }
    }
}

impl World {
    pub fn start(name: &str, settings: Settings) -> World {
        let scratch = Scratch::new(name);
        let certs = scratch.path("certs");
        certs_init(
            &certs,
            &[
                BEIJING_HOSPITAL,
                BEIJING_HOSPITAL_2,
                TIANJIN_HOSPITAL,
                BEIJING_PLATFORM,
                OFFICER,
                STRANGER,
            ],
        );
        let ports = [free_port(), free_port(), free_port()];
        let dead = free_port();
        let sandbox = format!(
            r#"ca = "certs/ca.pem"
cert = "certs/server.pem"
key = "certs/server.key"
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
[[platforms]]
admdvs = "130000"
name = "河北"
dialect = "national"
listen = "127.0.0.1:{}"
"#,
            ports[0], ports[1], ports[2]
        );
        std::fs::write(scratch.path("sandbox.toml"), sandbox).expect("sandbox.toml");
        let gateway_port = free_port();
        let region = |admdvs: &str, name: &str, urls: &str| {
            format!(
                r#"
[[regions]]
admdvs = "{admdvs}"
name = "{name}"
dialect = "national"
upstreams = [{urls}]
ca = "certs/ca.pem"
client_cert = "certs/gateway.pem"
client_key = "certs/gateway.key"
timeouts_ms = {{ short = 3000, medium = {}, long = 10000 }}
"#,
                settings.medium_timeout_ms
            )
        };
        let url = |port: u16| format!("\"https://127.0.0.1:{port}{NATIONAL}\"");
        let mut config = format!(
            r#"[server]
listen = "127.0.0.1:{gateway_port}"
ca = "certs/ca.pem"
cert = "certs/server.pem"
key = "certs/server.key"
body_bytes_max = {}
concurrency_max = {}
shutdown_grace_ms = 10000

[limits]
institution_per_second = {}
institution_burst = {}
"#,
            settings.body_bytes_max,
            settings.concurrency_max,
            settings.institution_per_second,
            settings.institution_burst
        );
        config.push_str(&region("110000", "北京", &url(ports[0])));
        // Tianjin's first address is dead: calls fail over to the second.
        config.push_str(&region(
            "120000",
            "天津",
            &format!("{}, {}", url(dead), url(ports[1])),
        ));
        config.push_str(&region("130000", "河北", &url(ports[2])));
        for (code, role, admdvs) in [
            (BEIJING_HOSPITAL, "hospital", "110105"),
            (BEIJING_HOSPITAL_2, "hospital", "110108"),
            (TIANJIN_HOSPITAL, "hospital", "120101"),
            (BEIJING_PLATFORM, "platform", "110000"),
            (OFFICER, "officer", "110000"),
        ] {
            config.push_str(&format!("\n[[institutions]]\ncode = \"{code}\"\nname = \"{code}\"\nrole = \"{role}\"\nadmdvs = \"{admdvs}\"\nlevel = 3\n"));
        }
        std::fs::write(scratch.path("gateway.toml"), config).expect("gateway.toml");
        let sandbox = Process::start(
            &[
                "sandbox",
                "--config",
                &scratch.path("sandbox.toml").display().to_string(),
            ],
            3,
        );
        let gateway = Process::start(
            &[
                "serve",
                "--config",
                &scratch.path("gateway.toml").display().to_string(),
            ],
            1,
        );
        World {
            scratch,
            gateway,
            sandbox,
            gateway_port,
            platform_ports: ports,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.gateway_port)
    }

    pub fn client(&self, code: &str) -> TestClient {
        TestClient::new(&self.scratch.path("certs"), code)
    }
}

/// A mutual-TLS HTTP client presenting `code`'s certificate.
pub struct TestClient {
    client: Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Full<Bytes>,
    >,
}

pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn infcode(&self) -> i64 {
        self.json()["infcode"].as_i64().unwrap_or(i64::MIN)
    }
}

impl TestClient {
    pub fn new(certs: &Path, code: &str) -> TestClient {
        let tls = gateway::tls::client_config(
            &certs.join("ca.pem"),
            &certs.join(format!("{code}.pem")),
            &certs.join(format!("{code}.key")),
        )
        .expect("client TLS");
        TestClient::with_tls(tls)
    }

    pub fn with_tls(tls: rustls::ClientConfig) -> TestClient {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        TestClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    pub async fn try_send(&self, method: &str, url: &str, body: Vec<u8>) -> Result<Answer, String> {
        let request = http::Request::builder()
            .method(method)
            .uri(url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes()
            .to_vec();
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }

    pub async fn post(&self, url: &str, body: Vec<u8>) -> Answer {
        self.try_send("POST", url, body).await.expect("request")
    }

    pub async fn get(&self, url: &str) -> Answer {
        self.try_send("GET", url, Vec::new())
            .await
            .expect("request")
    }
}

/// A national fixture, as text.
pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../contracts/fixtures/national")
            .join(name),
    )
    .expect("fixture")
}

/// Where a world started by [`ledger_world`] keeps its ledger, relative to the scratch folder.
pub const LEDGER_FILE: &str = "ledger/journal.db";

/// A world whose gateway journals to a SQLite ledger in its scratch folder
/// ([`LEDGER_FILE`]): started as [`World::start`] does, then the gateway is
/// restarted with a `[ledger]` section added to its configuration.
pub fn ledger_world(name: &str, settings: Settings) -> World {
    let mut world = World::start(name, settings);
    let config = world.scratch.path("gateway.toml");
    let mut text = std::fs::read_to_string(&config).expect("gateway.toml");
    text.push_str(&format!("\n[ledger]\nurl = \"sqlite://{LEDGER_FILE}\"\n"));
    std::fs::write(&config, text).expect("gateway.toml");
    // The first gateway must be gone before the second binds its port.
    let _ = world.gateway.child.kill();
    let _ = world.gateway.child.wait();
    world.gateway = Process::start(&["serve", "--config", &config.display().to_string()], 1);
    world
}

/// The URL of the ledger of a world started by [`ledger_world`].
pub fn ledger_url(world: &World) -> String {
    format!("sqlite://{}", world.scratch.path(LEDGER_FILE).display())
}

/// Opens the ledger of a world started by [`ledger_world`] (while its gateway runs).
pub async fn ledger_open(world: &World) -> ledger::Ledger {
    ledger::Ledger::open(&ledger_url(world))
        .await
        .expect("open the gateway's ledger")
}

/// The settlement that the settling message `msgid` committed at platform
/// `admdvs`, as that platform's record keeps it (read while the sandbox
/// runs), from the sandbox whose data folder is `data` (`sandbox-data` in
/// the scratch folder of [`World::start`]).
pub fn sandbox_settlement(
    data: &Path,
    admdvs: &str,
    msgid: &str,
) -> Option<gateway::sandbox::record::Settled> {
    let admdvs = contracts::Admdvs::parse(admdvs).expect("a region code");
    let record =
        gateway::sandbox::record::Record::open_existing(data, admdvs).expect("the sandbox record");
    record
        .read(|tx| match tx.setl_id_of_msgid(msgid)? {
            Some(setl_id) => tx.settlement(&setl_id),
            None => Ok(None),
        })
        .expect("read the sandbox record")
}
