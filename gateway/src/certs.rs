//! `jjj-gateway certs init`: a development PKI. A CA (ECDSA P-256), a server
//! certificate for localhost, 127.0.0.1 and ::1, and a client certificate for
//! the gateway itself and for every configured institution, platform and
//! officer, named by its code. See `certs/README.md` for production use.

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// The code of the gateway's own client certificate towards the platforms.
pub const GATEWAY_CLIENT: &str = "gateway";

/// What `certs init` was asked to do.
#[derive(Debug, Clone, clap::Args)]
pub struct CertsArgs {
    /// The folder to write `ca.pem`, `ca.key`, `server.pem|.key` and `<code>.pem|.key` into.
    #[arg(long)]
    pub out: PathBuf,
    /// A gateway configuration whose institutions get client certificates.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// More client certificates to make, by code (repeatable).
    #[arg(long = "client")]
    pub clients: Vec<String>,
}

fn write(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    let _ = secret;
    Ok(())
}

fn leaf(
    names: Vec<String>,
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> anyhow::Result<(CertificateParams, KeyPair)> {
    let mut params = CertificateParams::new(names).context("certificate names")?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "jjj-gateway development PKI");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("generating a key")?;
    Ok((params, key))
}

/// The CA in `out`: the one already there (`ca.pem` and `ca.key`), so that
/// certificates made later chain to it, or a new one.
fn ca(out: &Path) -> anyhow::Result<Issuer<'static, KeyPair>> {
    let (cert_path, key_path) = (out.join("ca.pem"), out.join("ca.key"));
    if cert_path.exists() && key_path.exists() {
        let key = KeyPair::from_pem(
            &std::fs::read_to_string(&key_path)
                .with_context(|| format!("reading {}", key_path.display()))?,
        )
        .with_context(|| format!("parsing {}", key_path.display()))?;
        let pem = std::fs::read_to_string(&cert_path)
            .with_context(|| format!("reading {}", cert_path.display()))?;
        return Issuer::from_ca_cert_pem(&pem, key)
            .with_context(|| format!("using the CA in {}", cert_path.display()));
    }
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "jjj-gateway development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key =
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("generating the CA key")?;
    let ca_cert = ca_params.self_signed(&ca_key).context("signing the CA")?;
    write(&cert_path, &ca_cert.pem(), false)?;
    write(&key_path, &ca_key.serialize_pem(), true)?;
    Ok(Issuer::new(ca_params, ca_key))
}

/// Makes the PKI in `out`: the CA (kept if there is one), a new server
/// certificate, and a client certificate for `gateway` and each code in `clients`.
pub fn init(out: &Path, clients: &[String]) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let issuer = ca(out)?;
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let (params, key) = leaf(names, "localhost", ExtendedKeyUsagePurpose::ServerAuth)?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("signing the server certificate")?;
    write(&out.join("server.pem"), &cert.pem(), false)?;
    write(&out.join("server.key"), &key.serialize_pem(), true)?;

    let mut codes: Vec<&str> = vec![GATEWAY_CLIENT];
    codes.extend(clients.iter().map(String::as_str));
    codes.sort_unstable();
    codes.dedup();
    for code in codes {
        if code.is_empty()
            || !code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            anyhow::bail!("{code:?} cannot name a certificate file");
        }
        let (params, key) = leaf(Vec::new(), code, ExtendedKeyUsagePurpose::ClientAuth)?;
        let cert = params
            .signed_by(&key, &issuer)
            .with_context(|| format!("signing the certificate of {code}"))?;
        write(&out.join(format!("{code}.pem")), &cert.pem(), false)?;
        write(&out.join(format!("{code}.key")), &key.serialize_pem(), true)?;
    }
    Ok(())
}

/// Runs `certs init`.
pub fn run(args: &CertsArgs) -> anyhow::Result<u8> {
    let mut clients = args.clients.clone();
    if let Some(path) = &args.config {
        let config = crate::config::Config::load(path)?;
        clients.extend(config.institutions.iter().map(|i| i.code.clone()));
    }
    init(&args.out, &clients)?;
    println!(
        "wrote the development PKI to {} ({} client certificates)",
        args.out.display(),
        clients.len() + 1
    );
    Ok(0)
}
