//! Shared test helpers: temporary SQLite files, throw-away PostgreSQL schemas,
//! sample entries, raw SQL for tampering, and a TCP proxy that can cut or
//! hang the connection to PostgreSQL.
#![allow(dead_code, unused_macros, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ledger::{Answered, Finish, Key, Money, NewEntry, PsnNo, Reply, State};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;

/// Runs each named `async fn(url: &str)` as two tests: on a temporary
/// SQLite file (`sqlite::NAME`) and on a throw-away PostgreSQL schema
/// (`postgres::NAME`, skipped loudly without `JJJ_TEST_POSTGRES_URL`).
/// Invoked at the root of a test file that has `#[macro_use] mod common;`.
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::common::SqliteDb::new();
                    super::$name(&db.url).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(schema) = super::common::PgSchema::create().await else {
                        return;
                    };
                    super::$name(&schema.url).await;
                }
            )*
        }
    };
}

/// A unique lower-case identifier.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A SQLite ledger file in a fresh temporary folder (in a sub-folder the ledger must create).
pub struct SqliteDb {
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl SqliteDb {
    pub fn new() -> SqliteDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nested/folder/ledger.db", dir.path().display());
        SqliteDb { url, dir }
    }
}

/// Prints `SKIPPED: why` straight to the process's stderr, past the test
/// harness's capture, so that a skipped test is seen even when it passes.
pub fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {why}");
}

/// The PostgreSQL URL of the test server, or `None` (printing SKIPPED).
pub fn pg_base_url() -> Option<String> {
    match std::env::var("JJJ_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skipped("JJJ_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// `base` with `search_path` set to `schema` through the startup options.
pub fn with_search_path(base: &str, schema: &str) -> String {
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-csearch_path%3D{schema}")
}

async fn admin_exec(base: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(base, NoTls)
        .await
        .expect("connect to JJJ_TEST_POSTGRES_URL");
    let task = tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
    drop(client);
    let _ = task.await;
}

/// A fresh schema for one test, dropped (with everything in it) when this is dropped.
pub struct PgSchema {
    pub base: String,
    pub name: String,
    pub url: String,
}

impl PgSchema {
    pub async fn create() -> Option<PgSchema> {
        let base = pg_base_url()?;
        let name = unique("t");
        admin_exec(&base, &format!("CREATE SCHEMA {name}")).await;
        let url = with_search_path(&base, &name);
        Some(PgSchema { base, name, url })
    }

    /// The server's address, for the proxy.
    pub fn target(&self) -> SocketAddr {
        let config = tokio_postgres::Config::from_str(&self.base).unwrap();
        let host = match &config.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(host) => host.clone(),
            #[allow(unreachable_patterns)]
            _ => panic!("the test server must be reached over TCP"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let ip = if host == "localhost" {
            "127.0.0.1".to_string()
        } else {
            host
        };
        SocketAddr::new(ip.parse().unwrap(), port)
    }

    /// A URL of this schema that goes through a proxy on `port`.
    pub fn url_via(&self, port: u16) -> String {
        let config = tokio_postgres::Config::from_str(&self.base).unwrap();
        let user = config.get_user().unwrap_or("postgres");
        let password = config
            .get_password()
            .map(|p| format!(":{}", String::from_utf8_lossy(p)))
            .unwrap_or_default();
        let db = config.get_dbname().unwrap_or("postgres");
        with_search_path(
            &format!("postgres://{user}{password}@127.0.0.1:{port}/{db}"),
            &self.name,
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let base = self.base.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok((client, connection)) = tokio_postgres::connect(&base, NoTls).await {
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

/// Runs raw SQL against the ledger's database (to tamper with rows, count migrations).
pub async fn raw_exec(url: &str, sql: &str) {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        conn.execute_batch(sql).unwrap();
    } else {
        admin_exec(url, sql).await;
    }
}

/// A single integer from raw SQL.
pub async fn raw_i64(url: &str, sql: &str) -> i64 {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row(sql, [], |row| row.get(0)).unwrap()
    } else {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
        let task = tokio::spawn(connection);
        let value = client.query_one(sql, &[]).await.unwrap().get(0);
        drop(client);
        let _ = task.await;
        value
    }
}

pub fn entry(caller: &str, msgid: &str, received_at_ms: i64) -> NewEntry {
    NewEntry {
        key: Key::new(caller, msgid),
        infno: "2207".into(),
        institution: "H13010500001".into(),
        insured: "110000".into(),
        treatment: "130100".into(),
        region: "110000".into(),
        digest: "0a1b2c3d".into(),
        original_msgid: None,
        cancels_setl_id: None,
        psn_no: Some(PsnNo::new("11000000000012345678").unwrap()),
        received_at_ms,
    }
}

pub fn money(fen: i64) -> Option<Money> {
    Some(Money::from_fen(fen).unwrap())
}

pub fn finish(state: State, finished_at_ms: i64) -> Finish {
    Finish {
        state,
        answered: Answered {
            setl_id: Some(format!("S{finished_at_ms}")),
            mdtrt_id: Some("M123456789".into()),
            insutype: Some("310".into()),
            med_type: Some("21".into()),
            clr_type: Some("21".into()),
            setl_time_ms: Some(finished_at_ms - 5),
            medfee_sumamt: money(120_000),
            fund_pay_sumamt: money(90_000),
            acct_pay: money(10_000),
            psn_cash_pay: money(20_000),
            error_code: None,
            anomalies: Vec::new(),
        },
        reply: Reply {
            status: 200,
            media_type: "application/json".into(),
            bytes: format!("{{\"infcode\":0,\"state\":\"{state}\"}}").into_bytes(),
            finished_at_ms,
        },
    }
}

/// How the proxy treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward to the server.
    Up = 0,
    /// Accept and close at once (a server that is down or restarting).
    Down = 1,
    /// Accept and never answer (a hung server or a black-holed network).
    Blackhole = 2,
    /// Keep every connection but stop passing bytes either way (a server
    /// that hangs mid-conversation); new connections hang the same way.
    Freeze = 3,
}

/// Copies bytes one way, holding them while the mode is `Freeze`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: Arc<AtomicU8>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let frozen = || mode.load(Ordering::SeqCst) == Mode::Freeze as u8;
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        while frozen() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// A TCP proxy in front of the PostgreSQL server.
pub struct Proxy {
    pub port: u16,
    mode: Arc<AtomicU8>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(Mode::Up as u8));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let task = {
            let mode = mode.clone();
            let connections = connections.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    let handle = match mode.load(Ordering::SeqCst) {
                        0 | 3 => {
                            let mode = mode.clone();
                            tokio::spawn(async move {
                                if let Ok(outbound) = TcpStream::connect(target).await {
                                    let (in_read, in_write) = inbound.into_split();
                                    let (out_read, out_write) = outbound.into_split();
                                    tokio::join!(
                                        pump(in_read, out_write, mode.clone()),
                                        pump(out_read, in_write, mode),
                                    );
                                }
                            })
                        }
                        1 => {
                            drop(inbound);
                            continue;
                        }
                        _ => tokio::spawn(async move {
                            let _held = inbound;
                            std::future::pending::<()>().await;
                        }),
                    };
                    connections.lock().unwrap().push(handle);
                }
            })
        };
        Proxy {
            port,
            mode,
            connections,
            task,
        }
    }

    /// Switches the mode; `Down` and `Blackhole` cut every open connection.
    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
        if matches!(mode, Mode::Down | Mode::Blackhole) {
            for handle in self.connections.lock().unwrap().drain(..) {
                handle.abort();
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        for handle in self.connections.lock().unwrap().drain(..) {
            handle.abort();
        }
    }
}
