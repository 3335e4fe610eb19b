//! A mutual-TLS HTTP client of the gateway, as a hospital's HIS would be:
//! used by the demo's traffic, the load generator and the tests.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as Pool;
use hyper_util::rt::TokioExecutor;
use std::path::Path;

/// One caller's pooled client.
#[derive(Clone)]
pub struct Client {
    pool: Pool<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// A reply as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After`, if any.
    pub retry_after: Option<String>,
    /// The body.
    pub body: Bytes,
}

impl Client {
    /// A client presenting `DIR/<code>.pem` and trusting `DIR/ca.pem`.
    pub fn for_code(certs: &Path, code: &str) -> anyhow::Result<Client> {
        let tls = crate::tls::client_config(
            &certs.join("ca.pem"),
            &certs.join(format!("{code}.pem")),
            &certs.join(format!("{code}.key")),
        )?;
        Ok(Client::with_tls(tls))
    }

    /// A client with a ready TLS configuration.
    pub fn with_tls(tls: rustls::ClientConfig) -> Client {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        Client {
            pool: Pool::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Sends a request.
    pub async fn send(
        &self,
        method: http::Method,
        url: &str,
        media_type: &str,
        body: Bytes,
    ) -> anyhow::Result<Received> {
        let request = http::Request::builder()
            .method(method)
            .uri(url)
            .header(http::header::CONTENT_TYPE, media_type)
            .body(Full::new(body))?;
        let response = self.pool.request(request).await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Received {
            status,
            retry_after,
            body,
        })
    }

    /// POSTs a message.
    pub async fn post(&self, url: &str, media_type: &str, body: Bytes) -> anyhow::Result<Received> {
        self.send(http::Method::POST, url, media_type, body).await
    }

    /// GETs a path.
    pub async fn get(&self, url: &str) -> anyhow::Result<Received> {
        self.send(http::Method::GET, url, "text/plain", Bytes::new())
            .await
    }
}
