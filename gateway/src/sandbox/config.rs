//! The sandbox's configuration: TOML parsed once into typed values.

use contracts::Admdvs;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Faults a platform injects, set in the configuration and changed at run
/// time by POSTing the same keys as TOML to `/admin/faults`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Added latency before every answer.
    pub latency_ms: u64,
    /// Percent of requests answered with a platform error (infcode non-zero).
    pub error_percent: u8,
    /// Percent of settlements committed and then answered by dropping the connection.
    pub drop_after_commit_percent: u8,
    /// Percent of requests answered with bytes that are no message.
    pub garbage_percent: u8,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    /// The folder of the platforms' records; `sandbox-data` when absent.
    #[serde(default)]
    data: Option<PathBuf>,
    platforms: Vec<PlatformFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlatformFile {
    admdvs: String,
    name: String,
    dialect: String,
    listen: String,
    #[serde(default)]
    faults: Faults,
}

/// One platform stand-in.
#[derive(Debug, Clone)]
pub struct Platform {
    /// The region it insures.
    pub admdvs: Admdvs,
    /// Its name.
    pub name: String,
    /// The dialect it speaks.
    pub dialect: &'static dyn adapters::Dialect,
    /// Where it listens.
    pub listen: SocketAddr,
    /// Faults at start.
    pub faults: Faults,
}

/// The sandbox's configuration.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The CA that signs the gateway's client certificate.
    pub ca: PathBuf,
    /// The platforms' server certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// The folder holding each platform's record, `<admdvs>.sqlite`
    /// (`data` in the file, relative to the file's folder; `sandbox-data` when absent).
    pub data: PathBuf,
    /// The platforms.
    pub platforms: Vec<Platform>,
}

impl SandboxConfig {
    /// Reads and validates a sandbox configuration; relative paths are from its folder.
    pub fn load(path: &Path) -> anyhow::Result<SandboxConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let file: File =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        };
        let mut platforms = Vec::new();
        for (i, p) in file.platforms.iter().enumerate() {
            platforms.push(Platform {
                admdvs: Admdvs::parse(&p.admdvs).map_err(|_| {
                    anyhow::anyhow!("platforms[{i}].admdvs: {:?} is not a region code", p.admdvs)
                })?,
                name: p.name.clone(),
                dialect: adapters::dialect(&p.dialect)
                    .map_err(|r| anyhow::anyhow!("platforms[{i}].dialect: {}", r.detail))?,
                listen: p.listen.parse().map_err(|_| {
                    anyhow::anyhow!("platforms[{i}].listen: {:?} is not an address", p.listen)
                })?,
                faults: p.faults.clone(),
            });
        }
        for (i, p) in platforms.iter().enumerate() {
            if platforms[..i].iter().any(|q| q.admdvs == p.admdvs) {
                anyhow::bail!(
                    "platforms[{i}].admdvs: {} appears twice (each platform keeps its own record, <data>/{}.sqlite)",
                    p.admdvs,
                    p.admdvs
                );
            }
        }
        Ok(SandboxConfig {
            ca: resolve(&file.ca),
            cert: resolve(&file.cert),
            key: resolve(&file.key),
            data: resolve(
                &file
                    .data
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("sandbox-data")),
            ),
            platforms,
        })
    }
}
