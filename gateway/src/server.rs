//! The HTTPS server: accepts connections over mutual TLS, identifies the
//! caller once per connection, and serves the paths of DESIGN.md's external
//! interface. Also the background duties: certificate reload on SIGHUP,
//! limiter pruning, platform reachability, the journal's recovery and sweep
//! of orphans, graceful shutdown on SIGTERM.

use crate::identity::Caller;
use crate::pipeline::{self, Reply};
use crate::state::Gateway;
use crate::tls::Reloadable;
use bytes::Bytes;
use contracts::{Answer, ErrorCode, Refusal};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The path hospitals' HIS already call.
pub const NATIONAL_PATH: &str = "/fsi/api/rsfComIfsService/callService";

/// The dialect of a message path: national on the national path, the named
/// one on `/v1/messages/{dialect}`; `None` for any other path.
pub(crate) fn message_dialect(path: &str) -> Option<&'static dyn adapters::Dialect> {
    if path == NATIONAL_PATH {
        Some(&adapters::national::National)
    } else {
        path.strip_prefix("/v1/messages/")
            .and_then(|name| adapters::dialect(name).ok())
    }
}

/// The HTTP layers every request passes, outermost first, around [`handle`]:
///
/// 1. rescue: a request the layers below turn away becomes a 503 answer
///    (in the national format: the request was not read, so its dialect is unknown);
/// 2. load shedding: when the concurrency bound is reached, turn the request
///    away at once rather than let a queue grow;
/// 3. the global concurrency bound (`server.concurrency_max`), shared by every connection;
/// 4. the caller's own rate on the message paths ([`crate::limit::InstitutionLimitLayer`]);
/// 5. `handle`: the paths of the external interface.
fn stack(
    shared: Arc<Shared>,
    caller: Arc<Result<Caller, Refusal>>,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = tower::BoxError,
    Future = impl Send,
> + Clone
       + Send {
    let limit = tower::limit::GlobalConcurrencyLimitLayer::with_semaphore(shared.in_flight.clone());
    let rate = crate::limit::InstitutionLimitLayer::new(
        shared.gateway.clone(),
        caller.as_ref().as_ref().ok().map(|c| c.index),
    );
    tower::ServiceBuilder::new()
        .map_result(|result: Result<Response<Full<Bytes>>, tower::BoxError>| {
            Ok::<_, tower::BoxError>(result.unwrap_or_else(|_| {
                refusal_reply(
                    &adapters::national::National,
                    &Refusal::new(ErrorCode::Overloaded, "too many requests in flight"),
                )
            }))
        })
        .load_shed()
        .layer(limit)
        .layer(rate)
        .service_fn(move |request: Request<Incoming>| {
            let shared = shared.clone();
            let caller = caller.clone();
            async move { Ok::<_, tower::BoxError>(handle(&shared, &caller, request).await) }
        })
}

/// A running server's shared parts.
struct Shared {
    gateway: Arc<Gateway>,
    /// Requests in flight, over every connection of every serving thread.
    in_flight: Arc<Semaphore>,
    /// Open connections, likewise.
    connections: Arc<Semaphore>,
    /// The server's certificate, reloaded on SIGHUP.
    tls: Arc<Reloadable>,
}

/// How many threads serve connections: one per CPU the process may use
/// (its cgroup's quota included), as nginx runs a worker per CPU.
pub fn serving_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Binds the listening socket and returns `count` handles on it, one per
/// serving thread: each thread waits for connections on its own handle and
/// whichever is free first accepts the next one. One socket, not one per
/// thread with `SO_REUSEPORT`: no other process can bind the port beside
/// the gateway's (a second gateway started by mistake fails to start rather
/// than take a share of the hospitals' connections to another ledger).
/// Must run on a runtime; the handles come out non-blocking, for
/// [`TcpListener::from_std`] on each thread's own runtime.
fn listeners(addr: SocketAddr, count: usize) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restart need not wait out TIME_WAIT
    // (Linux never lets it bind beside a socket that listens).
    socket.set_reuseaddr(true)?;
    socket
        .bind(addr)
        .map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
    let listener = socket.listen(1024)?.into_std()?;
    let mut handles = Vec::with_capacity(count.max(1));
    for _ in 1..count {
        handles.push(listener.try_clone()?);
    }
    handles.insert(0, listener);
    Ok(handles)
}

/// Serves until `shutdown` completes, then lets in-flight requests finish
/// within the configured grace period. Prints `listening on https://ADDR`.
///
/// Connections are served thread per core, as nginx serves them process per
/// core: the calling task's runtime accepts on one handle of the listening
/// socket, and each other [`serving_threads`] runs a single-threaded runtime
/// of its own accepting on another ([`listeners`]). A connection and its
/// requests stay on the thread that accepted it, and so do the platform
/// connections they use ([`crate::upstream`] keeps a pool per thread): no
/// request's work crosses threads. Everything else (the gateway's state, limits, ledger, breakers,
/// the concurrency bounds) is shared.
pub async fn serve(gateway: Gateway, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let server = gateway.config.server.clone();
    let tls = Arc::new(Reloadable::load(&server.ca, &server.cert, &server.key)?);
    let mut bound = listeners(server.listen, serving_threads())?.into_iter();
    let Some(listener) = bound.next() else {
        anyhow::bail!("no listener bound on {}", server.listen);
    };
    let listener = TcpListener::from_std(listener)?;
    let local: SocketAddr = listener.local_addr()?;
    println!("listening on https://{local}");
    tracing::info!(%local, threads = bound.len() + 1, "listening");
    let shared = Arc::new(Shared {
        in_flight: Arc::new(Semaphore::new(server.concurrency_max)),
        connections: Arc::new(Semaphore::new(server.connections_max)),
        gateway: Arc::new(gateway),
        tls,
    });
    crate::telemetry::observe(&shared.gateway); // /metrics through OTLP too, when configured
    spawn_duties(&shared.gateway, &shared.tls);
    // Calls an earlier process left pending or unknown are reversed, once no
    // gateway can still be forwarding them, before /readyz turns ready. It
    // runs alongside the accept loop: it takes only entries received before
    // this process started, never a request arriving meanwhile.
    tokio::spawn(crate::journal::recover(shared.gateway.clone()));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut others = Vec::new();
    for (slot, listener) in (1..).zip(bound) {
        let shared = shared.clone();
        let mut stopping = stopping.clone();
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("jjj-serve-{slot}"))
            .spawn(move || {
                crate::upstream::serve_as(slot);
                let served = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(anyhow::Error::from)
                    .and_then(|runtime| {
                        runtime.block_on(async move {
                            let listener = TcpListener::from_std(listener)?;
                            let stopped = async move {
                                let _ = stopping.wait_for(|stop| *stop).await;
                            };
                            accept(listener, &shared, stopped).await;
                            Ok(())
                        })
                    });
                if let Err(error) = served {
                    // The other threads go on accepting from the same socket.
                    tracing::error!(slot, error = %format!("{error:#}"), "a serving thread failed");
                }
                let _ = done.send(());
            })?;
        others.push(finished);
    }
    accept(listener, &shared, shutdown).await;
    let _ = stop.send(true);
    for finished in others {
        if finished.await.is_err() {
            tracing::error!("a serving thread ended without a word");
        }
    }
    Ok(())
}

/// One thread's accept loop: serves the connections `listener` accepts on
/// the current runtime until `shutdown` completes, then waits for their
/// requests in flight, at most the grace period.
async fn accept(listener: TcpListener, shared: &Arc<Shared>, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = shared.connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let acceptor = tokio_rustls::TlsAcceptor::from(shared.tls.current());
        let shared = shared.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let handshake = tokio::time::timeout(
                shared.gateway.config.server.header_read_timeout,
                acceptor.accept(stream),
            )
            .await;
            let tls_stream = match handshake {
                Ok(Ok(tls_stream)) => tls_stream,
                Ok(Err(error)) => {
                    tracing::info!(%peer, %error, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let caller: Arc<Result<Caller, Refusal>> = Arc::new(
                match tls_stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                {
                    Some(leaf) => shared.gateway.directory.identify(leaf),
                    None => Err(Refusal::new(
                        ErrorCode::UnknownCaller,
                        "no client certificate",
                    )),
                },
            );
            let header_read_timeout = shared.gateway.config.server.header_read_timeout;
            let service = hyper_util::service::TowerToHyperService::new(stack(shared, caller));
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(Some(header_read_timeout))
                .max_buf_size(64 * 1024);
            builder
                .http2()
                .max_concurrent_streams(256)
                .max_header_list_size(64 * 1024);
            let connection = builder.serve_connection(TokioIo::new(tls_stream), service);
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; waiting for requests in flight");
    let grace = shared.gateway.config.server.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over with requests still in flight");
    }
}

fn spawn_duties(gateway: &Arc<Gateway>, tls: &Arc<Reloadable>) {
    #[cfg(unix)]
    {
        let tls = tls.clone();
        tokio::spawn(async move {
            let Ok(mut hangups) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while hangups.recv().await.is_some() {
                match tls.reload() {
                    Ok(()) => tracing::info!("certificates reloaded"),
                    Err(error) => {
                        tracing::error!(error = %format!("{error:#}"), "certificate reload failed; keeping the old ones")
                    }
                }
            }
        });
    }
    let g = gateway.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            g.limiters.prune();
        }
    });
    // Orphans of replicas that died for good (see crate::journal).
    tokio::spawn(crate::journal::sweep_forever(gateway.clone()));
    let g = gateway.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            for (index, region) in g.config.regions.iter().enumerate() {
                let mut reachable = false;
                for url in &region.upstreams {
                    let host = url
                        .host()
                        .unwrap_or("localhost")
                        .trim_start_matches('[')
                        .trim_end_matches(']');
                    let port = url.port_u16().unwrap_or(443);
                    if let Ok(Ok(_)) = tokio::time::timeout(
                        Duration::from_secs(1),
                        tokio::net::TcpStream::connect((host, port)),
                    )
                    .await
                    {
                        reachable = true;
                        break;
                    }
                }
                g.reachable[index].store(reachable, Ordering::Relaxed);
            }
        }
    });
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub(crate) fn from_reply(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(reply.media_type),
    );
    if let Some(seconds) = reply.retry_after {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
    }
    response
}

fn refusal_reply(
    dialect: &'static dyn adapters::Dialect,
    refusal: &Refusal,
) -> Response<Full<Bytes>> {
    from_reply(Reply {
        status: refusal.code.http_status(),
        body: dialect.encode_answer(None, &Answer::refusal(refusal)),
        media_type: dialect.media_type(),
        retry_after: None,
    })
}

async fn handle(
    shared: &Shared,
    caller: &Result<Caller, Refusal>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let gateway = &shared.gateway;
    let path = request.uri().path().to_owned();
    let national: &'static dyn adapters::Dialect = &adapters::national::National;
    // The rarer paths' futures are boxed (and the pipeline's, in
    // `pipeline::message`): this future is moved by each layer around it
    // (tracing, the limit, hyper), and holding theirs inline it would be
    // kilobytes to copy each time, for every message.
    if path.starts_with(crate::clearing::api::PREFIX) {
        return Box::pin(crate::clearing::api::handle(gateway, caller, request)).await;
    }
    if path == crate::supervision::api::PATH {
        return Box::pin(crate::supervision::api::handle(gateway, caller, &request)).await;
    }
    if path.starts_with(crate::clearing::api::PAGE) || path == "/clearing" {
        return crate::clearing::api::page(gateway, caller, &path);
    }
    match (request.method(), path.as_str()) {
        (&Method::GET, "/healthz") => return text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") if Box::pin(gateway.ready()).await => {
            return text(StatusCode::OK, "ready\n")
        }
        (&Method::GET, "/readyz") => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: a region has no reachable platform, the journal is not recovered, or the ledger does not answer\n",
            )
        }
        (method, p) if p.starts_with(crate::settlements::PREFIX) => {
            return Box::pin(crate::settlements::get(gateway, caller, method, p)).await
        }
        (&Method::GET, "/metrics") => {
            let mut response = text(StatusCode::OK, gateway.metrics.render(&gateway.upstreams));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            return response;
        }
        _ => {}
    }
    let dialect = match message_dialect(&path) {
        Some(dialect) => dialect,
        None => match path.strip_prefix("/v1/messages/").map(adapters::dialect) {
            Some(Err(refusal)) => return refusal_reply(national, &refusal),
            _ => {
                return refusal_reply(national, &Refusal::new(ErrorCode::NotFound, "no such path"))
            }
        },
    };
    if request.method() != Method::POST {
        return refusal_reply(
            dialect,
            &Refusal::new(ErrorCode::MethodNotAllowed, "messages are POSTed"),
        );
    }
    let max = gateway.config.server.body_bytes_max;
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return refusal_reply(
            dialect,
            &Refusal::new(ErrorCode::TooLarge, format!("at most {max} bytes")),
        );
    }
    let traceparent = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match tokio::time::timeout(
        gateway.config.server.body_read_timeout,
        Limited::new(request.into_body(), max).collect(),
    )
    .await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error))
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return refusal_reply(
                dialect,
                &Refusal::new(ErrorCode::TooLarge, format!("at most {max} bytes")),
            );
        }
        Ok(Err(_)) => {
            return refusal_reply(
                dialect,
                &Refusal::new(ErrorCode::Malformed, "the request body could not be read"),
            )
        }
        Err(_) => {
            return refusal_reply(
                dialect,
                &Refusal::new(
                    ErrorCode::RequestTimeout,
                    "the request body came too slowly",
                ),
            )
        }
    };
    from_reply(pipeline::message(gateway, caller, dialect, &body, traceparent.as_deref()).await)
}

/// Runs `serve` for the command line: tracing, the runtime, and SIGTERM/SIGINT.
pub fn run(config_path: &std::path::Path) -> anyhow::Result<u8> {
    crate::telemetry::init();
    let config = crate::config::Config::load(config_path)?;
    // This thread serves too, beside the others `serve` starts (thread per core).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let gateway = Gateway::new(config).await?;
        serve(gateway, crate::telemetry::termination()).await
    })?;
    Ok(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Accepts one connection on `handle`, waiting at most 2 s.
    fn accept_one(handle: &std::net::TcpListener) -> std::net::TcpStream {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match handle.accept() {
                Ok((stream, _)) => return stream,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("nothing to accept: {e}"),
            }
        }
    }

    #[tokio::test]
    async fn every_serving_thread_accepts_from_one_socket_that_no_one_else_can_share() {
        let handles = listeners("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        assert_eq!(handles.len(), 3);
        let at = handles[0].local_addr().unwrap();
        assert!(handles.iter().all(|h| h.local_addr().unwrap() == at));
        // Three connections, one accepted on each handle: one queue.
        let clients: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(at).unwrap())
            .collect();
        let accepted: Vec<_> = handles.iter().map(accept_one).collect();
        let mut peers: Vec<_> = accepted.iter().map(|s| s.peer_addr().unwrap()).collect();
        let mut locals: Vec<_> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
        peers.sort();
        locals.sort();
        assert_eq!(peers, locals);
        // Nobody binds the port beside it, not even asking to share it.
        assert!(std::net::TcpListener::bind(at).is_err());
        let sharing = tokio::net::TcpSocket::new_v4().unwrap();
        sharing.set_reuseport(true).unwrap();
        sharing.set_reuseaddr(true).unwrap();
        assert!(sharing.bind(at).is_err(), "another socket shared {at}");
        // One serving thread: one handle.
        assert_eq!(
            listeners("127.0.0.1:0".parse().unwrap(), 1).unwrap().len(),
            1
        );
    }
}
