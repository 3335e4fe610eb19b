//! The regional platforms' stand-ins: who is insured, what their policy pays,
//! and what each platform remembers (its record).

pub mod config;
pub mod platform;
pub mod policy;
pub mod population;
pub mod record;

use anyhow::Context;
use contracts::{Admdvs, Date};
use std::path::Path;

/// What `sandbox --statement ADMDVS --date YYYY-MM-DD --out FILE` asks for.
#[derive(Debug, Clone, Copy)]
pub struct StatementArgs<'a> {
    /// The platform (its region code).
    pub admdvs: &'a str,
    /// The clearing day.
    pub date: &'a str,
    /// Where to write the CSV.
    pub out: &'a Path,
}

/// Runs `sandbox --config FILE`: the platforms, until SIGTERM or SIGINT; or,
/// with `statement`, writes one platform's statement for one clearing day
/// from its record and returns (no servers are started).
pub fn run(path: &Path, statement: Option<StatementArgs<'_>>) -> anyhow::Result<u8> {
    let config = config::SandboxConfig::load(path)?;
    if let Some(args) = statement {
        let count = write_statement(&config, args)?;
        println!(
            "wrote {count} rows of platform {}'s statement for {} to {}",
            args.admdvs,
            args.date,
            args.out.display()
        );
        return Ok(0);
    }
    crate::telemetry::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(platform::run(config))?;
    Ok(0)
}

/// Writes platform `args.admdvs`'s statement for the clearing day
/// `args.date` (the Shanghai date of `setl_time`) to `args.out`, as
/// `contracts/statement.md` specifies, from the platform's record; works
/// while the sandbox runs. Returns the number of rows.
pub fn write_statement(
    config: &config::SandboxConfig,
    args: StatementArgs<'_>,
) -> anyhow::Result<usize> {
    let admdvs = Admdvs::parse(args.admdvs)
        .map_err(|_| anyhow::anyhow!("--statement {:?}: not a region code", args.admdvs))?;
    if !config.platforms.iter().any(|p| p.admdvs == admdvs) {
        let known: Vec<String> = config
            .platforms
            .iter()
            .map(|p| p.admdvs.to_string())
            .collect();
        anyhow::bail!(
            "--statement {admdvs}: no such platform in the configuration (platforms: {})",
            known.join(", ")
        );
    }
    let date = Date::parse(args.date)
        .map_err(|e| anyhow::anyhow!("--date {:?}: not a date: {e}", args.date))?;
    let rows = statement_rows(config, admdvs, date)?;
    let write = || -> anyhow::Result<()> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(args.out)?);
        crate::export::write_rows(&rows, crate::export::Format::Csv, &mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    };
    write().with_context(|| format!("writing --out {}", args.out.display()))?;
    Ok(rows.len())
}

/// Platform `admdvs`'s statement rows for the clearing day `date`, from its record.
pub fn statement_rows(
    config: &config::SandboxConfig,
    admdvs: Admdvs,
    date: Date,
) -> anyhow::Result<Vec<contracts::statement::Row>> {
    let record = record::Record::open_existing(&config.data, admdvs)?;
    record.read(|tx| tx.events(date, date, None))
}
