//! `jjj-gateway reconcile`: one clearing day from the command line.
//!
//! ```text
//! jjj-gateway reconcile --config gateway.toml --date 2026-11-26 \
//!     --statement 110000=bj.csv --statement 120000=tj.csv --statement 130000=he.csv --out report/
//! ```
//!
//! The gateway's side comes from the configured ledger (or, with
//! `--gateway FILE`, from a `ledger export --format csv`); each region's side
//! from its statement file. Writes `report.json`, `report.csv` and
//! `report.xlsx` into `--out`; exits 0 when everything matched, 1 when
//! discrepancies were found (or a region's statement is missing), 2 on error.

use crate::reconcile::{Earlier, GatewaySource, Regions, Side};
use crate::report::Report;
use anyhow::Context;
use contracts::{Admdvs, Date, Money};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// `reconcile` arguments.
#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    /// The gateway's configuration file (its regions and its ledger).
    #[arg(long)]
    pub config: PathBuf,
    /// The clearing day, YYYY-MM-DD (Asia/Shanghai).
    #[arg(long)]
    pub date: String,
    /// A region's statement for the day, as ADMDVS=FILE (CSV as
    /// contracts/statement.md says); repeat for each region.
    #[arg(long = "statement", value_name = "ADMDVS=FILE")]
    pub statements: Vec<String>,
    /// The folder to write report.json, report.csv and report.xlsx into.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Take the gateway's side from this `ledger export --format csv` file
    /// instead of the configured ledger (which is then not read at all: no
    /// day counts as closed, so late rows of closed days are refused).
    #[arg(long, value_name = "FILE")]
    pub gateway: Option<PathBuf>,
}

/// A reader that advances a progress bar by the bytes read.
struct Counted<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counted<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

fn open_counted(path: &Path, bar: &ProgressBar) -> anyhow::Result<BufReader<Counted<File>>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(BufReader::with_capacity(
        256 * 1024,
        Counted {
            inner: file,
            bar: bar.clone(),
        },
    ))
}

/// Parses `ADMDVS=FILE`.
fn statement_arg(text: &str) -> anyhow::Result<(Admdvs, PathBuf)> {
    let (code, path) = text
        .split_once('=')
        .with_context(|| format!("--statement {text:?}: expected ADMDVS=FILE"))?;
    let code = Admdvs::parse(code.trim())
        .map_err(|e| anyhow::anyhow!("--statement {text:?}: {code:?}: {e}"))?;
    Ok((code, PathBuf::from(path)))
}

/// The configured regions of a gateway configuration.
pub fn regions_of(config: &crate::config::Config) -> Regions {
    Regions::new(
        config
            .regions
            .iter()
            .map(|r| (r.admdvs, r.name.clone()))
            .collect(),
    )
}

/// Reconciles and clears one day from its sources.
pub fn build<G: GatewaySource, S: BufRead + Send>(
    day: Date,
    regions: &Regions,
    earlier: Earlier<'_>,
    gateway: G,
    statements: Vec<(Admdvs, S)>,
) -> anyhow::Result<Report> {
    let outcome = crate::reconcile::reconcile(day, regions, earlier, gateway, statements)?;
    let clearing = super::clear(regions, &outcome.owed)?;
    Ok(Report {
        day,
        regions: regions.clone(),
        outcome,
        clearing,
        disputes: Vec::new(),
        closure: None,
        viewer: None,
    })
}

/// The gateway's rows of `day` from `ledger`, as statement CSV (the form
/// [`crate::reconcile::reconcile`] reads both sides in); with `closing_at_ms`,
/// as they are when the day is closed then ([`crate::export::closing_rows`]).
pub async fn gateway_csv(
    ledger: &ledger::Ledger,
    day: Date,
    closing_at_ms: Option<i64>,
) -> Result<Vec<u8>, ledger::LedgerError> {
    let rows = match closing_at_ms {
        Some(at) => crate::export::closing_rows(ledger, day, at).await?,
        None => crate::export::day_rows(ledger, day).await?,
    };
    let mut csv = Vec::with_capacity(rows.len() * 200 + 256);
    crate::export::write_rows(&rows, crate::export::Format::Csv, &mut csv)
        .map_err(|e| ledger::LedgerError::Unavailable(e.to_string()))?;
    Ok(csv)
}

/// The days closed before `day` in `ledger`, whose late rows `day` may carry,
/// and how to read their sides back; `runtime` runs the ledger's reads for
/// the (synchronous) reconciliation, which must not run on it.
pub async fn earlier(
    ledger: &ledger::Ledger,
    day: Date,
    runtime: tokio::runtime::Handle,
) -> Result<Earlier<'static>, ledger::LedgerError> {
    let closed = crate::export::closed_before(ledger, day).await?;
    let ledger = ledger.clone();
    Ok(Earlier {
        closed,
        lookup: Box::new(move |date, side, region| {
            runtime
                .block_on(async {
                    match side {
                        // As they were when the day was closed.
                        Side::Gateway => gateway_csv(&ledger, date, None).await.map(Some),
                        Side::Region => Ok(ledger
                            .statements(&date.to_string())
                            .await?
                            .into_iter()
                            .find(|s| s.admdvs == region.to_string())
                            .map(|s| s.body.into_bytes())),
                    }
                })
                .map_err(std::io::Error::other)
        }),
    })
}

/// Writes report.json, report.csv and report.xlsx into `out`.
pub fn write_report(report: &Report, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (name, bytes) in [
        ("report.json", report.to_json()),
        ("report.csv", report.to_csv()),
        ("report.xlsx", report.to_xlsx()),
    ] {
        let path = out.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn pad(text: &str, width: usize) -> String {
    // Chinese characters take two columns in a terminal.
    let columns: usize = text.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum();
    format!("{text}{}", " ".repeat(width.saturating_sub(columns)))
}

/// Prints the reconciliation's outcome and the clearing statement as tables.
pub fn print_summary(report: &Report) {
    let name = |code: Admdvs| {
        report
            .regions
            .list
            .iter()
            .find(|(c, _)| *c == code)
            .map_or_else(|| code.to_string(), |(_, n)| format!("{n} {code}"))
    };
    println!(
        "== Reconciliation of {} (the gateway's journal against each region's statement)",
        report.day
    );
    println!("  gateway journal: {} rows", report.outcome.gateway_rows);
    for s in &report.outcome.statements {
        println!("  statement of {}: {} rows", name(s.region), s.rows);
    }
    for missing in report.missing_statements() {
        println!("  statement of {}: missing (not reconciled)", name(missing));
    }
    if report.outcome.late_rows > 0 {
        println!(
            "  late rows of closed days (adjustments of this day): {}, {} matched on their own day",
            report.outcome.late_rows, report.outcome.late_matched
        );
    }
    let totals_differ = report
        .outcome
        .totals
        .values()
        .filter(|(g, r)| !g.agrees(r))
        .count();
    println!(
        "  totals (对总账): {} groups, {}",
        report.outcome.totals.len(),
        if totals_differ == 0 {
            "all agree".to_owned()
        } else {
            format!("{totals_differ} differ")
        }
    );
    let counts = &report.outcome.counts;
    if counts.values().all(|&n| n == 0) {
        println!("  details (对明细账): no discrepancies");
    } else {
        for (class, n) in counts.iter().filter(|(_, n)| **n > 0) {
            println!("  details (对明细账): {} {n}", class.as_str());
        }
    }
    println!(
        "\n== Clearing statement (what each insured region owes for its people treated elsewhere)"
    );
    println!(
        "  {}{}{:>8} {:>16} {:>16} {:>16}",
        pad("insured (owes)", 18),
        pad("treatment (gets)", 18),
        "count",
        "fund share",
        "account share",
        "owed"
    );
    for p in &report.clearing.pairs {
        let short = |code: Admdvs| {
            report
                .regions
                .list
                .iter()
                .find(|(c, _)| *c == code)
                .map_or_else(|| code.to_string(), |(_, n)| n.clone())
        };
        println!(
            "  {}{}{:>8} {:>16} {:>16} {:>16}",
            pad(&short(p.insured), 18),
            pad(&short(p.treatment), 18),
            p.owed.count,
            p.owed.fund_pay_sumamt.to_yuan_string(),
            p.owed.acct_pay.to_yuan_string(),
            p.total.to_yuan_string()
        );
    }
    println!("\n  net positions (positive: receives)");
    let mut sum = Money::default();
    for p in &report.clearing.positions {
        sum = sum.checked_add(p.net).unwrap_or(sum);
        println!("  {}{:>16}", pad(&p.name, 18), p.net.to_yuan_string());
    }
    println!(
        "  {}{:>16}",
        pad("sum (always 0)", 18),
        sum.to_yuan_string()
    );
}

/// Runs `reconcile`.
pub fn run(args: &ReconcileArgs) -> anyhow::Result<u8> {
    let config = crate::config::Config::load(&args.config)?;
    let day =
        Date::parse(&args.date).map_err(|e| anyhow::anyhow!("--date {:?}: {e}", args.date))?;
    let regions = regions_of(&config);
    let statements = args
        .statements
        .iter()
        .map(|s| statement_arg(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (code, _) in &statements {
        if regions.index(*code).is_none() {
            anyhow::bail!("--statement {code}: not a configured region");
        }
    }
    let total: u64 = statements
        .iter()
        .map(|(_, p)| p.as_path())
        .chain(args.gateway.as_deref())
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let readers = statements
        .iter()
        .map(|(code, path)| Ok((*code, open_counted(path, &bar)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // The ledger's reads run on a runtime of their own, beside the
    // reconciliation's threads.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    // With --gateway FILE the ledger is not opened at all (nor created): no
    // day counts as closed, and a late row in a statement is refused.
    let ledger = match (&args.gateway, config.ledger_url.as_deref()) {
        (None, Some(url)) => Some(
            runtime
                .block_on(ledger::Ledger::open(url))
                .with_context(|| format!("opening the ledger {url}"))?,
        ),
        _ => None,
    };
    let earlier = match &ledger {
        Some(ledger) => runtime
            .block_on(earlier(ledger, day, runtime.handle().clone()))
            .context("reading the closed days from the ledger")?,
        None => Earlier::none(),
    };
    let report = match (&args.gateway, &ledger) {
        (Some(path), _) => build(day, &regions, earlier, open_counted(path, &bar)?, readers)?,
        (None, Some(ledger)) => {
            let rows = runtime
                .block_on(gateway_csv(ledger, day, None))
                .context("reading the day from the ledger")?;
            build(day, &regions, earlier, Cursor::new(rows), readers)?
        }
        (None, None) => {
            anyhow::bail!("the configuration has no [ledger] url; give --gateway FILE")
        }
    };
    bar.finish_and_clear();
    write_report(&report, &args.out)?;
    print_summary(&report);
    println!(
        "\nreport written to {}",
        args.out.join("report.{json,csv,xlsx}").display()
    );
    Ok(if report.all_matched() { 0 } else { 1 })
}
