//! `bench`: the agent against its peers on one fresh Valkey.

use std::path::PathBuf;

use clap::Args;

use super::exit::{CliError, Outcome};

/// `valkey-chaos bench`'s flags.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Seconds per measured run.
    #[arg(long, default_value_t = 5)]
    pub secs: u64,
    /// Where the example plugins were built.
    #[arg(long, default_value = "plugins/target/wasm32-wasip2/release")]
    pub plugins: PathBuf,
    /// Also write bench.json here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Only these groups (comma-separated): pacing, commands, dramatiq, lock, plugin,
    /// memory, proxy.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

/// `valkey-chaos bench`: a table, never a verdict.
pub async fn bench(a: &BenchArgs) -> Result<Outcome, CliError> {
    if let Some(bad) = a
        .only
        .iter()
        .find(|g| !crate::bench::GROUPS.contains(&g.as_str()))
    {
        return Err(CliError::usage(format!(
            "bench --only: unknown group {bad:?} (groups: {})",
            crate::bench::GROUPS.join(", ")
        )));
    }
    let rows = crate::bench::run(a.secs.max(1), Some(&a.plugins), &a.only)
        .await
        .map_err(|e| CliError::runtime(e).context("bench"))?;
    print!("{}", crate::bench::render(&rows));
    if let Some(dir) = &a.out {
        // bench.json is a by-product of the table on stdout: a failed write does not fail the
        // bench.
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(
            dir.join("bench.json"),
            serde_json::to_vec_pretty(&rows).unwrap_or_default(),
        );
    }
    Ok(Outcome::PASS)
}
