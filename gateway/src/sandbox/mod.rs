//! The regional platforms' stand-ins: who is insured, what their policy pays.

pub mod config;
pub mod platform;
pub mod policy;
pub mod population;

/// Runs `sandbox --config FILE`.
pub fn run(path: &std::path::Path) -> anyhow::Result<u8> {
    crate::telemetry::init();
    let config = config::SandboxConfig::load(path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(platform::run(config))?;
    Ok(0)
}
