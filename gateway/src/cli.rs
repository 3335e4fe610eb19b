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
}
