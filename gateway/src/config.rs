//! The gateway's configuration: TOML parsed once, at start-up, into typed
//! values, and validated with errors that name the key. Every key is
//! documented in `deploy/gateway.example.toml`.

use contracts::transaction::Pace;
use contracts::Admdvs;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML, or a key of the wrong type, or an unknown key.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the key.
        message: String,
    },
    /// A value that parses but cannot be used.
    #[error("{key}: {message}")]
    Invalid {
        /// The key, e.g. `regions[1].admdvs`.
        key: String,
        /// Why.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    server: ServerFile,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    ledger: Option<LedgerFile>,
    #[serde(default)]
    regions: Vec<RegionFile>,
    #[serde(default)]
    institutions: Vec<InstitutionFile>,
    #[serde(default)]
    supervision: Option<SupervisionFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SupervisionFile {
    hmac_key: String,
    #[serde(default)]
    rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: String,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    max: Option<u32>,
    #[serde(default)]
    max_quantity: Option<String>,
    #[serde(default)]
    drugs: Option<Vec<String>>,
    #[serde(default)]
    factor: Option<u32>,
    #[serde(default)]
    min_count: Option<u32>,
    #[serde(default)]
    min_baseline_days: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    listen: String,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    #[serde(default = "defaults::body_bytes_max")]
    body_bytes_max: usize,
    #[serde(default = "defaults::header_read_timeout_ms")]
    header_read_timeout_ms: u64,
    #[serde(default = "defaults::body_read_timeout_ms")]
    body_read_timeout_ms: u64,
    #[serde(default = "defaults::connections_max")]
    connections_max: usize,
    #[serde(default = "defaults::concurrency_max")]
    concurrency_max: usize,
    #[serde(default = "defaults::shutdown_grace_ms")]
    shutdown_grace_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    #[serde(default = "defaults::institution_rate")]
    institution_per_second: u32,
    #[serde(default = "defaults::institution_burst")]
    institution_burst: u32,
    #[serde(default = "defaults::region_rate")]
    region_per_second: u32,
    #[serde(default = "defaults::region_burst")]
    region_burst: u32,
}

impl Default for LimitsFile {
    fn default() -> Self {
        LimitsFile {
            institution_per_second: defaults::institution_rate(),
            institution_burst: defaults::institution_burst(),
            region_per_second: defaults::region_rate(),
            region_burst: defaults::region_burst(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerFile {
    url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionFile {
    admdvs: String,
    name: String,
    dialect: String,
    upstreams: Vec<String>,
    ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    #[serde(default)]
    timeouts_ms: TimeoutsFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeoutsFile {
    #[serde(default = "defaults::short_ms")]
    short: u64,
    #[serde(default = "defaults::medium_ms")]
    medium: u64,
    #[serde(default = "defaults::long_ms")]
    long: u64,
}

impl Default for TimeoutsFile {
    fn default() -> Self {
        TimeoutsFile {
            short: defaults::short_ms(),
            medium: defaults::medium_ms(),
            long: defaults::long_ms(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstitutionFile {
    code: String,
    name: String,
    role: Role,
    admdvs: String,
    #[serde(default)]
    level: Option<u8>,
    #[serde(default)]
    owner: Option<Owner>,
    #[serde(default)]
    dialect: Option<String>,
}

mod defaults {
    pub fn body_bytes_max() -> usize {
        4 * 1024 * 1024
    }
    pub fn header_read_timeout_ms() -> u64 {
        5_000
    }
    pub fn body_read_timeout_ms() -> u64 {
        10_000
    }
    pub fn connections_max() -> usize {
        10_000
    }
    pub fn concurrency_max() -> usize {
        2_048
    }
    pub fn shutdown_grace_ms() -> u64 {
        15_000
    }
    pub fn institution_rate() -> u32 {
        50
    }
    pub fn institution_burst() -> u32 {
        100
    }
    pub fn region_rate() -> u32 {
        5_000
    }
    pub fn region_burst() -> u32 {
        10_000
    }
    pub fn short_ms() -> u64 {
        3_000
    }
    pub fn medium_ms() -> u64 {
        8_000
    }
    pub fn long_ms() -> u64 {
        20_000
    }
}

/// What a caller is allowed to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A designated hospital or pharmacy: acts only for itself, in its own region.
    Hospital,
    /// A regional platform: acts for the institutions of its region, uploads statements.
    Platform,
    /// A clearing officer: the clearing API and page only.
    Officer,
}

/// Who runs a hospital, where the policy distinguishes (Hebei's 三级 hospitals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Owner {
    /// Run by the province (省属).
    Provincial,
    /// Run by the city (市属).
    City,
}

/// The server's own settings.
#[derive(Debug, Clone)]
pub struct Server {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The CA that signs callers' client certificates.
    pub ca: PathBuf,
    /// The server certificate chain (PEM).
    pub cert: PathBuf,
    /// The server key (PEM).
    pub key: PathBuf,
    /// The largest request body accepted (413 beyond).
    pub body_bytes_max: usize,
    /// How long a client may take to send its headers.
    pub header_read_timeout: Duration,
    /// How long a client may take to send its body.
    pub body_read_timeout: Duration,
    /// Open connections at most; more wait in the kernel's backlog.
    pub connections_max: usize,
    /// Requests in progress at most; more are shed with 503.
    pub concurrency_max: usize,
    /// How long in-flight requests may run after SIGTERM.
    pub shutdown_grace: Duration,
}

/// Rate limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests a second per institution.
    pub institution_per_second: u32,
    /// Burst per institution.
    pub institution_burst: u32,
    /// Requests a second towards one insured region's platform.
    pub region_per_second: u32,
    /// Burst per insured region.
    pub region_burst: u32,
}

/// Timeouts of upstream calls by the transaction's pace.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Lookups, registrations.
    pub short: Duration,
    /// Uploads, outpatient and pharmacy settlements.
    pub medium: Duration,
    /// Inpatient settlements and clearing.
    pub long: Duration,
}

impl Timeouts {
    /// The timeout for a pace.
    pub fn for_pace(&self, pace: Pace) -> Duration {
        match pace {
            Pace::Short => self.short,
            Pace::Medium => self.medium,
            Pace::Long => self.long,
        }
    }
}

/// One insured region's platform.
#[derive(Debug, Clone)]
pub struct Region {
    /// The region's code; requests whose insured region lies within it go here.
    pub admdvs: Admdvs,
    /// Its name.
    pub name: String,
    /// The dialect its platform speaks.
    pub dialect: &'static dyn adapters::Dialect,
    /// Its platform's URLs, tried in order on connect errors.
    pub upstreams: Vec<http::Uri>,
    /// The CA its platform's server certificate is signed by.
    pub ca: PathBuf,
    /// The gateway's client certificate towards it.
    pub client_cert: PathBuf,
    /// The key of that certificate.
    pub client_key: PathBuf,
    /// Timeouts.
    pub timeouts: Timeouts,
}

/// One configured caller.
#[derive(Debug, Clone)]
pub struct Institution {
    /// Its code: the certificate's CN or a DNS SAN, and the `fixmedins_code` it sends.
    pub code: String,
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its region.
    pub admdvs: Admdvs,
    /// Hospital level 1–3, where known.
    pub level: Option<u8>,
    /// Owner, where the policy distinguishes.
    pub owner: Option<Owner>,
    /// The dialect it speaks on `/fsi/...` (national by default).
    pub dialect: &'static dyn adapters::Dialect,
}

/// The supervision rules (see `contracts/supervision.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleName {
    /// The same person in two inpatient stays at once, at different institutions.
    ConcurrentInpatient,
    /// The same bill (or invoice number) settled twice.
    DuplicateBill,
    /// More outpatient settlements for one person in a window than allowed.
    Frequency,
    /// More of one drug for one person in a window than allowed.
    PharmacyQuantity,
    /// An institution's day far above its own trailing baseline.
    InstitutionSurge,
}

impl RuleName {
    /// Every rule.
    pub const ALL: [RuleName; 5] = [
        RuleName::ConcurrentInpatient,
        RuleName::DuplicateBill,
        RuleName::Frequency,
        RuleName::PharmacyQuantity,
        RuleName::InstitutionSurge,
    ];

    /// The name as configured and as signals carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleName::ConcurrentInpatient => "concurrent_inpatient",
            RuleName::DuplicateBill => "duplicate_bill",
            RuleName::Frequency => "frequency",
            RuleName::PharmacyQuantity => "pharmacy_quantity",
            RuleName::InstitutionSurge => "institution_surge",
        }
    }

    /// The rule named `text`.
    pub fn parse(text: &str) -> Option<RuleName> {
        RuleName::ALL.into_iter().find(|r| r.as_str() == text)
    }

    fn default_window(self) -> Duration {
        let day = Duration::from_secs(86_400);
        match self {
            RuleName::ConcurrentInpatient => day * 90,
            RuleName::DuplicateBill => day * 7,
            RuleName::Frequency => day,
            RuleName::PharmacyQuantity => day * 30,
            RuleName::InstitutionSurge => day * 30,
        }
    }

    fn default_severity(self) -> Severity {
        match self {
            RuleName::ConcurrentInpatient | RuleName::DuplicateBill => Severity::High,
            RuleName::Frequency | RuleName::PharmacyQuantity => Severity::Medium,
            RuleName::InstitutionSurge => Severity::Low,
        }
    }
}

/// What a rule does when it finds something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Record the signal; the settlement goes through.
    Flag,
    /// Refuse the admission or settlement before forwarding it (and record the signal).
    Refuse,
}

/// How serious a signal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Worth a check.
    Medium,
    /// Worth a joint check with the other region.
    High,
}

impl Severity {
    /// `low`, `medium`, `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// One configured rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Which rule.
    pub name: RuleName,
    /// Flag or refuse.
    pub mode: Mode,
    /// How far back it looks.
    pub window: Duration,
    /// The severity of its signals.
    pub severity: Severity,
    /// `frequency`: the most outpatient settlements allowed in the window.
    pub max: u32,
    /// `pharmacy_quantity`: the most of one drug in the window.
    pub max_quantity: contracts::Quantity,
    /// `pharmacy_quantity`: only these drug codes (all when empty).
    pub drugs: Vec<String>,
    /// `institution_surge`: how many times the baseline a day must reach.
    pub factor: u32,
    /// `institution_surge`: the fewest settlements in a day that can be a surge.
    pub min_count: u32,
    /// `institution_surge`: the fewest days of history a baseline needs.
    pub min_baseline_days: u32,
}

/// Cross-region supervision.
#[derive(Clone)]
pub struct Supervision {
    /// The HMAC-SHA256 key persons are hashed with (at least 32 bytes).
    pub hmac_key: Vec<u8>,
    /// The rules, in the order configured.
    pub rules: Vec<Rule>,
}

impl std::fmt::Debug for Supervision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervision")
            .field("hmac_key", &"(secret)")
            .field("rules", &self.rules)
            .finish()
    }
}

/// The shortest HMAC key accepted, in bytes.
pub const HMAC_KEY_BYTES_MIN: usize = 32;

/// A duration like `30d`, `24h`, `90m` or `3600s`.
fn window(key: &str, text: &str) -> Result<Duration, ConfigError> {
    let bad = || {
        invalid(
            key,
            format!("{text:?} is not a duration like 30d, 24h, 90m or 3600s"),
        )
    };
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "d" => number.checked_mul(86_400),
        "h" => number.checked_mul(3_600),
        "m" => number.checked_mul(60),
        "s" => Some(number),
        _ => None,
    }
    .ok_or_else(bad)?;
    if seconds == 0 || seconds > 400 * 86_400 {
        return Err(invalid(key, "must be above zero and at most 400d"));
    }
    Ok(Duration::from_secs(seconds))
}

fn hex_key(key: &str, text: &str) -> Result<Vec<u8>, ConfigError> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(key, "must be hexadecimal"));
    }
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect();
    if bytes.len() < HMAC_KEY_BYTES_MIN {
        return Err(invalid(
            key,
            format!(
                "is {} bytes: at least {HMAC_KEY_BYTES_MIN} ({} hex digits)",
                bytes.len(),
                HMAC_KEY_BYTES_MIN * 2
            ),
        ));
    }
    if bytes.iter().all(|&b| b == bytes[0]) {
        return Err(invalid(key, "is not a key: every byte is the same"));
    }
    Ok(bytes)
}

fn supervision(file: &SupervisionFile) -> Result<Supervision, ConfigError> {
    let hmac_key = hex_key("supervision.hmac_key", &file.hmac_key)?;
    let mut rules: Vec<Rule> = Vec::with_capacity(file.rules.len());
    for (i, r) in file.rules.iter().enumerate() {
        let key = |k: &str| format!("supervision.rules[{i}].{k}");
        let name = RuleName::parse(&r.name).ok_or_else(|| {
            let names: Vec<&str> = RuleName::ALL.iter().map(|r| r.as_str()).collect();
            invalid(
                key("name"),
                format!("{:?} is not one of {}", r.name, names.join(", ")),
            )
        })?;
        let mode = match r.mode.as_deref() {
            None | Some("flag") => Mode::Flag,
            Some("refuse") if name == RuleName::InstitutionSurge => {
                return Err(invalid(
                    key("mode"),
                    "institution_surge only flags: no single request decides it",
                ))
            }
            Some("refuse") => Mode::Refuse,
            Some(other) => return Err(invalid(key("mode"), format!("{other:?}: flag or refuse"))),
        };
        let severity = match r.severity.as_deref() {
            None => name.default_severity(),
            Some("low") => Severity::Low,
            Some("medium") => Severity::Medium,
            Some("high") => Severity::High,
            Some(other) => {
                return Err(invalid(
                    key("severity"),
                    format!("{other:?}: low, medium or high"),
                ))
            }
        };
        let window = match &r.window {
            Some(text) => window(&key("window"), text)?,
            None => name.default_window(),
        };
        // Thresholds belong to one rule each: another rule's is a mistake.
        let only = |field: &str, set: bool, owner: RuleName| {
            if set && name != owner {
                Err(invalid(
                    key(field),
                    format!("is a setting of {}", owner.as_str()),
                ))
            } else {
                Ok(())
            }
        };
        only("max", r.max.is_some(), RuleName::Frequency)?;
        only(
            "max_quantity",
            r.max_quantity.is_some(),
            RuleName::PharmacyQuantity,
        )?;
        only("drugs", r.drugs.is_some(), RuleName::PharmacyQuantity)?;
        only("factor", r.factor.is_some(), RuleName::InstitutionSurge)?;
        only(
            "min_count",
            r.min_count.is_some(),
            RuleName::InstitutionSurge,
        )?;
        only(
            "min_baseline_days",
            r.min_baseline_days.is_some(),
            RuleName::InstitutionSurge,
        )?;
        let max = match (name, r.max) {
            (RuleName::Frequency, None) => return Err(invalid(key("max"), "frequency needs max")),
            (_, Some(0)) => return Err(invalid(key("max"), "must be above zero")),
            (_, max) => max.unwrap_or(0),
        };
        let max_quantity = match (name, &r.max_quantity) {
            (RuleName::PharmacyQuantity, None) => {
                return Err(invalid(
                    key("max_quantity"),
                    "pharmacy_quantity needs max_quantity",
                ))
            }
            (_, Some(text)) => contracts::Quantity::parse(text)
                .ok()
                .filter(|q| q.scaled() > 0)
                .ok_or_else(|| {
                    invalid(
                        key("max_quantity"),
                        format!("{text:?} is not a positive quantity"),
                    )
                })?,
            (_, None) => contracts::Quantity::default(),
        };
        let drugs = r.drugs.clone().unwrap_or_default();
        if let Some(bad) = drugs.iter().position(|d| d.is_empty() || d.len() > 64) {
            return Err(invalid(
                format!("supervision.rules[{i}].drugs[{bad}]"),
                "1 to 64 characters",
            ));
        }
        let factor = r.factor.unwrap_or(3);
        if factor < 2 {
            return Err(invalid(key("factor"), "at least 2"));
        }
        let min_baseline_days = r.min_baseline_days.unwrap_or(7);
        if name == RuleName::InstitutionSurge {
            if !window.as_secs().is_multiple_of(86_400) {
                return Err(invalid(
                    key("window"),
                    "institution_surge counts whole days: use NNd",
                ));
            }
            if u64::from(min_baseline_days) > window.as_secs() / 86_400 {
                return Err(invalid(key("min_baseline_days"), "longer than the window"));
            }
        }
        if rules
            .iter()
            .any(|other| other.name == name && other.window == window)
        {
            return Err(invalid(
                key("window"),
                format!("{} is configured twice with this window", name.as_str()),
            ));
        }
        rules.push(Rule {
            name,
            mode,
            window,
            severity,
            max,
            max_quantity,
            drugs,
            factor,
            min_count: r.min_count.unwrap_or(20),
            min_baseline_days,
        });
    }
    Ok(Supervision { hmac_key, rules })
}

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server.
    pub server: Server,
    /// Rate limits.
    pub limits: Limits,
    /// The ledger's URL (`sqlite://…` or `postgres://…`), if any.
    pub ledger_url: Option<String>,
    /// The regions, by insured admdvs.
    pub regions: Vec<Region>,
    /// The callers.
    pub institutions: Vec<Institution>,
    /// Cross-region supervision, when configured (`[supervision]`).
    pub supervision: Option<Supervision>,
}

fn admdvs(key: &str, text: &str) -> Result<Admdvs, ConfigError> {
    Admdvs::parse(text).map_err(|_| invalid(key, format!("{text:?} is not a 6-digit region code")))
}

fn dialect(key: &str, name: &str) -> Result<&'static dyn adapters::Dialect, ConfigError> {
    adapters::dialect(name).map_err(|r| invalid(key, r.detail))
}

fn positive(key: &str, value: u64) -> Result<u64, ConfigError> {
    if value == 0 {
        return Err(invalid(key, "must be above zero"));
    }
    Ok(value)
}

impl Config {
    /// The longest upstream timeout of any pace in any region: the longest a
    /// live gateway waits for one platform call (zero without regions).
    pub fn longest_upstream_timeout(&self) -> Duration {
        self.regions
            .iter()
            .map(|r| r.timeouts.short.max(r.timeouts.medium).max(r.timeouts.long))
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Reads and validates a configuration file. Relative paths in it are
    /// relative to the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base).map_err(|e| match e {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates configuration text; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        let resolve = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        };
        let s = &file.server;
        let server = Server {
            listen: s.listen.parse().map_err(|_| {
                invalid(
                    "server.listen",
                    format!("{:?} is not an address like 127.0.0.1:8443", s.listen),
                )
            })?,
            ca: resolve(&s.ca),
            cert: resolve(&s.cert),
            key: resolve(&s.key),
            body_bytes_max: positive("server.body_bytes_max", s.body_bytes_max as u64)? as usize,
            header_read_timeout: Duration::from_millis(positive(
                "server.header_read_timeout_ms",
                s.header_read_timeout_ms,
            )?),
            body_read_timeout: Duration::from_millis(positive(
                "server.body_read_timeout_ms",
                s.body_read_timeout_ms,
            )?),
            connections_max: positive("server.connections_max", s.connections_max as u64)? as usize,
            concurrency_max: positive("server.concurrency_max", s.concurrency_max as u64)? as usize,
            shutdown_grace: Duration::from_millis(s.shutdown_grace_ms),
        };
        let l = &file.limits;
        let limits = Limits {
            institution_per_second: positive(
                "limits.institution_per_second",
                l.institution_per_second.into(),
            )? as u32,
            institution_burst: positive("limits.institution_burst", l.institution_burst.into())?
                as u32,
            region_per_second: positive("limits.region_per_second", l.region_per_second.into())?
                as u32,
            region_burst: positive("limits.region_burst", l.region_burst.into())? as u32,
        };
        let mut regions = Vec::with_capacity(file.regions.len());
        for (i, r) in file.regions.iter().enumerate() {
            let key = |k: &str| format!("regions[{i}].{k}");
            let code = admdvs(&key("admdvs"), &r.admdvs)?;
            if regions.iter().any(|other: &Region| other.admdvs == code) {
                return Err(invalid(
                    key("admdvs"),
                    format!("{code} is configured twice"),
                ));
            }
            if r.upstreams.is_empty() {
                return Err(invalid(key("upstreams"), "at least one URL"));
            }
            let mut upstreams = Vec::with_capacity(r.upstreams.len());
            for (j, url) in r.upstreams.iter().enumerate() {
                let uri: http::Uri = url.parse().map_err(|_| {
                    invalid(
                        format!("regions[{i}].upstreams[{j}]"),
                        format!("{url:?} is not a URL"),
                    )
                })?;
                if uri.scheme_str() != Some("https") || uri.host().is_none() {
                    return Err(invalid(
                        format!("regions[{i}].upstreams[{j}]"),
                        "must be an https:// URL (the platforms speak mutual TLS)",
                    ));
                }
                upstreams.push(uri);
            }
            let t = &r.timeouts_ms;
            regions.push(Region {
                admdvs: code,
                name: r.name.clone(),
                dialect: dialect(&key("dialect"), &r.dialect)?,
                upstreams,
                ca: resolve(&r.ca),
                client_cert: resolve(&r.client_cert),
                client_key: resolve(&r.client_key),
                timeouts: Timeouts {
                    short: Duration::from_millis(positive(&key("timeouts_ms.short"), t.short)?),
                    medium: Duration::from_millis(positive(&key("timeouts_ms.medium"), t.medium)?),
                    long: Duration::from_millis(positive(&key("timeouts_ms.long"), t.long)?),
                },
            });
        }
        let mut institutions: Vec<Institution> = Vec::with_capacity(file.institutions.len());
        for (i, inst) in file.institutions.iter().enumerate() {
            let key = |k: &str| format!("institutions[{i}].{k}");
            if inst.code.is_empty()
                || inst.code.len() > 64
                || !inst
                    .code
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid(key("code"), "1 to 64 letters, digits, - or _"));
            }
            if institutions.iter().any(|other| other.code == inst.code) {
                return Err(invalid(
                    key("code"),
                    format!("{} is configured twice", inst.code),
                ));
            }
            if let Some(level) = inst.level {
                if !(1..=3).contains(&level) {
                    return Err(invalid(key("level"), "1, 2 or 3"));
                }
            }
            institutions.push(Institution {
                code: inst.code.clone(),
                name: inst.name.clone(),
                role: inst.role,
                admdvs: admdvs(&key("admdvs"), &inst.admdvs)?,
                level: inst.level,
                owner: inst.owner,
                dialect: dialect(
                    &key("dialect"),
                    inst.dialect.as_deref().unwrap_or("national"),
                )?,
            });
        }
        let ledger_url = match &file.ledger {
            // A relative SQLite path is relative to the configuration file, like every other path.
            Some(l) if l.url.starts_with("sqlite://") => {
                let path = PathBuf::from(&l.url["sqlite://".len()..]);
                Some(format!("sqlite://{}", resolve(&path).display()))
            }
            Some(l) if l.url.starts_with("postgres://") || l.url.starts_with("postgresql://") => {
                Some(l.url.clone())
            }
            Some(l) => {
                return Err(invalid(
                    "ledger.url",
                    format!("{:?}: sqlite://PATH or postgres://…", l.url),
                ))
            }
            None => None,
        };
        let supervision = file.supervision.as_ref().map(supervision).transpose()?;
        if supervision.is_some() && ledger_url.is_none() {
            return Err(invalid(
                "supervision",
                "keeps its signals in the ledger: configure [ledger] too",
            ));
        }
        Ok(Config {
            server,
            limits,
            ledger_url,
            regions,
            institutions,
            supervision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> String {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/gateway.example.toml"),
        )
        .unwrap_or_default()
    }

    #[test]
    fn the_shipped_example_parses() {
        let config = Config::parse(&example(), Path::new("/etc/jjj")).map_err(|e| e.to_string());
        let config = match config {
            Ok(config) => config,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(config.regions.len(), 3);
        assert_eq!(config.regions[2].upstreams.len(), 2);
        assert_eq!(config.institutions[0].level, Some(3));
        assert_eq!(config.server.ca, Path::new("/etc/jjj/certs/ca.pem"));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                "listen = \"127.0.0.1:8443\"",
                "listen = \"nowhere\"",
                "server.listen",
            ),
            (
                "admdvs = \"120000\"",
                "admdvs = \"12000\"",
                "regions[1].admdvs",
            ),
            ("role = \"officer\"", "role = \"janitor\"", "role"),
            ("level = 3", "level = 7", "institutions[0].level"),
            (
                "https://127.0.0.1:9101",
                "http://127.0.0.1:9101",
                "regions[0].upstreams[0]",
            ),
            (
                "dialect = \"national\"\nupstreams = [\"https://127.0.0.1:9102",
                "dialect = \"klingon\"\nupstreams = [\"https://127.0.0.1:9102",
                "regions[1].dialect",
            ),
            ("[limits]", "[limits]\nsurprise = 1", "surprise"),
        ];
        for (from, to, key) in cases {
            let text = example().replacen(from, to, 1);
            let error = Config::parse(&text, Path::new("."))
                .map(|_| ())
                .map_err(|e| e.to_string());
            assert!(
                matches!(&error, Err(e) if e.contains(key)),
                "{key}: {error:?}"
            );
        }
    }
}
