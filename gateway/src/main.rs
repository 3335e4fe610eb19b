//! The `jjj-gateway` binary.

use clap::Parser;
use gateway::cli::{CertsCommand, Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Translate(args) => gateway::translate::run(args),
        Command::Certs(CertsCommand::Init(args)) => gateway::certs::run(args),
        Command::Serve { config } => gateway::server::run(config),
        Command::Sandbox { config } => gateway::sandbox::run(config),
        Command::Demo(args) => gateway::demo::run(args),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
