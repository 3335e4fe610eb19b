//! TLS on both sides, with rustls: the server's mutual TLS (client
//! certificates verified against the configured CA, TLS 1.3 and 1.2, reloaded
//! on SIGHUP without dropping connections) and the upstream client's.

use anyhow::Context;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::{Arc, RwLock};

/// Installs ring as the process's crypto provider. Idempotent.
pub fn install_crypto_provider() {
    // A second installation fails harmlessly: the first one stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reads every certificate of a PEM file.
pub fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading certificates from {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificates in {}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no certificate", path.display());
    }
    Ok(certs)
}

/// Reads the private key of a PEM file.
pub fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .with_context(|| format!("reading the private key in {}", path.display()))
}

fn roots(ca: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots
            .add(cert)
            .with_context(|| format!("adding the CA in {}", ca.display()))?;
    }
    Ok(roots)
}

/// The server's TLS configuration: mutual TLS against `ca`, HTTP/2 and HTTP/1.1.
pub fn server_config(ca: &Path, cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    install_crypto_provider();
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots(ca)?))
        .build()
        .context("building the client-certificate verifier")?;
    let mut config = ServerConfig::builder_with_protocol_versions(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ])
    .with_client_cert_verifier(verifier)
    .with_single_cert(read_certs(cert)?, read_key(key)?)
    .with_context(|| format!("using the certificate {} with its key", cert.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration presenting `cert` and trusting only `ca`.
pub fn client_config(ca: &Path, cert: &Path, key: &Path) -> anyhow::Result<ClientConfig> {
    install_crypto_provider();
    ClientConfig::builder_with_protocol_versions(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ])
    .with_root_certificates(roots(ca)?)
    .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
    .with_context(|| format!("using the client certificate {}", cert.display()))
}

/// The server's TLS configuration, replaceable while the server runs: each new
/// connection takes the current one, connections already open keep theirs.
pub struct Reloadable {
    files: [std::path::PathBuf; 3],
    current: RwLock<Arc<ServerConfig>>,
}

impl Reloadable {
    /// Loads the configuration from the CA, certificate and key files.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> anyhow::Result<Reloadable> {
        let config = server_config(ca, cert, key)?;
        Ok(Reloadable {
            files: [ca.to_owned(), cert.to_owned(), key.to_owned()],
            current: RwLock::new(config),
        })
    }

    /// The configuration for a new connection.
    pub fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the files again; on error the old configuration stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let [ca, cert, key] = &self.files;
        let fresh = server_config(ca, cert, key)?;
        match self.current.write() {
            Ok(mut guard) => *guard = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }
}
