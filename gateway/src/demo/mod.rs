//! `jjj-gateway demo`: with no arguments and no prior setup, makes
//! certificates and configuration in a scratch data folder, starts the three
//! platforms' stand-ins and the gateway, drives a day of traffic from 33
//! hospitals and pharmacies of the three regions, and prints what the day
//! came to: calls, refusals, reversals, and who owes whom.

pub mod patterns;
pub mod traffic;
pub mod world;

use crate::client::Client;
use crate::demo::traffic::{lock, His, Tally};
use crate::demo::world::{Institution, Ports, REGIONS};
use contracts::sample::Rng;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What `demo` was asked to do.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// The data folder (certificates, gateway.toml, sandbox.toml, logs). Default: a new folder under the system's temporary folder.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Patients' visits in the day, spread over all institutions.
    #[arg(long, default_value_t = 330)]
    pub visits: u32,
    /// Seed of the day's randomness (the same seed, the same patients).
    #[arg(long, default_value_t = 20261125)]
    pub seed: u64,
    /// Leave the platforms and the gateway running afterwards, for requests of your own (stop with Ctrl-C).
    #[arg(long)]
    pub keep_running: bool,
}

/// Runs the demo; returns the exit code.
pub fn run(args: &DemoArgs) -> anyhow::Result<u8> {
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!(
            "jjj-demo-{}",
            contracts::DateTime::now().to_compact()
        )),
    };
    std::fs::create_dir_all(&dir)?;
    crate::telemetry::init_to_file(&dir.join("gateway.log"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(day(args, dir))
}

async fn day(args: &DemoArgs, dir: PathBuf) -> anyhow::Result<u8> {
    let institutions = world::institutions();
    let ports = Ports::free()?;
    let (sandbox_path, gateway_path) = world::lay_out(&dir, &institutions, ports, true)?;
    println!("data folder: {}", dir.display());
    let sandbox = crate::sandbox::config::SandboxConfig::load(&sandbox_path)?;
    tokio::spawn(async move {
        if let Err(error) = crate::sandbox::platform::run(sandbox).await {
            eprintln!("sandbox stopped: {error:#}");
        }
    });
    let config = crate::config::Config::load(&gateway_path)?;
    // Earlier days' counts: the baseline supervision's institution_surge compares with.
    if let Some(url) = &config.ledger_url {
        let ledger = ledger::Ledger::open(url).await?;
        let per_day = i64::from(args.visits.div_ceil(institutions.len() as u32).max(1));
        patterns::seed_baseline(&ledger, &institutions, per_day).await?;
    }
    let gateway = crate::state::Gateway::new(config).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::serve(gateway, async move {
        let _ = stopped.await;
    }));
    let base = format!("https://127.0.0.1:{}", ports.gateway);
    let certs = dir.join("certs");
    wait_ready(&certs, &base).await?;

    let tally = Arc::new(Mutex::new(Tally::default()));
    let bar = indicatif::ProgressBar::new(u64::from(args.visits));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg:12} [{bar:40}] {pos}/{len} visits ({elapsed})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("a day of care");
    let mut tasks = Vec::new();
    let per = args.visits.div_ceil(institutions.len() as u32).max(1);
    let mut left = args.visits;
    for (n, institution) in institutions.iter().enumerate() {
        let visits = per.min(left);
        left -= visits;
        let mut his = His {
            client: Client::for_code(&certs, &institution.code)?,
            institution: institution.clone(),
            base: base.clone(),
            sequence: 0,
            rng: Rng::new(args.seed.wrapping_mul(1_000_003).wrapping_add(n as u64)),
        };
        let tally = tally.clone();
        let bar = bar.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..visits {
                his.one_visit(&tally).await;
                bar.inc(1);
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    bar.finish_with_message("day done");
    // A few of each fraud pattern among the honest traffic, for supervision to find.
    let injected = patterns::inject(&certs, &base, &institutions, &tally).await?;
    print_summary(&lock(&tally), &institutions);
    println!();
    reconcile_day(&dir, &gateway_path, &sandbox_path).await?;
    if let Some(url) = crate::config::Config::load(&gateway_path)?.ledger_url {
        patterns::summary(&ledger::Ledger::open(&url).await?, &injected).await?;
    }
    if args.keep_running {
        println!(
            "\nThe gateway keeps running at {base} (Ctrl-C stops it). Try, from the repository:"
        );
        let code = institutions
            .first()
            .map_or("H11010500123", |i| i.code.as_str());
        println!(
            "  curl --cacert {c}/ca.pem --cert {c}/{code}.pem --key {c}/{code}.key -H 'content-type: application/json' \\\n       --data-binary @contracts/fixtures/national/2207-request.json {base}{}",
            crate::server::NATIONAL_PATH,
            c = certs.display()
        );
        crate::telemetry::termination().await;
    }
    let _ = stop.send(());
    server.await??;
    Ok(0)
}

async fn wait_ready(certs: &std::path::Path, base: &str) -> anyhow::Result<()> {
    let client = Client::for_code(certs, world::OFFICER)?;
    for _ in 0..100 {
        // The gateway's own answer, not whatever else might hold the port.
        if client
            .get(&format!("{base}/readyz"))
            .await
            .is_ok_and(|r| r.status == 200 && r.body.as_ref() == b"ready\n")
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the gateway did not become ready")
}

fn print_summary(t: &Tally, institutions: &[Institution]) {
    println!(
        "\n== The day, as the hospitals saw it ({} institutions of {} regions)",
        institutions.len(),
        REGIONS.len()
    );
    println!(
        "  answered by the platforms: {}   platform errors: {}   transport errors: {}",
        t.answered, t.platform_errors, t.transport_errors
    );
    for (scenario, n) in &t.settlements {
        println!("  settled, {scenario}: {n}");
    }
    println!(
        "  cancelled: {}   reversed after an unknown outcome: {}",
        t.cancels, t.reversed
    );
    if !t.refused.is_empty() {
        let refused: Vec<String> = t
            .refused
            .iter()
            .map(|(slug, n)| format!("{slug} {n}"))
            .collect();
        println!("  refused or failed at the gateway: {}", refused.join(", "));
    }
}

/// Reconciles the demo's day as clearing officers would: each platform's
/// statement from its own record (also stored in the ledger, so the officers'
/// page at /clearing/ shows them) against the gateway's journal; writes the
/// report into DATA/report/ and prints the clearing statement.
async fn reconcile_day(
    dir: &std::path::Path,
    gateway_path: &std::path::Path,
    sandbox_path: &std::path::Path,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let config = crate::config::Config::load(gateway_path)?;
    let sandbox = crate::sandbox::config::SandboxConfig::load(sandbox_path)?;
    let url = config
        .ledger_url
        .clone()
        .context("the demo's configuration has no ledger")?;
    let ledger = ledger::Ledger::open(&url).await?;
    // Unknown outcomes are being reversed: wait for them, boundedly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ledger.unresolved().await?.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let day = contracts::DateTime::now().date();
    let mut statements = Vec::new();
    for platform in &sandbox.platforms {
        let rows = crate::sandbox::statement_rows(&sandbox, platform.admdvs, day)?;
        let mut csv = Vec::new();
        crate::export::write_rows(&rows, crate::export::Format::Csv, &mut csv)?;
        let body = String::from_utf8(csv.clone())?;
        ledger
            .put_statement(ledger::StoredStatement {
                day: day.to_string(),
                admdvs: platform.admdvs.to_string(),
                uploaded_by: format!("sandbox {}", platform.admdvs),
                uploaded_at_ms: contracts::DateTime::now().unix_millis(),
                digest: contracts::hex::sha256(&csv),
                rows: rows.len() as u64,
                body,
            })
            .await?;
        statements.push((platform.admdvs, std::io::Cursor::new(csv)));
    }
    let gateway_rows = crate::clearing::command::gateway_csv(&ledger, day, None).await?;
    let regions = crate::clearing::command::regions_of(&config);
    // The demo's day is today's and no day before it was closed.
    let report = crate::clearing::command::build(
        day,
        &regions,
        crate::reconcile::Earlier::none(),
        std::io::Cursor::new(gateway_rows),
        statements,
    )?;
    let out = dir.join("report");
    crate::clearing::command::write_report(&report, &out)?;
    crate::clearing::command::print_summary(&report);
    println!(
        "\n  report: {}",
        out.join("report.{json,csv,xlsx}").display()
    );
    Ok(())
}
