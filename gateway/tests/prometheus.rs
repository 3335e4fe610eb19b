//! A real Prometheus (the Debian package) scrapes the gateway's `/metrics`
//! over mutual TLS, as `deploy/otel-collector.yaml` and `deploy/k8s/` expect
//! an operator's scraper to: the target is up and the gateway's own series
//! arrive with the traffic just sent. Skipped, loudly, when `prometheus` is
//! not installed (`.ci/run` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod harness;

use harness::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// GETs `path` from a plain-HTTP server on 127.0.0.1:`port`; the body.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// The value of the first sample of a PromQL instant query, if any.
fn query(port: u16, promql: &str) -> Option<String> {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body = http_get(port, &format!("/api/v1/query?query={encoded}"))?;
    // Chunked or not, the JSON object is in there whole.
    let start = body.find('{')?;
    let end = body.rfind('}')?;
    let json: serde_json::Value = serde_json::from_str(&body[start..=end]).ok()?;
    json["data"]["result"][0]["value"][1]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_metrics_over_mutual_tls() {
    if Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_or(true, |s| !s.success())
    {
        eprintln!(
            "SKIPPED: prometheus_scrapes_metrics_over_mutual_tls: prometheus is not installed"
        );
        return;
    }
    let world = World::start("prometheus", Settings::default());
    // Some traffic, so that the request series exist.
    let answer = world
        .client(BEIJING_HOSPITAL)
        .post(
            &world.url(NATIONAL),
            fixture("1101-request.json").into_bytes(),
        )
        .await;
    assert_eq!(answer.status, 200);

    let certs = world.scratch.path("certs");
    let config = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: jjj-gateway
    scheme: https
    tls_config:
      ca_file: {ca}
      cert_file: {cert}
      key_file: {key}
      server_name: localhost
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"#,
        ca = certs.join("ca.pem").display(),
        cert = certs.join(format!("{OFFICER}.pem")).display(),
        key = certs.join(format!("{OFFICER}.key")).display(),
        port = world.gateway_port,
    );
    let config_path = world.scratch.path("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let web = free_port();
    let prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            world.scratch.path("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(world.scratch.path("prometheus.log")).unwrap())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _prometheus = Kill(prometheus);
    {
        // Wait, boundedly, for a successful scrape of the gateway.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut up = None;
        while Instant::now() < deadline {
            up = query(web, r#"up{job="jjj-gateway"}"#);
            if up.as_deref() == Some("1") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let log = std::fs::read_to_string(world.scratch.path("prometheus.log")).unwrap_or_default();
        assert_eq!(
            up.as_deref(),
            Some("1"),
            "Prometheus never scraped the gateway; its log:\n{log}"
        );
        // The gateway's own series came with the scrape, with the traffic sent.
        let requests =
            query(web, r#"sum(jjj_requests_total{job="jjj-gateway"})"#).unwrap_or_default();
        assert!(
            requests.parse::<u64>().unwrap_or(0) >= 1,
            "jjj_requests_total as scraped: {requests:?}"
        );
        let histogram = query(
            web,
            r#"sum(jjj_request_duration_seconds_count{job="jjj-gateway"})"#,
        )
        .unwrap_or_default();
        assert!(
            histogram.parse::<u64>().unwrap_or(0) >= 1,
            "jjj_request_duration_seconds_count as scraped: {histogram:?}"
        );
    }
}
