//! The command line of `jjj-gateway`.

use clap::{Parser, Subcommand};

/// The cross-region settlement gateway for Beijing, Tianjin and Hebei.
///
/// Hospitals and pharmacies settle patients insured in another region
/// through it; the regions' platforms exchange their shares through it; and
/// clearing officers reconcile every day's settlements and see who owes whom.
#[derive(Debug, Parser)]
#[command(name = "jjj-gateway", version, about, long_about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Translate one message from stdin to stdout between dialects (an integrator's tool).
    ///
    /// A request names its own transaction; an answer does not, so translating
    /// an answer needs --infno (the transaction it answers). The message is
    /// checked as the gateway checks it: a refused message exits 1 with the
    /// error code and message on stderr; anomalies of an answer (which the
    /// gateway passes on) are printed as warnings.
    ///
    /// Example: jjj-gateway translate --from national --to national < contracts/fixtures/national/2207-request.json
    Translate(crate::translate::TranslateArgs),
    /// Make a development PKI: CA, server certificate, client certificates.
    ///
    /// Writes DIR/ca.pem (and ca.key), DIR/server.pem|.key for localhost,
    /// 127.0.0.1 and ::1, DIR/gateway.pem|.key (the gateway's own client
    /// certificate towards the platforms) and DIR/<code>.pem|.key for every
    /// institution of --config and every --client. For production use your
    /// own CA: see certs/README.md.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Run the gateway: mutual TLS on the configured address, every message
    /// routed to the patient's insured region. SIGHUP reloads certificates;
    /// SIGTERM stops accepting and lets requests in flight finish.
    Serve {
        /// The configuration file (see deploy/gateway.example.toml).
        #[arg(long)]
        config: std::path::PathBuf,
    },
    /// Run the gateway's main job on this machine: certificates and configuration
    /// in a scratch data folder, the three platforms' stand-ins and the gateway,
    /// a day of traffic from 33 hospitals and pharmacies of Beijing, Tianjin and
    /// Hebei (outpatient, chronic outpatient, inpatient, pharmacy, cancels,
    /// reversals, bad messages), then the day's clearing statement.
    Demo(crate::demo::DemoArgs),
    /// Run the three regional platforms' stand-ins (Beijing national, Tianjin
    /// tj, Hebei he), each on its own port over mutual TLS, with faults that
    /// can be injected (POST TOML to /admin/faults).
    ///
    /// Each platform keeps its record (people, year-to-date totals,
    /// settlements, the event log) in DATA/<admdvs>.sqlite, DATA being the
    /// configuration's `data` folder, and carries on from it after a restart.
    /// With --statement it starts nothing: it writes that platform's daily
    /// statement (contracts/statement.md) for --date to --out, also while the
    /// sandbox runs.
    ///
    /// Example: jjj-gateway sandbox --config sandbox.toml --statement 110000 --date 2026-06-15 --out bj.csv
    Sandbox {
        /// The sandbox configuration file.
        #[arg(long)]
        config: std::path::PathBuf,
        /// Write this platform's statement (its region code, e.g. 110000) instead of serving.
        #[arg(long, value_name = "ADMDVS", requires_all = ["date", "out"])]
        statement: Option<String>,
        /// The clearing day of the statement (Asia/Shanghai date of setl_time).
        #[arg(long, value_name = "YYYY-MM-DD", requires = "statement")]
        date: Option<String>,
        /// Where to write the statement (CSV).
        #[arg(long, value_name = "FILE", requires = "statement")]
        out: Option<std::path::PathBuf>,
    },
    /// Reconcile one clearing day and clear it between the regions.
    ///
    /// The gateway's journal (from the configured ledger, or --gateway FILE)
    /// against each region's statement (--statement ADMDVS=FILE, CSV as
    /// contracts/statement.md says). Writes report.json, report.csv and
    /// report.xlsx into --out and prints the net positions. Exit 0 when all
    /// matched, 1 when discrepancies were found or a statement is missing, 2 on error.
    Reconcile(crate::clearing::command::ReconcileArgs),
    /// The day's cross-region supervision signals, from the configured ledger.
    ///
    /// Prints them; with --out writes JSON, CSV and XLSX, also one CSV and
    /// XLSX per pair of configured regions for their joint check.
    ///
    /// Example: jjj-gateway signals --config gateway.toml --date 2026-11-26 --out signals/
    Signals(crate::supervision::command::SignalsArgs),
    /// The settlement journal: export a clearing day's statement from it.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Generate load over mutual TLS: open loop at a fixed rate (latency from
    /// the scheduled send time), closed loop at maximum with N connections, or
    /// a fresh full TLS handshake per request; HDR percentiles, throughput and
    /// errors by class.
    ///
    /// Example: jjj-gateway load --target https://127.0.0.1:8443/v1/messages/tj --ca certs/ca.pem --cert certs/H12010100789.pem --key certs/H12010100789.key --body 1101.xml --connections 32 --duration 10
    Load(crate::load::LoadArgs),
}

/// `ledger` subcommands.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Write the gateway's own statement of one clearing day (the rows of
    /// contracts/statement.md, from the journal) as CSV or JSON lines.
    ///
    /// Reads the ledger named by the configuration's [ledger] url; safe while
    /// the gateway runs.
    ///
    /// Example: jjj-gateway ledger export --config gateway.toml --date 2026-11-26 --format csv --out gateway.csv
    Export(crate::export::ExportArgs),
}

/// `certs` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Make the development PKI in a folder.
    Init(crate::certs::CertsArgs),
}
