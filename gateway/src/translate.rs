//! `jjj-gateway translate`: one message from stdin to stdout, from one
//! dialect to another, checked as the gateway would check it.

use adapters::{dialect, Limits};
use contracts::validate::{check_answer, validate_request, Jingjinji};
use contracts::{ErrorCode, Infno, Refusal};
use std::io::{Read, Write};

/// What `translate` was asked to do.
#[derive(Debug, Clone, clap::Args)]
pub struct TranslateArgs {
    /// The dialect of the message on stdin: national, tj or he.
    #[arg(long)]
    pub from: String,
    /// The dialect to write on stdout.
    #[arg(long)]
    pub to: String,
    /// The message is an answer to this transaction (answers do not name
    /// their own). Without it, the message is read as a request.
    #[arg(long)]
    pub infno: Option<String>,
}

/// Translates `input`; a refusal says why the message cannot be translated.
/// Warnings (anomalies of an answer that is still passed on) go to `warnings`.
pub fn translate(
    args: &TranslateArgs,
    input: &[u8],
    warnings: &mut Vec<String>,
) -> Result<Vec<u8>, Refusal> {
    let limits = Limits::DEFAULT;
    let from = dialect(&args.from)?;
    let to = dialect(&args.to)?;
    match &args.infno {
        None => {
            let request = from.decode_request(input, &limits)?;
            validate_request(&request, &Jingjinji)?;
            Ok(to.encode_request(&request))
        }
        Some(code) => {
            let infno = Infno::from_code(code).ok_or_else(|| {
                Refusal::new(ErrorCode::UnknownTransaction, format!("--infno {code}"))
            })?;
            let answer = from.decode_answer(infno, input, &limits)?;
            for anomaly in check_answer(infno, &answer) {
                warnings.push(format!("anomaly {}: {}", anomaly.rule, anomaly.detail));
            }
            Ok(to.encode_answer(Some(infno), &answer))
        }
    }
}

/// Runs the subcommand on the process's stdin and stdout; returns the exit code.
pub fn run(args: &TranslateArgs) -> anyhow::Result<u8> {
    let limit = Limits::DEFAULT.body_bytes_max as u64 + 1;
    let mut input = Vec::new();
    std::io::stdin().take(limit).read_to_end(&mut input)?;
    let mut warnings = Vec::new();
    let outcome = translate(args, &input, &mut warnings);
    let mut stderr = std::io::stderr().lock();
    for warning in &warnings {
        writeln!(stderr, "warning: {warning}")?;
    }
    match outcome {
        Ok(bytes) => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&bytes)?;
            stdout.write_all(b"\n")?;
            stdout.flush()?;
            Ok(0)
        }
        Err(refusal) => {
            writeln!(
                stderr,
                "refused: E{} {}: {} / {}: {}",
                refusal.code.number(),
                refusal.code.slug(),
                refusal.code.message_zh(),
                refusal.code.message_en(),
                refusal.detail
            )?;
            Ok(1)
        }
    }
}
