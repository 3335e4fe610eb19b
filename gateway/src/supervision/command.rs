//! `jjj-gateway signals --config FILE --date YYYY-MM-DD [--out DIR]`: the
//! day's supervision signals from the configured ledger (also while the
//! gateway runs). Prints them; with `--out`, writes `signals-DATE.json`,
//! `signals-DATE.csv`, `signals-DATE.xlsx` and, for every pair of configured
//! regions, `signals-DATE-AAAAAA-BBBBBB.csv` and `.xlsx` for joint checks.

use crate::supervision::api::{involves, to_csv, to_json, to_xlsx};
use anyhow::Context;
use contracts::Date;
use std::path::PathBuf;

/// `signals` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct SignalsArgs {
    /// The gateway's configuration (its [ledger] is read).
    #[arg(long)]
    pub config: PathBuf,
    /// The day (Asia/Shanghai).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: String,
    /// Write JSON, CSV and XLSX files, also per pair of regions, into this folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Runs the command; returns the exit code.
pub fn run(args: &SignalsArgs) -> anyhow::Result<u8> {
    let date = Date::parse(&args.date).map_err(|e| anyhow::anyhow!("--date {}: {e}", args.date))?;
    let config = crate::config::Config::load(&args.config)?;
    let url = config
        .ledger_url
        .clone()
        .context("the configuration has no [ledger]")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let signals = runtime.block_on(async {
        let ledger = ledger::Ledger::open(&url).await?;
        ledger.signals(&date.to_string()).await
    })?;
    println!("{} supervision signals on {date}", signals.len());
    for s in &signals {
        println!(
            "  {} {:<20} {:<6} {} [{}] {}",
            crate::supervision::at(s.detected_at_ms),
            s.rule,
            s.severity,
            s.institutions.join(","),
            s.regions.join(","),
            s.detail
        );
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let file = |name: String| out.join(name);
        std::fs::write(file(format!("signals-{date}.json")), to_json(&signals))?;
        std::fs::write(file(format!("signals-{date}.csv")), to_csv(&signals))?;
        std::fs::write(
            file(format!("signals-{date}.xlsx")),
            to_xlsx(&signals, &date.to_string()),
        )?;
        let regions: Vec<_> = config.regions.iter().map(|r| r.admdvs).collect();
        for (i, a) in regions.iter().enumerate() {
            for b in &regions[i + 1..] {
                let pair: Vec<ledger::Signal> = signals
                    .iter()
                    .filter(|s| involves(s, (*a, *b)))
                    .cloned()
                    .collect();
                std::fs::write(file(format!("signals-{date}-{a}-{b}.csv")), to_csv(&pair))?;
                std::fs::write(
                    file(format!("signals-{date}-{a}-{b}.xlsx")),
                    to_xlsx(&pair, &format!("{date} {a}-{b}")),
                )?;
            }
        }
        println!("  written to {}", out.display());
    }
    Ok(0)
}
