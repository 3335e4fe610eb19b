//! A minimal regional-platform stand-in for benchmarks: mutual TLS, HTTP/1.1
//! keep-alive, and for every POST the canned answer of its transaction from
//! `contracts/fixtures/` — national JSON (`<infno>-answer.json`) for a
//! national request (`"infno"`), tj XML for a tj request (`<JYBH>`), he XML
//! for an he request (`infno="…"`). No record, no policy, no disk: it costs
//! as little as an upstream can, so that a benchmark measures the proxy in
//! front of it (the full `jjj-gateway sandbox` keeps a SQLite record, which
//! would dominate). `GET /healthz` answers `ok`.
//!
//! ```sh
//! cargo run --release -p gateway --example upstream_standin -- \
//!     --listen 127.0.0.1:9101 --ca certs/ca.pem --cert certs/server.pem --key certs/server.key
//! ```
//!
//! Prints `listening on https://ADDR` once it accepts connections.

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

struct Args {
    listen: String,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    fixtures: PathBuf,
    threads: Option<usize>,
}

fn args() -> anyhow::Result<Args> {
    let mut parsed = Args {
        listen: "127.0.0.1:0".to_owned(),
        ca: PathBuf::from("certs/ca.pem"),
        cert: PathBuf::from("certs/server.pem"),
        key: PathBuf::from("certs/server.key"),
        fixtures: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contracts/fixtures"),
        threads: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => parsed.listen = value,
            "--ca" => parsed.ca = value.into(),
            "--cert" => parsed.cert = value.into(),
            "--key" => parsed.key = value.into(),
            "--fixtures" => parsed.fixtures = value.into(),
            "--threads" => parsed.threads = Some(value.parse().context("--threads")?),
            other => anyhow::bail!(
                "unknown option {other} (--listen ADDR --ca FILE --cert FILE --key FILE --fixtures DIR --threads N)"
            ),
        }
    }
    Ok(parsed)
}

/// Which dialect a request is in, and its transaction.
fn transaction(body: &[u8]) -> Option<(&'static str, String)> {
    use memchr::memmem;
    let digits = |from: usize| -> Option<String> {
        let rest = body.get(from..)?;
        let start = rest.iter().position(|b| b.is_ascii_digit())?;
        let len = rest[start..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(rest.len() - start);
        // The number must follow within a few characters of its key.
        (start <= 4 && len > 0)
            .then(|| String::from_utf8_lossy(&rest[start..start + len]).into_owned())
    };
    if let Some(at) = memmem::find(body, b"\"infno\"") {
        return Some(("national", digits(at + 7)?));
    }
    if let Some(at) = memmem::find(body, b"<JYBH>") {
        return Some(("tj", digits(at + 6)?));
    }
    if let Some(at) = memmem::find(body, b"infno=\"") {
        return Some(("he", digits(at + 7)?));
    }
    None
}

type Answers = HashMap<(&'static str, String), Bytes>;

fn load_answers(fixtures: &Path) -> anyhow::Result<Answers> {
    let mut answers = Answers::new();
    for (dialect, ext) in [("national", "json"), ("tj", "xml"), ("he", "xml")] {
        let dir = fixtures.join(dialect);
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some(infno) = name.strip_suffix(&format!("-answer.{ext}")) {
                if infno.bytes().all(|b| b.is_ascii_digit()) {
                    answers.insert(
                        (dialect, infno.to_owned()),
                        Bytes::from(std::fs::read(&path)?),
                    );
                }
            }
        }
    }
    if answers.is_empty() {
        anyhow::bail!("no *-answer fixtures under {}", fixtures.display());
    }
    Ok(answers)
}

fn reply(status: u16, media: &'static str, body: Bytes) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(body));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(media),
    );
    response
}

async fn answer(
    answers: &Answers,
    request: http::Request<Incoming>,
) -> http::Response<Full<Bytes>> {
    if request.method() == http::Method::GET {
        return reply(200, "text/plain", Bytes::from_static(b"ok\n"));
    }
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return reply(400, "text/plain", Bytes::from_static(b"unreadable body\n")),
    };
    match transaction(&body) {
        Some((dialect, infno)) => match answers.get(&(dialect, infno)) {
            Some(canned) => reply(
                200,
                if dialect == "national" {
                    "application/json"
                } else {
                    "application/xml"
                },
                canned.clone(),
            ),
            None => reply(404, "text/plain", Bytes::from_static(b"no canned answer\n")),
        },
        None => reply(
            400,
            "text/plain",
            Bytes::from_static(b"no transaction found\n"),
        ),
    }
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let answers = Arc::new(load_answers(&args.fixtures)?);
    let mut tls = (*gateway::tls::server_config(&args.ca, &args.cert, &args.key)?).clone();
    // HTTP/1.1 keep-alive, as nginx speaks to its upstreams.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    runtime.enable_all().build()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        println!("listening on https://{}", listener.local_addr()?);
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let answers = answers.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |request| {
                    let answers = answers.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(&answers, request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    })
}
