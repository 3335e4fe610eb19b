//! Traces and metrics over OTLP to a receiver this test runs (no Collector
//! binary can be installed here), over both transports a Collector offers:
//! OTLP/HTTP (the receiver decodes `ExportTraceServiceRequest` with
//! opentelemetry-proto's prost types, as a Collector's OTLP/HTTP receiver
//! does) and OTLP/gRPC (opentelemetry-proto's tonic `TraceService` and
//! `MetricsService` servers, over HTTP/2, in clear or with mutual TLS):
//!
//! - a demo day exports a span per request with its children, takes a
//!   caller's `traceparent` as the parent, and neither its spans nor its log
//!   carry an ID number or a patient's name;
//! - a platform receives a `traceparent` naming the gateway's own `upstream`
//!   span, in the caller's trace;
//! - every export carries the headers of `OTEL_EXPORTER_OTLP_HEADERS` (HTTP
//!   headers, or gRPC metadata).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod harness;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, Metric};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the gateway under test exports, and so how the receiver listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Otlp {
    /// `http/protobuf`, in clear.
    Http,
    /// `grpc`, in clear (h2c).
    Grpc,
    /// `grpc` to an `https://` endpoint: the receiver presents the test CA's
    /// server certificate and asks for a client certificate of that CA.
    GrpcMutualTls,
}

/// The header (gRPC: metadata) `OTEL_EXPORTER_OTLP_HEADERS` sets in these
/// tests, and its value.
const MARKER: (&str, &str) = ("x-jjj-test", "otlp-header");

/// What the OTLP receiver got: (service.name, span) pairs, metrics, and the
/// [`MARKER`] header of every export (empty when it was missing).
#[derive(Clone, Default)]
struct Received {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
    metrics: Arc<Mutex<Vec<Metric>>>,
    markers: Arc<Mutex<Vec<String>>>,
}

impl Received {
    fn spans(&self) -> Vec<(String, Span)> {
        self.spans.lock().unwrap().clone()
    }
    fn metrics(&self) -> Vec<Metric> {
        self.metrics.lock().unwrap().clone()
    }
    fn markers(&self) -> Vec<String> {
        self.markers.lock().unwrap().clone()
    }

    /// Keeps the spans of one export, whichever transport brought it.
    fn traces(&self, export: ExportTraceServiceRequest, marker: Option<&str>) {
        self.marker(marker);
        let mut spans = self.spans.lock().unwrap();
        for resource in export.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .map(text_of)
                .unwrap_or_default();
            for scope in resource.scope_spans {
                spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
    }

    /// Keeps the metrics of one export, whichever transport brought it.
    fn metrics_of(&self, export: ExportMetricsServiceRequest, marker: Option<&str>) {
        self.marker(marker);
        let mut metrics = self.metrics.lock().unwrap();
        for resource in export.resource_metrics {
            for scope in resource.scope_metrics {
                metrics.extend(scope.metrics);
            }
        }
    }

    fn marker(&self, marker: Option<&str>) {
        self.markers
            .lock()
            .unwrap()
            .push(marker.unwrap_or_default().to_owned());
    }
}

/// An OTLP receiver on 127.0.0.1 speaking `otlp`; `certs` holds the test
/// PKI (`ca.pem`, `server.pem`, `server.key`) for [`Otlp::GrpcMutualTls`].
async fn otlp_receiver(otlp: Otlp, certs: Option<&Path>) -> (u16, Received) {
    match otlp {
        Otlp::Http => otlp_http_receiver().await,
        Otlp::Grpc => otlp_grpc_receiver(None).await,
        Otlp::GrpcMutualTls => {
            let certs = certs.expect("the test PKI for a TLS receiver");
            let tls = gateway::tls::server_config(
                &certs.join("ca.pem"),
                &certs.join("server.pem"),
                &certs.join("server.key"),
            )
            .expect("server TLS");
            otlp_grpc_receiver(Some(tokio_rustls::TlsAcceptor::from(tls))).await
        }
    }
}

/// An OTLP/HTTP receiver: POST /v1/traces and /v1/metrics, protobuf.
async fn otlp_http_receiver() -> (u16, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Received::default();
    let store = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: http::Request<Incoming>| {
                        let store = store.clone();
                        async move {
                            let path = request.uri().path().to_owned();
                            let marker = request
                                .headers()
                                .get(MARKER.0)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            let body = match request.into_body().collect().await {
                                Ok(body) => body.to_bytes(),
                                Err(_) => return Ok::<_, std::convert::Infallible>(answer(400)),
                            };
                            if path == "/v1/metrics" {
                                let Ok(export) = ExportMetricsServiceRequest::decode(body) else {
                                    return Ok(answer(400));
                                };
                                store.metrics_of(export, marker.as_deref());
                            } else if path == "/v1/traces" {
                                let Ok(export) = ExportTraceServiceRequest::decode(body) else {
                                    return Ok(answer(400));
                                };
                                store.traces(export, marker.as_deref());
                            }
                            Ok(answer(200))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, received)
}

/// The gRPC side of the receiver: opentelemetry-proto's generated services.
struct Collector(Received);

fn marker_of(metadata: &tonic::metadata::MetadataMap) -> Option<String> {
    metadata
        .get(MARKER.0)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[async_trait::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let marker = marker_of(request.metadata());
        self.0.traces(request.into_inner(), marker.as_deref());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[async_trait::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let marker = marker_of(request.metadata());
        self.0.metrics_of(request.into_inner(), marker.as_deref());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// An OTLP/gRPC receiver: `TraceService/Export` and `MetricsService/Export`
/// over HTTP/2 (hyper), in clear or behind `tls`.
async fn otlp_grpc_receiver(tls: Option<tokio_rustls::TlsAcceptor>) -> (u16, Received) {
    use tower::Service as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Received::default();
    let traces = TraceServiceServer::new(Collector(received.clone()));
    let metrics = MetricsServiceServer::new(Collector(received.clone()));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (traces, metrics, tls) = (traces.clone(), metrics.clone(), tls.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: http::Request<Incoming>| {
                        let (mut traces, mut metrics) = (traces.clone(), metrics.clone());
                        async move {
                            let path = request.uri().path();
                            if path.starts_with("/opentelemetry.proto.collector.trace.v1.") {
                                traces.call(request).await
                            } else {
                                metrics.call(request).await
                            }
                        }
                    });
                let http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                match tls {
                    Some(tls) => {
                        if let Ok(stream) = tls.accept(stream).await {
                            let _ = http2.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                    None => {
                        let _ = http2.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            });
        }
    });
    (port, received)
}

fn answer(status: u16) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(Bytes::new()));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/x-protobuf"),
    );
    response
}

fn text_of(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(n)) => n.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::ArrayValue(list)) => list
            .values
            .iter()
            .map(text_of)
            .collect::<Vec<_>>()
            .join(" "),
        Some(any_value::Value::KvlistValue(list)) => list
            .values
            .iter()
            .map(|kv| {
                format!(
                    "{}={}",
                    kv.key,
                    kv.value.as_ref().map(text_of).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(text_of)
}

/// Every text a span carries: its name, attributes, events, status.
fn texts(span: &Span) -> String {
    let mut out = span.name.clone();
    for kv in &span.attributes {
        out.push_str(&format!(
            "\n{}={}",
            kv.key,
            kv.value.as_ref().map(text_of).unwrap_or_default()
        ));
    }
    for event in &span.events {
        out.push('\n');
        out.push_str(&event.name);
        for kv in &event.attributes {
            out.push_str(&format!(
                " {}={}",
                kv.key,
                kv.value.as_ref().map(text_of).unwrap_or_default()
            ));
        }
    }
    if let Some(status) = &span.status {
        out.push('\n');
        out.push_str(&status.message);
    }
    out
}

/// Anything shaped like an 18-character ID number (the demo test's rule).
fn id_like(text: &str) -> Option<String> {
    text.as_bytes()
        .windows(18)
        .find(|w| {
            w[..17].iter().all(u8::is_ascii_digit)
                && (w[17].is_ascii_digit() || w[17] == b'X' || w[17] == b'x')
        })
        .map(|w| String::from_utf8_lossy(w).into_owned())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A child process, killed on drop, whose stdout lines arrive on a channel.
struct Running {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(mut command: Command) -> Running {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn jjj-gateway");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line containing `needle`, within `limit`.
    fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} within {limit:?}; printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// SIGTERM, then waits for a clean exit (which flushes the spans).
    fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "exit status {status}");
                return;
            }
            assert!(Instant::now() < deadline, "did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `OTEL_*` environment of a gateway exporting to the receiver on `port`
/// over `otlp`; `certs` (the test PKI) for [`Otlp::GrpcMutualTls`], where the
/// gateway presents its own client certificate.
fn otel_env(command: &mut Command, otlp: Otlp, port: u16, service: &str, certs: Option<&Path>) {
    let (scheme, protocol) = match otlp {
        Otlp::Http => ("http", "http/protobuf"),
        Otlp::Grpc => ("http", "grpc"),
        Otlp::GrpcMutualTls => ("https", "grpc"),
    };
    if let (Otlp::GrpcMutualTls, Some(certs)) = (otlp, certs) {
        command
            .env("OTEL_EXPORTER_OTLP_CERTIFICATE", certs.join("ca.pem"))
            .env(
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                certs.join("gateway.pem"),
            )
            .env("OTEL_EXPORTER_OTLP_CLIENT_KEY", certs.join("gateway.key"));
    } else {
        command
            .env_remove("OTEL_EXPORTER_OTLP_CERTIFICATE")
            .env_remove("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")
            .env_remove("OTEL_EXPORTER_OTLP_CLIENT_KEY");
    }
    command
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("{scheme}://127.0.0.1:{port}"),
        )
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("{}={}", MARKER.0, MARKER.1),
        )
        .env("OTEL_SERVICE_NAME", service)
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .env("OTEL_BSP_MAX_QUEUE_SIZE", "65536")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "1000")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .env_remove("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
        .env_remove("OTEL_TRACES_SAMPLER")
        .env_remove("OTEL_SDK_DISABLED");
}

/// POSTs national JSON with a `traceparent`, as `code`.
async fn post_traced(certs: &Path, code: &str, url: &str, body: String, traceparent: &str) -> u16 {
    let tls = gateway::tls::client_config(
        &certs.join("ca.pem"),
        &certs.join(format!("{code}.pem")),
        &certs.join(format!("{code}.key")),
    )
    .expect("client TLS");
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
    let request = http::Request::post(url)
        .header("content-type", "application/json")
        .header("traceparent", traceparent)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.expect("request");
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}

/// The demo's patients: (ID number, name), read back from the platforms' records.
fn demo_patients(dir: &Path) -> Vec<(String, String)> {
    let far = contracts::Date::parse("2099-12-31").unwrap();
    let mut patients = Vec::new();
    for entry in std::fs::read_dir(dir.join("sandbox-data")).expect("sandbox-data") {
        let path = entry.unwrap().path();
        let Some(admdvs) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".sqlite"))
            .and_then(|n| contracts::Admdvs::parse(n).ok())
        else {
            continue;
        };
        let db = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut statement = db
            .prepare("SELECT id_number FROM people UNION SELECT id_number FROM settlements")
            .unwrap();
        let ids: Vec<String> = statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for id in ids {
            if let Some(person) = gateway::sandbox::population::person(&id, admdvs, far) {
                patients.push((id, person.name.expose().to_owned()));
            }
        }
    }
    patients
}

/// The names in the contracts' example messages (`psn_name` and the like).
fn fixture_names() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contracts/fixtures/national");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        collect_names(&json, &mut names);
    }
    names.sort();
    names.dedup();
    names
}

fn collect_names(json: &serde_json::Value, out: &mut Vec<String>) {
    match json {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if key.ends_with("_name") && !key.starts_with("fixmedins") {
                    if let Some(text) = value.as_str().filter(|t| !t.is_empty()) {
                        if !text.is_ascii() {
                            out.push(text.to_owned());
                        }
                    }
                }
                collect_names(value, out);
            }
        }
        serde_json::Value::Array(list) => list.iter().for_each(|v| collect_names(v, out)),
        _ => {}
    }
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_day_exports_its_spans_and_no_personal_data() {
    demo_day(Otlp::Http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_day_exports_its_spans_and_no_personal_data_over_grpc() {
    demo_day(Otlp::Grpc).await;
}

/// Every export carried the `OTEL_EXPORTER_OTLP_HEADERS` header (metadata).
fn assert_headers(received: &Received, otlp: Otlp) {
    let markers = received.markers();
    assert!(!markers.is_empty(), "no export over {otlp:?}");
    assert!(
        markers.iter().all(|m| m == MARKER.1),
        "OTEL_EXPORTER_OTLP_HEADERS over {otlp:?}: {markers:?}"
    );
}

/// The demo, exporting over `otlp`; one caller's request in a trace of its own.
async fn demo_day(otlp: Otlp) {
    let (port, received) = otlp_receiver(otlp, None).await;
    let dir = std::env::temp_dir().join(format!(
        "jjj-telemetry-demo-{otlp:?}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut command = Command::new(harness::BIN);
    command
        .args(["demo", "--visits", "33", "--keep-running", "--data-dir"])
        .arg(&dir);
    otel_env(&mut command, otlp, port, "jjj-demo-under-test", None);
    let mut demo = tokio::task::block_in_place(|| Running::start(command));
    let line =
        tokio::task::block_in_place(|| demo.wait_for("keeps running at", Duration::from_secs(300)));
    let base = line
        .split("running at ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the gateway's address")
        .to_owned();
    // A caller of its own, in a trace of its own.
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let status = post_traced(
        &dir.join("certs"),
        "H11010500123",
        &format!("{base}{}", harness::NATIONAL),
        harness::fixture("2207-request.json"),
        &traceparent,
    )
    .await;
    assert!(status < 500, "status {status}");
    tokio::task::block_in_place(|| demo.terminate());

    let spans = received.spans();
    assert!(
        !spans.is_empty(),
        "no span reached the OTLP receiver over {otlp:?}"
    );
    assert_headers(&received, otlp);
    assert!(
        spans
            .iter()
            .all(|(service, _)| service == "jjj-demo-under-test"),
        "OTEL_SERVICE_NAME is the resource's service.name"
    );
    let requests = spans.iter().filter(|(_, s)| s.name == "request").count();
    eprintln!(
        "the receiver got {} spans over {otlp:?}, {requests} of them request spans",
        spans.len()
    );
    assert!(requests >= 33, "only {requests} request spans");

    // The caller's trace: its span is the request span's parent, and the
    // request span has the children of the request path.
    let request = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "request" && hex(&s.trace_id) == TRACE_ID)
        .expect("a request span in the caller's trace");
    assert_eq!(hex(&request.parent_span_id), CALLER_SPAN);
    assert_eq!(attribute(request, "jjj.infno").as_deref(), Some("2207"));
    assert_eq!(
        attribute(request, "jjj.institution").as_deref(),
        Some("H11010500123")
    );
    assert_eq!(
        attribute(request, "jjj.insured_region").as_deref(),
        Some("130600")
    );
    assert_eq!(
        attribute(request, "jjj.treatment_region").as_deref(),
        Some("110000")
    );
    assert!(attribute(request, "jjj.outcome").is_some());
    let children: Vec<&Span> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.parent_span_id == request.span_id)
        .collect();
    for name in ["limit", "decode", "journal", "upstream", "encode"] {
        assert!(
            children.iter().all(|c| hex(&c.trace_id) == TRACE_ID),
            "children in the caller's trace"
        );
        assert!(
            children.iter().any(|c| c.name == name),
            "no {name} child of the request span; children: {:?}",
            children.iter().map(|c| &c.name).collect::<Vec<_>>()
        );
    }
    // Every span of the day has the same shape: children only under requests.
    let request_ids: std::collections::HashSet<&Vec<u8>> = spans
        .iter()
        .filter(|(_, s)| s.name == "request")
        .map(|(_, s)| &s.span_id)
        .collect();
    for (_, span) in &spans {
        if span.name != "request" {
            assert!(
                request_ids.contains(&span.parent_span_id),
                "{} is not a child of a request span",
                span.name
            );
        }
    }
    // Refusals were traced too, with their code.
    assert!(spans.iter().any(|(_, s)| s.name == "request"
        && attribute(s, "jjj.outcome").as_deref() == Some("refused")
        && attribute(s, "jjj.error_code").is_some()));

    // The metrics of /metrics arrived too, under the same names.
    let metrics = received.metrics();
    let answered: f64 = metrics
        .iter()
        .filter(|m| m.name == "jjj_requests_total")
        .filter_map(|m| match &m.data {
            Some(metric::Data::Sum(sum)) => Some(&sum.data_points),
            _ => None,
        })
        .flatten()
        .filter(|p| {
            p.attributes.iter().any(|kv| {
                kv.key == "outcome" && kv.value.as_ref().map(text_of).as_deref() == Some("answered")
            })
        })
        .filter_map(|p| match p.value {
            Some(number_data_point::Value::AsDouble(v)) => Some(v),
            _ => None,
        })
        .sum();
    assert!(
        answered >= 33.0,
        "jjj_requests_total{{outcome=\"answered\"}} over OTLP: {answered}"
    );
    for name in [
        "jjj_request_duration_seconds_count",
        "jjj_upstream_breaker_open",
        "jjj_refusals_total",
    ] {
        assert!(
            metrics.iter().any(|m| m.name == name),
            "no {name} over OTLP"
        );
    }

    // No personal data: no ID number, no patient's name, in spans or log.
    let log = std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default();
    assert!(!log.is_empty(), "the gateway logged nothing");
    let exported: String = spans
        .iter()
        .map(|(_, s)| texts(s))
        .collect::<Vec<_>>()
        .join("\n");
    let patients = demo_patients(&dir);
    assert!(patients.len() >= 10, "only {} patients", patients.len());
    let names = fixture_names();
    assert!(names.iter().any(|n| n == "张伟"), "{names:?}");
    for (what, text) in [("the exported spans", &exported), ("the log", &log)] {
        assert_eq!(id_like(text), None, "an ID number in {what}");
        for (id, name) in &patients {
            assert!(
                !text.contains(id.as_str()),
                "a patient's ID number in {what}"
            );
            assert!(
                !text.contains(name.as_str()),
                "patient name {name} in {what}"
            );
        }
        for name in &names {
            assert!(
                !text.contains(name.as_str()),
                "fixture name {name} in {what}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A platform stand-in that records the `traceparent` of what it receives
/// and answers 500.
async fn recording_platform(certs: &Path) -> (u16, Arc<Mutex<Vec<String>>>) {
    let tls = gateway::tls::server_config(
        &certs.join("ca.pem"),
        &certs.join("server.pem"),
        &certs.join("server.key"),
    )
    .expect("server TLS");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let store = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let store = store.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |request: http::Request<Incoming>| {
                        let store = store.clone();
                        async move {
                            let header = request
                                .headers()
                                .get("traceparent")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned();
                            store.lock().unwrap().push(header);
                            let _ = request.into_body().collect().await;
                            Ok::<_, std::convert::Infallible>(answer(500))
                        }
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_receives_the_upstream_spans_traceparent() {
    propagation(Otlp::Http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_receives_the_upstream_spans_traceparent_over_grpc_with_mutual_tls() {
    propagation(Otlp::GrpcMutualTls).await;
}

/// `serve` exporting over `otlp`, with one request that a platform fails.
async fn propagation(otlp: Otlp) {
    let scratch = harness::Scratch::new(&format!("telemetry-propagation-{otlp:?}"));
    let certs = scratch.path("certs");
    tokio::task::block_in_place(|| harness::certs_init(&certs, &[harness::BEIJING_HOSPITAL]));
    let (otlp_port, received) = otlp_receiver(otlp, Some(&certs)).await;
    let (platform_port, headers) = recording_platform(&certs).await;
    let gateway_port = harness::free_port();
    let url = format!("https://127.0.0.1:{platform_port}{}", harness::NATIONAL);
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:{gateway_port}\"\nca = \"certs/ca.pem\"\ncert = \"certs/server.pem\"\nkey = \"certs/server.key\"\n"
    );
    for (admdvs, name) in [("110000", "北京"), ("120000", "天津"), ("130000", "河北")] {
        config.push_str(&format!(
            "\n[[regions]]\nadmdvs = \"{admdvs}\"\nname = \"{name}\"\ndialect = \"national\"\nupstreams = [\"{url}\"]\nca = \"certs/ca.pem\"\nclient_cert = \"certs/gateway.pem\"\nclient_key = \"certs/gateway.key\"\n"
        ));
    }
    config.push_str(&format!(
        "\n[[institutions]]\ncode = \"{}\"\nname = \"test\"\nrole = \"hospital\"\nadmdvs = \"110105\"\nlevel = 3\n",
        harness::BEIJING_HOSPITAL
    ));
    std::fs::write(scratch.path("gateway.toml"), config).unwrap();
    let mut command = Command::new(harness::BIN);
    command
        .args(["serve", "--config"])
        .arg(scratch.path("gateway.toml"));
    otel_env(
        &mut command,
        otlp,
        otlp_port,
        "jjj-gateway-under-test",
        Some(&certs),
    );
    // No scheduled export before the end: the spans arrive only if the
    // shutdown on SIGTERM flushes them.
    command.env("OTEL_BSP_SCHEDULE_DELAY", "600000");
    let mut serve = tokio::task::block_in_place(|| Running::start(command));
    tokio::task::block_in_place(|| serve.wait_for("listening on", Duration::from_secs(60)));

    let status = post_traced(
        &certs,
        harness::BEIJING_HOSPITAL,
        &format!("https://127.0.0.1:{gateway_port}{}", harness::NATIONAL),
        harness::fixture("1101-request.json"),
        &format!("00-{TRACE_ID}-{CALLER_SPAN}-01"),
    )
    .await;
    assert_eq!(status, 502, "the platform answered 500");
    tokio::task::block_in_place(|| serve.terminate());

    let sent = headers.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let parts: Vec<&str> = sent[0].split('-').collect();
    assert_eq!(parts.len(), 4, "{sent:?}");
    assert_eq!(
        parts[1], TRACE_ID,
        "the caller's trace goes on to the platform"
    );
    assert_ne!(
        parts[2], CALLER_SPAN,
        "the platform's parent is the gateway's span"
    );

    assert_headers(&received, otlp);
    let spans = received.spans();
    let upstream = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "upstream" && hex(&s.span_id) == parts[2])
        .expect("the platform's parent is the exported upstream span");
    assert_eq!(attribute(upstream, "jjj.region").as_deref(), Some("130000"));
    assert_eq!(
        attribute(upstream, "jjj.failure").as_deref(),
        Some("status")
    );
    let request = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.span_id == upstream.parent_span_id)
        .expect("the upstream span's parent");
    assert_eq!(request.name, "request");
    assert_eq!(hex(&request.parent_span_id), CALLER_SPAN);
    assert_eq!(attribute(request, "jjj.outcome").as_deref(), Some("failed"));
    assert_eq!(
        attribute(request, "jjj.error_code").as_deref(),
        Some("upstream_bad_answer")
    );
    assert_eq!(
        request.status.as_ref().map(|s| s.code),
        Some(2),
        "a failed request's span has status ERROR"
    );
}

/// Runs a checking tool and fails the test, with all it said, unless it
/// succeeds; its standard output.
fn succeeds(command: &mut Command, what: &str) -> String {
    let out = command.output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}:\n{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    said
}

/// The deploy/ files that tools can check: the systemd unit
/// (`systemd-analyze verify`), the alert rules (`promtool check rules`), the
/// Kubernetes manifests as kustomize renders them (`kubectl kustomize`)
/// against the API's own schemas with no unknown field
/// (`kubernetes-validate --strict`, from PyPI), and that the dashboard and
/// the rules use only series the gateway renders. A missing tool is skipped
/// loudly.
#[test]
fn the_deploy_files_check() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let metrics_source = std::fs::read_to_string(root.join("gateway/src/metrics.rs")).unwrap();
    for file in [
        "deploy/grafana/jjj-gateway.json",
        "deploy/prometheus/alerts.yml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        if file.ends_with(".json") {
            serde_json::from_str::<serde_json::Value>(&text).expect("dashboard JSON");
        }
        let mut rest = text.as_str();
        while let Some(at) = rest.find("jjj_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            let family = name
                .strip_suffix("_bucket")
                .or_else(|| name.strip_suffix("_sum"))
                .or_else(|| name.strip_suffix("_count"))
                .unwrap_or(&name);
            assert!(
                metrics_source.contains(&format!("# TYPE {family} ")),
                "{file} uses {name}, which /metrics does not render"
            );
        }
    }
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(_) => {
            // The unit names the installed binary; verify it against the built one.
            let unit = std::fs::read_to_string(root.join("deploy/systemd/jjj-gateway.service"))
                .unwrap()
                .replace("/usr/local/bin/jjj-gateway", harness::BIN);
            let dir = harness::Scratch::new("systemd");
            let path = dir.path("jjj-gateway.service");
            std::fs::write(&path, unit).unwrap();
            let out = Command::new("systemd-analyze")
                .arg("verify")
                .arg(&path)
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&out.stderr);
            // Outside a booted systemd, verify may not find the default targets; anything else is a finding.
            let findings: Vec<&str> = said
                .lines()
                .filter(|l| !l.contains("sysinit.target"))
                .collect();
            assert!(findings.is_empty(), "systemd-analyze verify:\n{said}");
        }
        Err(_) => eprintln!("SKIPPED: systemd-analyze is not installed (apt-get install systemd)"),
    }
    match Command::new("promtool").arg("--version").output() {
        Ok(_) => {
            succeeds(
                Command::new("promtool")
                    .args(["check", "rules"])
                    .arg(root.join("deploy/prometheus/alerts.yml")),
                "promtool check rules",
            );
        }
        Err(_) => eprintln!("SKIPPED: promtool is not installed (apt-get install prometheus)"),
    }
    let kubectl = Command::new("kubectl")
        .args(["version", "--client"])
        .output();
    let validate = Command::new("kubernetes-validate")
        .arg("--version")
        .output();
    match (kubectl, validate) {
        (Ok(_), Ok(_)) => {
            let text = succeeds(
                Command::new("kubectl")
                    .arg("kustomize")
                    .arg(root.join("deploy/k8s")),
                "kubectl kustomize deploy/k8s",
            );
            // Every kind the deployment needs, the gateway's probes on /healthz and /readyz.
            for kind in [
                "Namespace",
                "Deployment",
                "StatefulSet",
                "Service",
                "ConfigMap",
            ] {
                assert!(
                    text.contains(&format!("kind: {kind}\n")),
                    "no {kind}:\n{text}"
                );
            }
            assert!(
                text.contains("/healthz") && text.contains("/readyz"),
                "{text}"
            );
            let dir = harness::Scratch::new("k8s");
            let path = dir.path("rendered.yaml");
            std::fs::write(&path, &text).unwrap();
            let out = Command::new("kubernetes-validate")
                .args(["--strict", "--kubernetes-version", "1.30.0"])
                .arg(&path)
                .output()
                .unwrap();
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "kubernetes-validate:\n{said}");
            let passed = said.matches(" passed for resource ").count();
            assert_eq!(
                passed,
                text.matches("\nkind: ").count() + usize::from(text.starts_with("kind: ")),
                "{said}"
            );
        }
        _ => eprintln!(
            "SKIPPED: the Kubernetes manifests were not validated: kubectl or kubernetes-validate \
             (pip install kubernetes-validate) is missing"
        ),
    }
}

/// The collector's configuration, as far as it can be checked without an
/// OpenTelemetry Collector (none is in the registries this project can
/// reach): every component a pipeline or the service names is defined; the
/// Kubernetes ConfigMap carries the same configuration as
/// `deploy/otel-collector.yaml`; the scrape job of its Prometheus receiver is
/// a valid Prometheus scrape configuration (`promtool check config`), and
/// scrapes `/metrics` over HTTPS with a client certificate, as the gateway
/// requires. YAML is read with Python's PyYAML (a dependency of
/// kubernetes-validate, which `.ci/run` installs); a missing tool is skipped
/// loudly.
#[test]
fn the_collector_configuration_checks() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let has_yaml = Command::new("python3")
        .args(["-c", "import yaml"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !has_yaml {
        eprintln!(
            "SKIPPED: the collector configuration was not checked: python3 with PyYAML is \
             missing (pip install pyyaml)"
        );
        return;
    }
    let dir = harness::Scratch::new("collector");
    let scrape = dir.path("prometheus.yml");
    // Prints one finding per line; writes the receiver's scrape section as a
    // Prometheus configuration, its certificate paths pointing into `dir`.
    let script = r#"
import json, sys, yaml
root, scrape_out, certs = sys.argv[1], sys.argv[2], sys.argv[3]
findings = []
config = yaml.safe_load(open(f"{root}/deploy/otel-collector.yaml"))
docs = list(yaml.safe_load_all(open(f"{root}/deploy/k8s/otel-collector.yaml")))
maps = [d for d in docs if d and d.get("kind") == "ConfigMap"]
if len(maps) != 1 or yaml.safe_load(maps[0]["data"]["config.yaml"]) != config:
    findings.append("the ConfigMap in deploy/k8s/otel-collector.yaml is not deploy/otel-collector.yaml")
service = config.get("service", {})
for name in service.get("extensions", []):
    if name not in (config.get("extensions") or {}):
        findings.append(f"service names extension {name}, which is not defined")
pipelines = service.get("pipelines") or {}
if not {"traces", "metrics"} <= set(pipelines):
    findings.append(f"pipelines {sorted(pipelines)}: traces and metrics are both needed")
for pipeline, parts in pipelines.items():
    for kind in ("receivers", "processors", "exporters"):
        for name in parts.get(kind, []):
            if name not in (config.get(kind) or {}):
                findings.append(f"pipeline {pipeline} names {kind[:-1]} {name}, which is not defined")
    if not parts.get("receivers") or not parts.get("exporters"):
        findings.append(f"pipeline {pipeline} lacks receivers or exporters")
for kind in ("receivers", "processors", "exporters"):
    used = {n for p in pipelines.values() for n in p.get(kind, [])}
    for name in (config.get(kind) or {}):
        if name not in used and name != "debug":
            findings.append(f"{kind[:-1]} {name} is defined but in no pipeline")
protocols = config["receivers"]["otlp"]["protocols"]
if protocols.get("http", {}).get("endpoint", "").rsplit(":", 1)[-1] != "4318":
    findings.append("the OTLP/HTTP receiver is not on :4318, where the gateways send")
jobs = config["receivers"]["prometheus"]["config"]["scrape_configs"]
for job in jobs:
    if job.get("scheme") != "https" or job.get("metrics_path") != "/metrics":
        findings.append(f"job {job.get('job_name')}: not https /metrics")
    tls = job.get("tls_config", {})
    if not tls.get("cert_file") or not tls.get("key_file"):
        findings.append(f"job {job.get('job_name')}: no client certificate (the gateway requires one)")
    for key in ("ca_file", "cert_file", "key_file"):
        if key in tls:
            tls[key] = f"{certs}/{key}.pem"
json.dump({"scrape_configs": jobs}, open(scrape_out, "w"))
print("\n".join(findings))
"#;
    let said = succeeds(
        Command::new("python3")
            .args(["-c", script])
            .arg(&root)
            .arg(&scrape)
            .arg(dir.path("")),
        "the collector configuration's check",
    );
    assert!(
        said.trim().is_empty(),
        "deploy/otel-collector.yaml:\n{said}"
    );
    match Command::new("promtool").arg("--version").output() {
        Ok(_) => {
            for key in ["ca_file", "cert_file", "key_file"] {
                std::fs::write(dir.path(&format!("{key}.pem")), "").unwrap();
            }
            succeeds(
                Command::new("promtool")
                    .args(["check", "config"])
                    .arg(&scrape),
                "promtool check config of the collector's scrape job",
            );
        }
        Err(_) => eprintln!(
            "SKIPPED: the collector's scrape job was not checked: promtool is not installed \
             (apt-get install prometheus)"
        ),
    }
}
