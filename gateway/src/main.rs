//! The `jjj-gateway` binary.

use clap::Parser;
use gateway::cli::{CertsCommand, Cli, Command, LedgerCommand};
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: the gateway allocates and frees many
/// small strings per message (BENCHMARKS.md, issue 9).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Translate(args) => gateway::translate::run(args),
        Command::Certs(CertsCommand::Init(args)) => gateway::certs::run(args),
        Command::Serve { config } => gateway::server::run(config),
        Command::Sandbox {
            config,
            statement,
            date,
            out,
        } => gateway::sandbox::run(
            config,
            match (statement, date, out) {
                (Some(admdvs), Some(date), Some(out)) => {
                    Some(gateway::sandbox::StatementArgs { admdvs, date, out })
                }
                _ => None,
            },
        ),
        Command::Demo(args) => gateway::demo::run(args),
        Command::Ledger(LedgerCommand::Export(args)) => gateway::export::run(args),
        Command::Reconcile(args) => gateway::clearing::command::run(args),
        Command::Signals(args) => gateway::supervision::command::run(args),
        Command::Load(args) => gateway::load::run(args),
    };
    // Spans still buffered reach the collector before the process ends.
    gateway::telemetry::shutdown();
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
