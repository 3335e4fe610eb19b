//! Logs, traces and the process's termination signals.
//!
//! - Logs: structured JSON (stderr, or a file for the demo), filtered by
//!   `RUST_LOG` (default `info`).
//! - Traces (and metrics, [`observe`]): OpenTelemetry over OTLP, on whenever
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//!   is set, for `serve`, `sandbox` and `demo` alike; otherwise off, and the
//!   request path creates no span at all ([`on`], [`span!`]). The standard
//!   variables apply: `OTEL_EXPORTER_OTLP_PROTOCOL` (or per signal
//!   `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, `_METRICS_PROTOCOL`):
//!   `http/protobuf` (the default; `/v1/traces` and `/v1/metrics` are
//!   appended to the generic endpoint, the Collector's port 4318) or `grpc`
//!   (tonic; the endpoint is used as given, the Collector's port 4317);
//!   `http/json` is not built in: the gateway says so on stderr and exports
//!   nothing. Then `OTEL_EXPORTER_OTLP_HEADERS` (gRPC: as metadata),
//!   `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_SERVICE_NAME` (default
//!   `jjj-gateway`), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and
//!   `OTEL_TRACES_SAMPLER_ARG`, `OTEL_BSP_*`, and
//!   `OTEL_EXPORTER_OTLP_CERTIFICATE` (the CA of an `https://` collector,
//!   required for one; with `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and
//!   `_CLIENT_KEY`, mutual TLS), for both protocols. Sampling, resource,
//!   batching and scrubbing are the same whatever the protocol; only the
//!   exporter differs. Every export runs in one small tokio runtime of its
//!   own (thread `otlp-export`), whichever command runs.
//!   A caller's W3C `traceparent` becomes the request span's parent, and each
//!   platform call carries its own span's `traceparent` onwards.
//! - One scrubber, [`scrub`], for logs and spans alike: every line the log
//!   writer writes and every string an exported span carries (name,
//!   attributes, events, status) pass through it; it masks anything shaped
//!   like an 18-character resident ID number. Names, diagnoses and the other
//!   personal fields never get that far by construction: they are
//!   [`contracts::record::Secret`]s, whose `Debug` is `***`, refusals name a
//!   field but never repeat its value, and spans carry only codes
//!   (transaction, regions, institution, outcome, error code).
//!
//! [`shutdown`] flushes the spans and metrics still buffered; `main` calls it
//! on the way out.

use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Whether spans are being exported (an OTLP endpoint was configured).
static TRACING: AtomicBool = AtomicBool::new(false);
/// The tracer provider, kept to flush it at exit.
static PROVIDER: OnceLock<Mutex<Option<opentelemetry_sdk::trace::SdkTracerProvider>>> =
    OnceLock::new();
/// The meter provider (OTLP metrics), kept to flush it at exit.
static METERS: OnceLock<Mutex<Option<opentelemetry_sdk::metrics::SdkMeterProvider>>> =
    OnceLock::new();

/// Whether request spans are made and exported. Off, the request path pays
/// one relaxed load per span it would have made.
pub fn on() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// A span at INFO when tracing is [`on`], otherwise `Span::none()` (free).
/// Same arguments as `tracing::info_span!`.
macro_rules! span {
    ($($arg:tt)+) => {
        if $crate::telemetry::on() {
            ::tracing::info_span!($($arg)+)
        } else {
            ::tracing::Span::none()
        }
    };
}
pub(crate) use span;

/// Structured JSON logs on stderr, and traces if configured.
pub fn init() {
    install(tracing_subscriber::fmt::writer::BoxMakeWriter::new(
        std::io::stderr,
    ));
}

/// Structured JSON logs into a file (the demo keeps its terminal for people),
/// and traces if configured.
pub fn init_to_file(path: &std::path::Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    install(tracing_subscriber::fmt::writer::BoxMakeWriter::new(
        Mutex::new(file),
    ));
    Ok(())
}

fn install(writer: tracing_subscriber::fmt::writer::BoxMakeWriter) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(Scrubbed(writer))
        .with_filter(filter);
    let (provider, meters) = match otlp::providers() {
        Ok(providers) => providers,
        Err(error) => {
            eprintln!("OpenTelemetry export is off: {error:#}");
            (None, None)
        }
    };
    let traces = provider.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("jjj-gateway"))
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("gateway", tracing::Level::INFO),
            )
    });
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .is_ok();
    if let (true, Some(provider)) = (installed, provider) {
        let _ = PROVIDER.set(Mutex::new(Some(provider)));
        TRACING.store(true, Ordering::Relaxed);
    }
    if let (true, Some(meters)) = (installed, meters) {
        let _ = METERS.set(Mutex::new(Some(meters)));
    }
}

/// Exports the gateway's metrics through OpenTelemetry as well (when an
/// OTLP endpoint is configured and `OTEL_METRICS_EXPORTER` is not `none`):
/// the very series of `/metrics`, same names and labels, read from the same
/// rendering at each export (`OTEL_METRIC_EXPORT_INTERVAL`, default 60 s).
/// Counters become OpenTelemetry counters, gauges gauges; a histogram is
/// exported as its `_bucket` (with `le`), `_sum` and `_count` series.
pub fn observe(gateway: &std::sync::Arc<crate::state::Gateway>) {
    use opentelemetry::metrics::MeterProvider as _;
    let Some(slot) = METERS.get() else {
        return;
    };
    let meter = match slot.lock() {
        Ok(guard) => guard.as_ref().map(|p| p.meter("jjj-gateway")),
        Err(poisoned) => poisoned
            .into_inner()
            .as_ref()
            .map(|p| p.meter("jjj-gateway")),
    };
    let Some(meter) = meter else {
        return;
    };
    let source = std::sync::Arc::new(prometheus::Source::new(gateway));
    for (name, gauge) in prometheus::series_names(&source.text()) {
        let source = source.clone();
        let series = name.clone();
        if gauge {
            meter
                .f64_observable_gauge(name)
                .with_callback(move |observer| {
                    for (labels, value) in source.samples(&series) {
                        observer.observe(value, &labels);
                    }
                })
                .build();
        } else {
            meter
                .f64_observable_counter(name)
                .with_callback(move |observer| {
                    for (labels, value) in source.samples(&series) {
                        observer.observe(value, &labels);
                    }
                })
                .build();
        }
    }
}

/// The Prometheus rendering of [`crate::metrics::Metrics`], read back as
/// samples for the OpenTelemetry instruments.
mod prometheus {
    use opentelemetry::KeyValue;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// The gateway's rendering, cached for a second (one export reads every
    /// instrument in a row). Holds the gateway until the meter provider is
    /// shut down, so that the last export at exit still reads its counters.
    pub(super) struct Source {
        gateway: Arc<crate::state::Gateway>,
        cache: Mutex<Option<(Instant, String)>>,
    }

    impl Source {
        pub(super) fn new(gateway: &Arc<crate::state::Gateway>) -> Source {
            Source {
                gateway: gateway.clone(),
                cache: Mutex::new(None),
            }
        }

        pub(super) fn text(&self) -> String {
            let mut cache = match self.cache.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some((at, text)) = cache.as_ref() {
                if at.elapsed() < Duration::from_secs(1) {
                    return text.clone();
                }
            }
            let text = self.gateway.metrics.render(&self.gateway.upstreams);
            *cache = Some((Instant::now(), text.clone()));
            text
        }

        /// The samples of one series name.
        pub(super) fn samples(&self, name: &str) -> Vec<(Vec<KeyValue>, f64)> {
            samples(&self.text(), name)
        }
    }

    /// Every series name the text declares (`# TYPE`), and whether it is a gauge.
    pub(super) fn series_names(text: &str) -> Vec<(String, bool)> {
        let mut names = Vec::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if (words.next(), words.next()) != (Some("#"), Some("TYPE")) {
                continue;
            }
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            match kind {
                "histogram" => {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.push((format!("{name}{suffix}"), false));
                    }
                }
                "gauge" => names.push((name.to_owned(), true)),
                _ => names.push((name.to_owned(), false)),
            }
        }
        names
    }

    /// The samples named `name`: labels and value.
    pub(super) fn samples(text: &str, name: &str) -> Vec<(Vec<KeyValue>, f64)> {
        let mut out = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            let (labels, value) = if let Some(inner) = rest.strip_prefix('{') {
                let Some((labels, value)) = inner.rsplit_once('}') else {
                    continue;
                };
                (parse_labels(labels), value)
            } else if rest.starts_with(' ') {
                (Vec::new(), rest)
            } else {
                continue; // another series whose name starts with this one
            };
            if let Ok(value) = value.trim().parse::<f64>() {
                out.push((labels, value));
            }
        }
        out
    }

    /// `k="v",k2="v2"` (the values this gateway renders hold no quotes).
    fn parse_labels(text: &str) -> Vec<KeyValue> {
        text.split("\",")
            .filter_map(|pair| {
                let (key, value) = pair.split_once("=\"")?;
                Some(KeyValue::new(
                    key.trim_start_matches(',').to_owned(),
                    value.trim_end_matches('"').to_owned(),
                ))
            })
            .collect()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_rendering_reads_back() {
            let text = "# HELP a_total A.\n# TYPE a_total counter\na_total{infno=\"2207\",outcome=\"answered\"} 3\n\
                # TYPE d_seconds histogram\nd_seconds_bucket{infno=\"2207\",le=\"0.005\"} 1\nd_seconds_sum{infno=\"2207\"} 0.004000\n\
                # TYPE open gauge\nopen{region=\"110000\",upstream=\"0\"} 1\nplain_total 7\n";
            let names = series_names(text);
            assert_eq!(names[0], ("a_total".to_owned(), false));
            assert!(names.contains(&("d_seconds_bucket".to_owned(), false)));
            assert!(names.contains(&("open".to_owned(), true)));
            let a = samples(text, "a_total");
            assert_eq!(a.len(), 1);
            assert_eq!(a[0].0[0], KeyValue::new("infno", "2207"));
            assert_eq!(a[0].0[1], KeyValue::new("outcome", "answered"));
            assert_eq!(a[0].1, 3.0);
            let bucket = samples(text, "d_seconds_bucket");
            assert_eq!(bucket[0].0[1], KeyValue::new("le", "0.005"));
            assert_eq!(samples(text, "d_seconds_sum")[0].1, 0.004);
            assert_eq!(samples(text, "plain_total")[0].1, 7.0);
            // A prefix of another series' name matches nothing.
            assert!(samples(text, "d_seconds").is_empty());
        }
    }
}

/// Exports the spans still buffered and stops the exporter (waits at most a
/// few seconds). Called once on the way out; harmless when tracing is off.
pub fn shutdown() {
    let Some(slot) = PROVIDER.get() else {
        return;
    };
    TRACING.store(false, Ordering::Relaxed);
    let provider = match slot.lock() {
        Ok(mut guard) => guard.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    };
    if let Some(provider) = provider {
        let _ = provider.force_flush();
        let _ = provider.shutdown_with_timeout(Duration::from_secs(5));
    }
    let meters = METERS.get().and_then(|slot| match slot.lock() {
        Ok(mut guard) => guard.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    });
    if let Some(meters) = meters {
        let _ = meters.force_flush();
        let _ = meters.shutdown_with_timeout(Duration::from_secs(5));
    }
}

/// The one scrubber of logs and spans: masks every run of 18 or more
/// characters made of digits (the last may be `X`), the shape of a resident ID
/// number, with `*`. Codes, amounts and ids of the request path are shorter.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    if !needs_scrub(bytes) {
        return Cow::Borrowed(text);
    }
    let mut out = bytes.to_vec();
    scrub_bytes(&mut out);
    // Only ASCII digits and X became ASCII '*': still UTF-8.
    Cow::Owned(String::from_utf8(out).unwrap_or_default())
}

/// The length of a run of digits starting at `at`, with one `X`/`x` allowed
/// to end it.
fn id_run(bytes: &[u8], at: usize) -> usize {
    let digits = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits > 0 && matches!(bytes.get(at + digits), Some(b'X' | b'x')) {
        digits + 1
    } else {
        digits
    }
}

const ID_LEN: usize = 18;

fn needs_scrub(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i + ID_LEN <= bytes.len() {
        let run = id_run(bytes, i);
        if run >= ID_LEN {
            return true;
        }
        i += run.max(1);
    }
    false
}

fn scrub_bytes(bytes: &mut [u8]) {
    let mut i = 0;
    while i < bytes.len() {
        let run = id_run(bytes, i);
        if run >= ID_LEN {
            bytes[i..i + run].fill(b'*');
        }
        i += run.max(1);
    }
}

/// The log writer, through [`scrub`]: the JSON formatter writes each event
/// as one buffer, which is scrubbed whole.
struct Scrubbed(tracing_subscriber::fmt::writer::BoxMakeWriter);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Scrubbed {
    type Writer = ScrubbedWriter<Box<dyn Write + 'a>>;
    fn make_writer(&'a self) -> Self::Writer {
        ScrubbedWriter(self.0.make_writer())
    }
}

/// One writer of [`Scrubbed`].
pub struct ScrubbedWriter<W>(W);

impl<W: Write> Write for ScrubbedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if needs_scrub(buf) {
            let mut owned = buf.to_vec();
            scrub_bytes(&mut owned);
            self.0.write_all(&owned)?;
        } else {
            self.0.write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The caller's W3C `traceparent` as a parent context, if it is valid.
pub fn remote_parent(traceparent: Option<&str>) -> Option<opentelemetry::Context> {
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TraceContextExt;
    let value = traceparent?;
    let mut carrier = std::collections::HashMap::with_capacity(1);
    carrier.insert("traceparent".to_owned(), value.to_owned());
    let context = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    context.span().span_context().is_valid().then_some(context)
}

/// Makes `span` a child of the caller's `traceparent` (when tracing is on
/// and the header is valid). Call before any child span is made.
pub fn adopt(span: &tracing::Span, traceparent: Option<&str>) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !on() {
        return;
    }
    if let Some(parent) = remote_parent(traceparent) {
        let _ = span.set_parent(parent);
    }
}

/// The W3C `traceparent` naming `span`, for a call it makes; `None` when
/// tracing is off (the caller's own header is passed on unchanged then).
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !on() {
        return None;
    }
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = std::collections::HashMap::with_capacity(2);
    opentelemetry_sdk::propagation::TraceContextPropagator::new()
        .inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// Marks `span` failed, with the error code's slug as the status (never
/// the detail: it is meant for the caller).
pub fn failed(span: &tracing::Span, code: &'static str) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if on() {
        span.set_status(opentelemetry::trace::Status::error(code));
    }
}

/// The OTLP exporters (HTTP/protobuf or gRPC), configured from the `OTEL_*`
/// environment.
mod otlp {
    use super::scrub;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full, Limited};
    use opentelemetry::{KeyValue, Value};
    use opentelemetry_http::{HttpClient, HttpError, Request, Response};
    use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
    use opentelemetry_sdk::metrics::SdkMeterProvider;
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
    use std::sync::Mutex;
    use std::time::Duration;

    const ANSWER_BYTES_MAX: usize = 4 * 1024 * 1024;

    fn env(name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }

    type Providers = (Option<SdkTracerProvider>, Option<SdkMeterProvider>);

    /// Providers exporting spans and metrics to the configured endpoints;
    /// `None` for a signal without an endpoint (or turned off with
    /// `OTEL_TRACES_EXPORTER=none`, `OTEL_METRICS_EXPORTER=none`).
    pub(super) fn providers() -> anyhow::Result<Providers> {
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok((None, None));
        }
        let generic = env("OTEL_EXPORTER_OTLP_ENDPOINT");
        let traces = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| generic.clone())
            .filter(|_| env("OTEL_TRACES_EXPORTER").as_deref() != Some("none"));
        let metrics = env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
            .or(generic)
            .filter(|_| env("OTEL_METRICS_EXPORTER").as_deref() != Some("none"));
        let resource = resource();
        let tracer = match traces {
            Some(endpoint) => Some(tracer_provider(&endpoint, resource.clone())?),
            None => None,
        };
        let meters = match metrics {
            Some(endpoint) => Some(meter_provider(&endpoint, resource)?),
            None => None,
        };
        Ok((tracer, meters))
    }

    fn resource() -> opentelemetry_sdk::Resource {
        let service = env("OTEL_SERVICE_NAME").unwrap_or_else(|| "jjj-gateway".to_owned());
        opentelemetry_sdk::Resource::builder()
            .with_service_name(service)
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build()
    }

    /// The two OTLP transports built in.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Transport {
        /// `http/protobuf`: POST to `{endpoint}/v1/{signal}` (the Collector's 4318).
        HttpProtobuf,
        /// `grpc`: the OTLP services over HTTP/2 at the endpoint as given
        /// (the Collector's 4317).
        Grpc,
    }

    /// The protocol of `signal` (`TRACES`, `METRICS`):
    /// `OTEL_EXPORTER_OTLP_{signal}_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`,
    /// else `http/protobuf`.
    fn transport(signal: &str) -> anyhow::Result<Transport> {
        let specific = format!("OTEL_EXPORTER_OTLP_{signal}_PROTOCOL");
        let (variable, protocol) = match env(&specific) {
            Some(protocol) => (specific, protocol),
            None => (
                "OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(),
                env("OTEL_EXPORTER_OTLP_PROTOCOL").unwrap_or_else(|| "http/protobuf".to_owned()),
            ),
        };
        match protocol.trim() {
            "http/protobuf" => Ok(Transport::HttpProtobuf),
            "grpc" => Ok(Transport::Grpc),
            other => anyhow::bail!(
                "{variable}={other} is not built in; this gateway exports OTLP over \
                 http/protobuf (the collector's port 4318) or grpc (port 4317)"
            ),
        }
    }

    fn meter_provider(
        endpoint: &str,
        resource: opentelemetry_sdk::Resource,
    ) -> anyhow::Result<SdkMeterProvider> {
        let runtime = export_runtime()?;
        let builder = opentelemetry_otlp::MetricExporter::builder();
        let exporter = match transport("METRICS")? {
            Transport::HttpProtobuf => http(builder.with_http(), endpoint, &runtime)?.build()?,
            Transport::Grpc => {
                // The channel's worker is spawned on the export runtime.
                let _runtime = runtime.enter();
                grpc(builder.with_tonic(), endpoint)?.build()?
            }
        };
        Ok(SdkMeterProvider::builder()
            .with_periodic_exporter(OnExportRuntime {
                runtime,
                inner: exporter,
            })
            .with_resource(resource)
            .build())
    }

    fn tracer_provider(
        endpoint: &str,
        resource: opentelemetry_sdk::Resource,
    ) -> anyhow::Result<SdkTracerProvider> {
        let runtime = export_runtime()?;
        let builder = opentelemetry_otlp::SpanExporter::builder();
        let exporter = match transport("TRACES")? {
            Transport::HttpProtobuf => http(builder.with_http(), endpoint, &runtime)?.build()?,
            Transport::Grpc => {
                // The channel's worker is spawned on the export runtime.
                let _runtime = runtime.enter();
                grpc(builder.with_tonic(), endpoint)?.build()?
            }
        };
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(Scrubbing(OnExportRuntime {
                runtime,
                inner: exporter,
            }))
            .with_resource(resource)
            .build())
    }

    /// OTLP/HTTP: the endpoint (with its `/v1/{signal}` suffix), headers and
    /// timeout come from the environment; the requests go through
    /// [`ExportClient`].
    fn http<B: WithHttpConfig + WithExportConfig>(
        builder: B,
        endpoint: &str,
        runtime: &tokio::runtime::Handle,
    ) -> anyhow::Result<B> {
        let client = ExportClient::start(runtime.clone(), is_https(endpoint))?;
        Ok(builder
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_http_client(client))
    }

    /// OTLP/gRPC (tonic): the endpoint as given (gRPC has no per-signal
    /// path), TLS for `https://` from the same variables as the HTTP path;
    /// headers (as gRPC metadata) and timeout come from the environment.
    /// Build the exporter inside the export runtime ([`export_runtime`]).
    fn grpc<B: WithTonicConfig + WithExportConfig>(
        builder: B,
        endpoint: &str,
    ) -> anyhow::Result<B> {
        let builder = builder
            .with_protocol(opentelemetry_otlp::Protocol::Grpc)
            .with_endpoint(endpoint);
        if !is_https(endpoint) {
            return Ok(builder);
        }
        // The same checks, and the same refusals, as the HTTP path's.
        tls_config(true)?;
        let read = |variable: &str| -> anyhow::Result<Option<Vec<u8>>> {
            env(variable)
                .map(|path| {
                    std::fs::read(&path)
                        .map_err(|error| anyhow::anyhow!("{variable}: reading {path}: {error}"))
                })
                .transpose()
        };
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = read("OTEL_EXPORTER_OTLP_CERTIFICATE")? {
            tls = tls.ca_certificate(Certificate::from_pem(ca));
        }
        if let (Some(cert), Some(key)) = (
            read("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")?,
            read("OTEL_EXPORTER_OTLP_CLIENT_KEY")?,
        ) {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        Ok(builder.with_tls_config(tls))
    }

    fn is_https(endpoint: &str) -> bool {
        endpoint
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    }

    /// The one-thread tokio runtime every OTLP export runs in (both
    /// signals, both transports), started on first use on a thread of its
    /// own (`otlp-export`): the SDK exports from threads of its own (the
    /// batch span processor's, the periodic metric reader's), which run no
    /// tokio, before, during and after the command's own runtime, and the
    /// request path's runtime never waits on a collector.
    fn export_runtime() -> anyhow::Result<tokio::runtime::Handle> {
        static RUNTIME: Mutex<Option<tokio::runtime::Handle>> = Mutex::new(None);
        let mut slot = match RUNTIME.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(handle) = slot.as_ref() {
            return Ok(handle.clone());
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
        *slot = Some(handle.clone());
        Ok(handle)
    }

    /// An exporter whose exports run in the export runtime's context
    /// ([`export_runtime`]): the gRPC client's timers and connection are
    /// that runtime's, whichever thread of the SDK exports. The runtime's
    /// own thread drives its I/O and timers; this one only polls the export.
    #[derive(Debug)]
    struct OnExportRuntime<E> {
        runtime: tokio::runtime::Handle,
        inner: E,
    }

    impl<E> OnExportRuntime<E> {
        /// Runs `export` to completion in the export runtime's context (on
        /// the calling thread, the SDK's export thread). Should it be called
        /// from within some runtime, it is awaited as it is instead.
        async fn run<F: std::future::Future<Output = OTelSdkResult>>(
            &self,
            export: F,
        ) -> OTelSdkResult {
            if tokio::runtime::Handle::try_current().is_ok() {
                export.await
            } else {
                self.runtime.block_on(export)
            }
        }
    }

    impl<E: SpanExporter> SpanExporter for OnExportRuntime<E> {
        fn export(
            &self,
            batch: Vec<SpanData>,
        ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
            self.run(self.inner.export(batch))
        }
        fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
            self.inner.shutdown_with_timeout(timeout)
        }
        fn shutdown(&self) -> OTelSdkResult {
            self.inner.shutdown()
        }
        fn force_flush(&self) -> OTelSdkResult {
            self.inner.force_flush()
        }
        fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
            self.inner.set_resource(resource);
        }
    }

    impl<E: PushMetricExporter> PushMetricExporter for OnExportRuntime<E> {
        fn export(
            &self,
            metrics: &opentelemetry_sdk::metrics::data::ResourceMetrics,
        ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
            self.run(self.inner.export(metrics))
        }
        fn force_flush(&self) -> OTelSdkResult {
            self.inner.force_flush()
        }
        fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
            self.inner.shutdown_with_timeout(timeout)
        }
        fn shutdown(&self) -> OTelSdkResult {
            self.inner.shutdown()
        }
        fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
            self.inner.temporality()
        }
    }

    /// A span exporter that passes every string through [`scrub`] first.
    #[derive(Debug)]
    pub(super) struct Scrubbing<E>(pub E);

    fn scrub_cow(text: &mut std::borrow::Cow<'static, str>) {
        if let Cow::Owned(clean) = scrub(text) {
            *text = Cow::Owned(clean);
        }
    }
    use std::borrow::Cow;

    fn scrub_value(value: &mut Value) {
        match value {
            Value::String(s) => {
                if let Cow::Owned(clean) = scrub(s.as_str()) {
                    *s = clean.into();
                }
            }
            Value::Array(opentelemetry::Array::String(list)) => {
                for s in list.iter_mut() {
                    if let Cow::Owned(clean) = scrub(s.as_str()) {
                        *s = clean.into();
                    }
                }
            }
            _ => {}
        }
    }

    fn scrub_attributes(attributes: &mut [KeyValue]) {
        for kv in attributes {
            scrub_value(&mut kv.value);
        }
    }

    /// Scrubs one span in place.
    pub(super) fn scrub_span(span: &mut SpanData) {
        scrub_cow(&mut span.name);
        scrub_attributes(&mut span.attributes);
        for event in span.events.events.iter_mut() {
            scrub_cow(&mut event.name);
            scrub_attributes(&mut event.attributes);
        }
        for link in span.links.links.iter_mut() {
            scrub_attributes(&mut link.attributes);
        }
        if let opentelemetry::trace::Status::Error { description } = &mut span.status {
            scrub_cow(description);
        }
    }

    impl<E: SpanExporter> SpanExporter for Scrubbing<E> {
        fn export(
            &self,
            mut batch: Vec<SpanData>,
        ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
            batch.iter_mut().for_each(scrub_span);
            self.0.export(batch)
        }
        fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
            self.0.shutdown_with_timeout(timeout)
        }
        fn shutdown(&self) -> OTelSdkResult {
            self.0.shutdown()
        }
        fn force_flush(&self) -> OTelSdkResult {
            self.0.force_flush()
        }
        fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
            self.0.set_resource(resource);
        }
    }

    type Connector =
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

    /// The OTLP/HTTP exporter's HTTP client: hyper (already the gateway's),
    /// its requests spawned on the export runtime ([`export_runtime`]).
    pub(super) struct ExportClient {
        runtime: tokio::runtime::Handle,
        client: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
        timeout: Duration,
    }

    impl std::fmt::Debug for ExportClient {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("ExportClient")
        }
    }

    impl ExportClient {
        fn start(runtime: tokio::runtime::Handle, https: bool) -> anyhow::Result<ExportClient> {
            let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
            http.enforce_http(false);
            http.set_connect_timeout(Some(Duration::from_secs(5)));
            let tls = tls_config(https)?;
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .wrap_connector(http);
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(30))
                    .build(connector);
            let timeout = env("OTEL_EXPORTER_OTLP_TIMEOUT")
                .and_then(|ms| ms.parse::<u64>().ok())
                .map_or(Duration::from_secs(10), Duration::from_millis);
            Ok(ExportClient {
                runtime,
                client,
                timeout,
            })
        }
    }

    /// TLS towards an `https://` collector: its CA from
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE`, and a client certificate if given.
    fn tls_config(https: bool) -> anyhow::Result<rustls::ClientConfig> {
        crate::tls::install_crypto_provider();
        let ca = env("OTEL_EXPORTER_OTLP_CERTIFICATE");
        let cert = env("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE");
        let key = env("OTEL_EXPORTER_OTLP_CLIENT_KEY");
        match (ca, cert, key) {
            (Some(ca), Some(cert), Some(key)) => {
                crate::tls::client_config(ca.as_ref(), cert.as_ref(), key.as_ref())
            }
            (Some(ca), _, _) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in crate::tls::read_certs(ca.as_ref())? {
                    roots.add(cert)?;
                }
                Ok(rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth())
            }
            (None, _, _) if https => anyhow::bail!(
                "an https:// OTLP endpoint needs OTEL_EXPORTER_OTLP_CERTIFICATE (its CA's PEM file)"
            ),
            (None, _, _) => Ok(rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()),
        }
    }

    #[async_trait::async_trait]
    impl HttpClient for ExportClient {
        async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
            let client = self.client.clone();
            let timeout = self.timeout;
            let (parts, body) = request.into_parts();
            let request = Request::from_parts(parts, Full::new(body));
            let task = self.runtime.spawn(async move {
                let exchange = async {
                    let response = client.request(request).await?;
                    let (parts, body) = response.into_parts();
                    let body = Limited::new(body, ANSWER_BYTES_MAX)
                        .collect()
                        .await?
                        .to_bytes();
                    Ok::<_, HttpError>(Response::from_parts(parts, body))
                };
                match tokio::time::timeout(timeout, exchange).await {
                    Ok(result) => result,
                    Err(_) => Err(HttpError::from("the OTLP endpoint did not answer in time")),
                }
            });
            task.await?
        }
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn id_numbers_are_masked_and_codes_are_kept() {
        assert_eq!(
            scrub("certno 11010519491231002X here"),
            "certno ****************** here"
        );
        assert_eq!(scrub("x110105194912310021y"), "x******************y");
        // Shorter numbers stay: region codes, institution codes, infno, amounts.
        let kept = "infno 2207 region 110000 H11010500123 12345678901234567 1200.00";
        assert!(matches!(scrub(kept), Cow::Borrowed(_)));
        // Longer digit runs are masked whole.
        assert_eq!(scrub("12345678901234567890"), "********************");
        // Non-ASCII text around it survives.
        assert_eq!(
            scrub("北京 11010519491231002x 天津"),
            "北京 ****************** 天津"
        );
    }

    #[test]
    fn the_log_writer_scrubs_what_it_writes() {
        let mut out = Vec::new();
        {
            let mut writer = ScrubbedWriter(&mut out);
            writer
                .write_all(b"{\"detail\":\"110105194912310021\"}\n")
                .unwrap();
        }
        assert_eq!(out, b"{\"detail\":\"******************\"}\n");
    }

    #[test]
    fn exported_spans_are_scrubbed() {
        use opentelemetry::trace::{SpanContext, SpanKind, Status};
        use opentelemetry::KeyValue;
        let mut span = opentelemetry_sdk::trace::SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: opentelemetry::trace::SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "lookup 11010519491231002X".into(),
            start_time: std::time::SystemTime::now(),
            end_time: std::time::SystemTime::now(),
            attributes: vec![
                KeyValue::new("detail", "id 11010519491231002X"),
                KeyValue::new("jjj.infno", "1101"),
            ],
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::error("110105194912310021"),
            instrumentation_scope: Default::default(),
        };
        otlp::scrub_span(&mut span);
        assert_eq!(span.name, "lookup ******************");
        assert_eq!(span.attributes[0].value.as_str(), "id ******************");
        assert_eq!(span.attributes[1].value.as_str(), "1101");
        assert_eq!(span.status, Status::error("******************"));
    }

    #[test]
    fn a_traceparent_is_read_only_when_valid() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(remote_parent(Some(good)).is_some());
        assert!(remote_parent(Some(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ))
        .is_none());
        assert!(remote_parent(Some("garbage")).is_none());
        assert!(remote_parent(None).is_none());
    }
}
