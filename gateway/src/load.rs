//! `jjj-gateway load`: the project's own load generator, over mutual TLS on
//! hyper's HTTP/1.1 client connections (one keep-alive connection per worker,
//! made before the clock starts).
//!
//! Three modes:
//!
//! - **open loop** (`--rate N`): request *i* is due at `start + i/N`. A worker
//!   claims the next due request, waits for its time, sends it and records
//!   the latency from the time it was *due*, not from when it went out: when
//!   the target falls behind, the waiting shows in the percentiles rather
//!   than hiding in a client-side queue (no coordinated omission). Workers
//!   never queue requests, so memory stays bounded; requests still unsent a
//!   grace period after the end are counted as the error class `not_sent`.
//! - **closed loop** (`--connections N` alone): N connections, each sending
//!   its next request as soon as the previous answer is in.
//! - **handshakes** (`--handshakes`): every request on a fresh TCP connection
//!   with a full TLS handshake (session resumption disabled); reports
//!   handshakes per second.
//!
//! Latencies go into HDR histograms (one per worker, merged at the end; 1 µs
//! to 60 s at 3 significant digits). Errors are counted by class: `connect`,
//! `tls`, `timeout`, `io` (connection lost or HTTP protocol error),
//! `http_4xx`, `http_5xx`, `http_other`, `refused` (HTTP 2xx whose body says
//! the message was refused: national `infcode`, tj `JYZTM` or he `infcode`
//! attribute not 0) and `not_sent`.

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest latency the histograms hold, in microseconds (larger ones are clamped).
pub const LATENCY_US_MAX: u64 = 60_000_000;
/// How long after the end an open-loop run still sends requests that were due.
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How many characters of a msgid `--unique-msgid` rewrites (at the end).
pub const MSGID_TAIL: usize = 18;

/// Arguments of `jjj-gateway load`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// The URL to send to, e.g. https://127.0.0.1:8443/v1/messages/tj.
    #[arg(long)]
    pub target: String,
    /// The CA of the target's certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub ca: PathBuf,
    /// The client certificate to present (PEM).
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// A request body; several are sent round-robin. Required for POST.
    #[arg(long = "body", value_name = "FILE")]
    pub bodies: Vec<PathBuf>,
    /// Open loop: this many requests per second, on a fixed schedule.
    #[arg(long, value_name = "N")]
    pub rate: Option<u64>,
    /// Connections: closed loop at maximum with N connections when --rate is
    /// not given; with --rate, how many connections carry the schedule (default 64).
    #[arg(long, value_name = "N")]
    pub connections: Option<usize>,
    /// How long to send, in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub duration: u64,
    /// Every request on a fresh connection with a full TLS handshake (no resumption).
    #[arg(long)]
    pub handshakes: bool,
    /// Give every request a msgid of its own (the body's msgid, national
    /// `"msgid"`, tj `<BWID>` or he `msgid="…"`, keeps its length and its
    /// first characters; its last 18 become a per-run, per-request number).
    #[arg(long)]
    pub unique_msgid: bool,
    /// An extra request header, `NAME:VALUE` (repeatable).
    #[arg(long = "header", value_name = "NAME:VALUE")]
    pub headers: Vec<String>,
    /// The HTTP method.
    #[arg(long, default_value = "POST")]
    pub method: String,
    /// A request without an answer after this long counts as `timeout`.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Runtime threads of the generator (default: one per CPU).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print one JSON object instead of the human summary.
    #[arg(long)]
    pub json: bool,
}

/// Error classes, in the order they are printed.
pub const CLASSES: [&str; 9] = [
    "connect",
    "tls",
    "timeout",
    "io",
    "http_4xx",
    "http_5xx",
    "http_other",
    "refused",
    "not_sent",
];

/// What went wrong with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The TCP connection could not be made.
    Connect,
    /// The TLS handshake failed.
    Tls,
    /// No answer in time.
    Timeout,
    /// The connection broke or HTTP could not be spoken on it.
    Io,
    /// HTTP 4xx.
    Http4xx,
    /// HTTP 5xx.
    Http5xx,
    /// Any other non-2xx status.
    HttpOther,
    /// HTTP 2xx, but the body says the message was refused.
    Refused,
    /// An open-loop request that was due but never sent.
    NotSent,
}

impl Class {
    fn index(self) -> usize {
        self as usize
    }
}

/// Counts of one worker, or of the whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Answers with a 2xx status and a body that refuses nothing.
    pub ok: u64,
    /// Errors by [`Class`], indexed as [`CLASSES`].
    pub errors: [u64; 9],
    /// TLS handshakes completed.
    pub handshakes: u64,
    /// Requests sent (or attempted).
    pub sent: u64,
}

impl Counts {
    fn error(&mut self, class: Class) {
        self.errors[class.index()] += 1;
    }

    fn merge(&mut self, other: &Counts) {
        self.ok += other.ok;
        self.handshakes += other.handshakes;
        self.sent += other.sent;
        for (mine, theirs) in self.errors.iter_mut().zip(other.errors) {
            *mine += theirs;
        }
    }

    /// Errors of every class together.
    pub fn errors_total(&self) -> u64 {
        self.errors.iter().sum()
    }
}

/// A fresh latency histogram (microseconds).
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).context("making a latency histogram")
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// Percentiles of a histogram of microseconds, in milliseconds.
#[allow(clippy::float_arithmetic)]
pub fn percentiles(h: &Histogram<u64>) -> Percentiles {
    let ms = |us: u64| us as f64 / 1000.0;
    Percentiles {
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
        mean: h.mean() / 1000.0,
    }
}

/// When request `index` is due in an open loop at `rate` per second, after the start.
pub fn due_after_start(index: u64, rate: u64) -> Duration {
    let nanos = u128::from(index) * 1_000_000_000 / u128::from(rate.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// How many requests an open loop at `rate` per second schedules in `duration`.
pub fn scheduled_in(duration: Duration, rate: u64) -> u64 {
    // Request i is due at i/rate; those due strictly before the end count.
    let nanos = duration.as_nanos() * u128::from(rate);
    let count = nanos.div_ceil(1_000_000_000);
    u64::try_from(count).unwrap_or(u64::MAX)
}

/// A request body, and where its msgid is (for `--unique-msgid`).
#[derive(Debug, Clone)]
pub struct Body {
    bytes: Bytes,
    msgid: Option<std::ops::Range<usize>>,
}

impl Body {
    /// A body; with `unique`, its msgid must be found.
    pub fn new(bytes: Vec<u8>, unique: bool) -> anyhow::Result<Body> {
        let msgid = if unique {
            Some(find_msgid(&bytes).context(
                "--unique-msgid: no msgid (national \"msgid\", tj <BWID> or he msgid=\"…\") in the body",
            )?)
        } else {
            None
        };
        Ok(Body {
            bytes: Bytes::from(bytes),
            msgid,
        })
    }

    /// The bytes to send as request `sequence` of the run `nonce`.
    pub fn render(&self, nonce: u64, sequence: u64) -> Bytes {
        let Some(range) = &self.msgid else {
            return self.bytes.clone();
        };
        let mut bytes = self.bytes.to_vec();
        if let Some(slot) = bytes.get_mut(range.clone()) {
            write_tail(slot, nonce, sequence);
        }
        Bytes::from(bytes)
    }
}

/// Where the msgid's value lies in a national, tj or he message.
pub fn find_msgid(body: &[u8]) -> Option<std::ops::Range<usize>> {
    use memchr::memmem;
    if let Some(at) = memmem::find(body, b"\"msgid\"") {
        // "msgid" <ws> : <ws> "value"
        let mut i = at + b"\"msgid\"".len();
        while body.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        if body.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        while body.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        if body.get(i) != Some(&b'"') {
            return None;
        }
        let start = i + 1;
        let len = memchr::memchr(b'"', body.get(start..)?)?;
        return (len > 0).then_some(start..start + len);
    }
    for (open, close) in [(&b"<BWID>"[..], &b"<"[..]), (&b" msgid=\""[..], &b"\""[..])] {
        if let Some(at) = memmem::find(body, open) {
            let start = at + open.len();
            let len = memmem::find(body.get(start..)?, close)?;
            return (len > 0).then_some(start..start + len);
        }
    }
    None
}

/// Overwrites the last [`MSGID_TAIL`] characters of `slot` (or all of it, if
/// shorter) with the decimal digits of `nonce` (8) and `sequence` (10).
fn write_tail(slot: &mut [u8], nonce: u64, sequence: u64) {
    let mut digits = [b'0'; MSGID_TAIL];
    let mut value =
        u128::from(nonce % 100_000_000) * 10_000_000_000 + u128::from(sequence % 10_000_000_000);
    for d in digits.iter_mut().rev() {
        *d = b'0' + (value % 10) as u8;
        value /= 10;
    }
    let n = slot.len().min(MSGID_TAIL);
    let from = slot.len() - n;
    slot[from..].copy_from_slice(&digits[MSGID_TAIL - n..]);
}

/// A number that differs between runs: seconds of the day-ish clock and the process id.
fn run_nonce() -> u64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs % 100_000) * 1000 + u64::from(std::process::id() % 1000)
}

/// Whether a 2xx answer's body refuses the message: national `"infcode"`,
/// tj `<JYZTM>` or he `infcode="…"` other than 0.
pub fn refused(body: &[u8]) -> bool {
    use memchr::memmem;
    let value_after = |at: usize, skip: &[u8]| -> Option<&[u8]> {
        let mut i = at;
        while body
            .get(i)
            .is_some_and(|b| b.is_ascii_whitespace() || skip.contains(b))
        {
            i += 1;
        }
        let rest = body.get(i..)?;
        let end = rest
            .iter()
            .position(|b| !(b.is_ascii_digit() || *b == b'-'))
            .unwrap_or(rest.len());
        Some(&rest[..end])
    };
    let code = if let Some(at) = memmem::find(body, b"\"infcode\"") {
        value_after(at + 9, b":\"")
    } else if let Some(at) = memmem::find(body, b"<JYZTM>") {
        value_after(at + 7, b"")
    } else if let Some(at) = memmem::find(body, b"infcode=\"") {
        value_after(at + 9, b"")
    } else {
        return false;
    };
    match code {
        Some(digits) if !digits.is_empty() => digits.iter().any(|b| *b != b'0'),
        _ => false,
    }
}

/// Everything a worker needs, shared.
struct Plan {
    addr: SocketAddr,
    server_name: ServerName<'static>,
    tls: tokio_rustls::TlsConnector,
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
    bodies: Vec<Body>,
    rate: Option<u64>,
    handshakes: bool,
    timeout: Duration,
    duration: Duration,
    nonce: u64,
    next: AtomicU64,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// One worker's result.
struct Tally {
    counts: Counts,
    latency: Histogram<u64>,
}

impl Plan {
    async fn connect(&self, counts: &mut Counts) -> Result<Sender, Class> {
        let tcp =
            match tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(self.addr))
                .await
            {
                Ok(Ok(tcp)) => tcp,
                Ok(Err(_)) => return Err(Class::Connect),
                Err(_) => return Err(Class::Timeout),
            };
        let _ = tcp.set_nodelay(true);
        let tls = match tokio::time::timeout(
            self.timeout,
            self.tls.connect(self.server_name.clone(), tcp),
        )
        .await
        {
            Ok(Ok(tls)) => tls,
            Ok(Err(_)) => return Err(Class::Tls),
            Err(_) => return Err(Class::Timeout),
        };
        counts.handshakes += 1;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|_| Class::Io)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    fn request(&self, sequence: u64) -> Result<http::Request<Full<Bytes>>, Class> {
        let body = match self.bodies.len() {
            0 => Bytes::new(),
            n => {
                let index = usize::try_from(sequence % n as u64).unwrap_or(0);
                match self.bodies.get(index) {
                    Some(body) => body.render(self.nonce, sequence),
                    None => Bytes::new(),
                }
            }
        };
        let mut request = http::Request::new(Full::new(body));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        Ok(request)
    }

    /// Sends one request on `sender` (connecting first if there is none) and classifies the outcome.
    async fn exchange(
        &self,
        sender: &mut Option<Sender>,
        sequence: u64,
        counts: &mut Counts,
    ) -> Result<(), Class> {
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            *sender = None;
            *sender = Some(self.connect(counts).await?);
        }
        let Some(live) = sender.as_mut() else {
            return Err(Class::Io);
        };
        live.ready().await.map_err(|_| Class::Io)?;
        let request = self.request(sequence)?;
        let response = live.send_request(request).await.map_err(|_| Class::Io)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|_| Class::Io)?
            .to_bytes();
        if status.is_success() {
            if refused(&body) {
                Err(Class::Refused)
            } else {
                Ok(())
            }
        } else if status.is_client_error() {
            Err(Class::Http4xx)
        } else if status.is_server_error() {
            Err(Class::Http5xx)
        } else {
            Err(Class::HttpOther)
        }
    }

    async fn work(
        self: Arc<Self>,
        start: Instant,
        mut sender: Option<Sender>,
        mut latency: Histogram<u64>,
    ) -> Tally {
        let mut counts = Counts::default();
        let end = start + self.duration;
        let hard_stop = end + DRAIN_GRACE.max(self.timeout.min(Duration::from_secs(5)));
        loop {
            let sequence = self.next.fetch_add(1, Ordering::Relaxed);
            let due = match self.rate {
                Some(rate) => {
                    let due = start + due_after_start(sequence, rate);
                    if due >= end {
                        break;
                    }
                    if Instant::now() >= hard_stop {
                        // Due, never sent: counted from the schedule at the end.
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                    due
                }
                None => {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    now
                }
            };
            counts.sent += 1;
            let outcome = tokio::time::timeout(
                self.timeout,
                self.exchange(&mut sender, sequence, &mut counts),
            )
            .await
            .unwrap_or(Err(Class::Timeout));
            let took = Instant::now().saturating_duration_since(due);
            let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            match outcome {
                Ok(()) => {
                    counts.ok += 1;
                    latency.saturating_record(us.clamp(1, LATENCY_US_MAX));
                }
                Err(class) => {
                    counts.error(class);
                    match class {
                        // An answer came: its latency counts too.
                        Class::Http4xx | Class::Http5xx | Class::HttpOther | Class::Refused => {
                            latency.saturating_record(us.clamp(1, LATENCY_US_MAX));
                        }
                        Class::Connect | Class::Tls => {
                            sender = None;
                            // Do not spin on a target that is down.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Class::Timeout | Class::Io | Class::NotSent => sender = None,
                    }
                }
            }
            if self.handshakes {
                sender = None;
            }
        }
        Tally { counts, latency }
    }
}

/// The outcome of a run.
#[derive(Debug)]
pub struct Report {
    /// `open`, `closed` or `handshakes`.
    pub mode: &'static str,
    /// The target URL.
    pub target: String,
    /// Connections (workers).
    pub connections: usize,
    /// The open loop's rate, if any.
    pub rate: Option<u64>,
    /// The requested duration.
    pub duration: Duration,
    /// From the start until the last answer.
    pub elapsed: Duration,
    /// Counts.
    pub counts: Counts,
    /// Latency (microseconds).
    pub latency: Histogram<u64>,
}

impl Report {
    /// Successful answers per second.
    #[allow(clippy::float_arithmetic)]
    pub fn throughput(&self) -> f64 {
        self.counts.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// TLS handshakes per second.
    #[allow(clippy::float_arithmetic)]
    pub fn handshake_rate(&self) -> f64 {
        self.counts.handshakes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The JSON summary.
    pub fn json(&self) -> serde_json::Value {
        let p = percentiles(&self.latency);
        let mut errors = serde_json::Map::new();
        for (name, count) in CLASSES.iter().zip(self.counts.errors) {
            errors.insert((*name).to_owned(), serde_json::Value::from(count));
        }
        serde_json::json!({
            "mode": self.mode,
            "target": self.target,
            "connections": self.connections,
            "rate": self.rate,
            "duration_s": self.duration.as_secs(),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "requests": self.counts.sent,
            "ok": self.counts.ok,
            "throughput_rps": self.throughput(),
            "handshakes": self.counts.handshakes,
            "handshakes_per_s": self.handshake_rate(),
            "latency_ms": {
                "p50": p.p50, "p90": p.p90, "p99": p.p99, "p999": p.p999,
                "max": p.max, "mean": p.mean, "count": self.latency.len(),
            },
            "errors": errors,
            "errors_total": self.counts.errors_total(),
        })
    }

    /// The human summary.
    pub fn human(&self) -> String {
        let p = percentiles(&self.latency);
        let how = match (self.mode, self.rate) {
            ("handshakes", _) => "a fresh connection and full TLS handshake per request".to_owned(),
            (_, Some(rate)) => format!("open loop at {rate}/s"),
            _ => "closed loop at maximum".to_owned(),
        };
        let mut out = format!(
            "{target}: {how}, {c} connections, {d} s (elapsed {e:.2} s)\n\
             requests {sent}, ok {ok}: {tp:.1}/s; TLS handshakes {hs} ({hr:.1}/s)\n\
             latency ms (from the {from} time): p50 {p50:.3}  p90 {p90:.3}  p99 {p99:.3}  p99.9 {p999:.3}  max {max:.3}  mean {mean:.3}\n",
            target = self.target,
            c = self.connections,
            d = self.duration.as_secs(),
            e = self.elapsed.as_secs_f64(),
            sent = self.counts.sent,
            ok = self.counts.ok,
            tp = self.throughput(),
            hs = self.counts.handshakes,
            hr = self.handshake_rate(),
            from = if self.rate.is_some() { "scheduled" } else { "send" },
            p50 = p.p50,
            p90 = p.p90,
            p99 = p.p99,
            p999 = p.p999,
            max = p.max,
            mean = p.mean,
        );
        let errors: Vec<String> = CLASSES
            .iter()
            .zip(self.counts.errors)
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        if errors.is_empty() {
            out.push_str("errors: none\n");
        } else {
            out.push_str(&format!("errors: {}\n", errors.join(", ")));
        }
        out
    }
}

fn headers(args: &LoadArgs, uri: &http::Uri, bodies: &[Body]) -> anyhow::Result<http::HeaderMap> {
    let mut map = http::HeaderMap::new();
    let authority = uri
        .authority()
        .context("--target needs a host")?
        .as_str()
        .to_owned();
    map.insert(
        http::header::HOST,
        http::HeaderValue::from_str(&authority).context("--target's host")?,
    );
    let first = bodies
        .first()
        .and_then(|b| b.bytes.iter().find(|c| !c.is_ascii_whitespace()).copied());
    let media = match first {
        Some(b'<') => Some("application/xml"),
        Some(_) => Some("application/json"),
        None => None,
    };
    if let Some(media) = media {
        map.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(media),
        );
    }
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("--header {header}: NAME:VALUE"))?;
        let name = http::HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("--header {header}: the name"))?;
        let value = http::HeaderValue::from_str(value.trim())
            .with_context(|| format!("--header {header}: the value"))?;
        map.insert(name, value);
    }
    Ok(map)
}

/// Runs the load as `args` say and returns the report.
pub async fn drive(args: &LoadArgs) -> anyhow::Result<Report> {
    let uri: http::Uri = args
        .target
        .parse()
        .with_context(|| format!("--target {}", args.target))?;
    if uri.scheme_str() != Some("https") {
        anyhow::bail!("--target must be an https:// URL (the generator speaks mutual TLS only)");
    }
    let host = uri
        .host()
        .context("--target needs a host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    let server_name =
        ServerName::try_from(host.clone()).with_context(|| format!("{host} as a TLS name"))?;
    let mut tls = crate::tls::client_config(&args.ca, &args.cert, &args.key)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Every handshake is a full one: no tickets, no session ids.
    tls.resumption = rustls::client::Resumption::disabled();
    let method = http::Method::from_bytes(args.method.as_bytes())
        .with_context(|| format!("--method {}", args.method))?;
    if args.bodies.is_empty() && method == http::Method::POST {
        anyhow::bail!("POST needs at least one --body FILE");
    }
    let mut bodies = Vec::with_capacity(args.bodies.len());
    for path in &args.bodies {
        let bytes =
            std::fs::read(path).with_context(|| format!("reading --body {}", path.display()))?;
        bodies.push(
            Body::new(bytes, args.unique_msgid)
                .with_context(|| format!("--body {}", path.display()))?,
        );
    }
    if args.rate == Some(0) {
        anyhow::bail!("--rate must be at least 1");
    }
    if args.duration == 0 {
        anyhow::bail!("--duration must be at least 1 second");
    }
    let connections = match (args.rate, args.connections) {
        (_, Some(0)) => anyhow::bail!("--connections must be at least 1"),
        (_, Some(n)) => n,
        (Some(_), None) => 64,
        (None, None) => anyhow::bail!("give --rate N (open loop) or --connections N (closed loop)"),
    };
    let headers = headers(args, &uri, &bodies)?;
    let path_only: http::Uri = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()
        .context("--target's path")?;
    let plan = Arc::new(Plan {
        addr,
        server_name,
        tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
        method,
        uri: path_only,
        headers,
        bodies,
        rate: args.rate,
        handshakes: args.handshakes,
        timeout: Duration::from_millis(args.timeout_ms.max(1)),
        duration: Duration::from_secs(args.duration),
        nonce: run_nonce(),
        next: AtomicU64::new(0),
    });
    // Keep-alive connections are made before the clock starts.
    let mut senders = Vec::with_capacity(connections);
    let mut setup = Counts::default();
    for _ in 0..connections {
        if args.handshakes {
            senders.push(None);
            continue;
        }
        match plan.connect(&mut setup).await {
            Ok(sender) => senders.push(Some(sender)),
            Err(class) => anyhow::bail!(
                "could not open a connection to {} ({}): is it up, and does it accept the client certificate?",
                args.target,
                CLASSES[class.index()]
            ),
        }
    }
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for sender in senders {
        tasks.spawn(plan.clone().work(start, sender, histogram()?));
    }
    let mut counts = Counts::default();
    let mut latency = histogram()?;
    while let Some(done) = tasks.join_next().await {
        let tally = done.context("a load worker failed")?;
        counts.merge(&tally.counts);
        latency
            .add(&tally.latency)
            .context("merging latency histograms")?;
    }
    let elapsed = start.elapsed();
    // Handshakes of the connections made before the clock started count too.
    counts.handshakes += setup.handshakes;
    if let Some(rate) = args.rate {
        let due = scheduled_in(plan.duration, rate);
        let unsent = due.saturating_sub(counts.sent);
        counts.errors[Class::NotSent.index()] += unsent;
    }
    Ok(Report {
        mode: if args.handshakes {
            "handshakes"
        } else if args.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        target: args.target.clone(),
        connections,
        rate: args.rate,
        duration: plan.duration,
        elapsed,
        counts,
        latency,
    })
}

/// `jjj-gateway load`: exit 0 when at least one request succeeded, 1 when none did, 2 on error.
pub fn run(args: &LoadArgs) -> anyhow::Result<u8> {
    crate::tls::install_crypto_provider();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.enable_all().build()?;
    let report = runtime.block_on(drive(args))?;
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.human());
    }
    Ok(if report.counts.ok > 0 { 0 } else { 1 })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::float_arithmetic)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_even_and_exact() {
        assert_eq!(due_after_start(0, 1000), Duration::ZERO);
        assert_eq!(due_after_start(1, 1000), Duration::from_millis(1));
        assert_eq!(due_after_start(2500, 1000), Duration::from_millis(2500));
        // 3 per second: a third of a second each, without drift.
        assert_eq!(due_after_start(1, 3), Duration::from_nanos(333_333_333));
        assert_eq!(due_after_start(3, 3), Duration::from_secs(1));
        assert_eq!(
            due_after_start(3_000_000, 3),
            Duration::from_secs(1_000_000)
        );
        // Requests due strictly before the end.
        assert_eq!(scheduled_in(Duration::from_secs(2), 1000), 2000);
        assert_eq!(scheduled_in(Duration::from_secs(1), 3), 3);
        assert_eq!(scheduled_in(Duration::from_millis(1500), 3), 5);
        for rate in [1, 7, 999, 25_000] {
            let d = Duration::from_secs(3);
            let n = scheduled_in(d, rate);
            assert!(due_after_start(n - 1, rate) < d);
            assert!(due_after_start(n, rate) >= d);
        }
    }

    #[test]
    fn percentiles_come_from_the_recorded_latencies() {
        let mut h = histogram().unwrap();
        // 1..=1000 ms, one each.
        for ms in 1..=1000u64 {
            h.record(ms * 1000).unwrap();
        }
        let p = percentiles(&h);
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(near(p.p50, 500.0), "{p:?}");
        assert!(near(p.p90, 900.0), "{p:?}");
        assert!(near(p.p99, 990.0), "{p:?}");
        assert!(near(p.p999, 999.0), "{p:?}");
        assert!(near(p.max, 1000.0), "{p:?}");
        // Merging two workers' histograms is the histogram of both.
        let mut other = histogram().unwrap();
        for _ in 0..1000 {
            other.record(2_000_000).unwrap();
        }
        h.add(&other).unwrap();
        let p = percentiles(&h);
        assert!(near(p.p50, 1000.0) || p.p50 <= 1001.0, "{p:?}");
        assert!(near(p.p90, 2000.0), "{p:?}");
        assert!(near(p.max, 2000.0), "{p:?}");
    }

    #[test]
    fn a_queue_shows_in_the_latency_from_the_schedule() {
        // A server that stalls for one second at 100/s: the requests due during
        // the stall each waited, and the percentiles say so (the stall is not
        // one slow request among fast ones).
        let rate = 100;
        let mut h = histogram().unwrap();
        let service = Duration::from_millis(1);
        let mut free_at = Duration::ZERO;
        for i in 0..1000u64 {
            let due = due_after_start(i, rate);
            let stalled = if i == 100 {
                Duration::from_secs(1)
            } else {
                service
            };
            let sent = due.max(free_at);
            free_at = sent + stalled;
            h.record((free_at - due).as_micros() as u64).unwrap();
        }
        let p = percentiles(&h);
        assert!(p.p90 >= 100.0, "{p:?}");
        assert!(p.max >= 1000.0, "{p:?}");
        assert!(p.p50 < 2.0, "{p:?}");
    }

    #[test]
    fn unique_msgids_keep_the_length_and_the_prefix() {
        let national =
            br#"{"infno": "2207", "msgid" : "H11010500123202611250930150011", "x": 1}"#.to_vec();
        let body = Body::new(national.clone(), true).unwrap();
        let a = body.render(12345678, 1);
        let b = body.render(12345678, 2);
        assert_eq!(a.len(), national.len());
        assert_ne!(a, b);
        let text = String::from_utf8(a.to_vec()).unwrap();
        assert!(
            text.contains(r#""msgid" : "H11010500123123456780000000001""#),
            "{text}"
        );
        let tj =
            b"<QQBW><JYBH>2207</JYBH><BWID>H12010100789202611250930150011</BWID></QQBW>".to_vec();
        let body = Body::new(tj, true).unwrap();
        let text = String::from_utf8(body.render(1, 42).to_vec()).unwrap();
        assert!(
            text.contains("<BWID>H12010100789000000010000000042</BWID>"),
            "{text}"
        );
        let he =
            br#"<Request><Header infno="2207" msgid="H13010000001202611250930150011" /></Request>"#;
        assert!(Body::new(he.to_vec(), true).is_ok());
        // Without --unique-msgid the bytes go out as read.
        let plain = Body::new(b"{}".to_vec(), false).unwrap();
        assert_eq!(&plain.render(1, 1)[..], b"{}");
        assert!(Body::new(b"{}".to_vec(), true).is_err());
        // A short msgid is rewritten entirely.
        let short = Body::new(br#"{"msgid":"abc"}"#.to_vec(), true).unwrap();
        assert_eq!(&short.render(0, 7)[..], br#"{"msgid":"007"}"#);
    }

    #[test]
    fn refusals_in_the_body_are_seen_in_every_dialect() {
        assert!(!refused(br#"{"infcode": 0, "output": {}}"#));
        assert!(refused(br#"{"infcode": -1, "err_msg": "x"}"#));
        assert!(refused(br#"{"infcode":"4010"}"#));
        assert!(!refused(b"<YDBW><JYZTM>0</JYZTM></YDBW>"));
        assert!(refused(b"<YDBW><JYZTM>-1</JYZTM></YDBW>"));
        assert!(!refused(br#"<Answer><Header infcode="0" /></Answer>"#));
        assert!(refused(br#"<Answer><Header infcode="-1" /></Answer>"#));
        assert!(!refused(b"ok\n"));
    }

    #[test]
    fn counts_merge_by_class() {
        let mut a = Counts::default();
        a.error(Class::Timeout);
        a.ok = 3;
        let mut b = Counts::default();
        b.error(Class::Timeout);
        b.error(Class::Http5xx);
        b.handshakes = 2;
        a.merge(&b);
        assert_eq!(a.errors[Class::Timeout.index()], 2);
        assert_eq!(a.errors[Class::Http5xx.index()], 1);
        assert_eq!(a.errors_total(), 3);
        assert_eq!((a.ok, a.handshakes), (3, 2));
        assert_eq!(CLASSES[Class::NotSent.index()], "not_sent");
        assert_eq!(CLASSES[Class::Refused.index()], "refused");
    }
}
