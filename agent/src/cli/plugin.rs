//! `plugin check`: load a WASM plugin, check it against the contract and measure it.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::exit::{CliError, Outcome};

/// `valkey-chaos plugin`'s subcommands.
#[derive(Subcommand, Debug)]
pub enum PluginCmd {
    /// Load a plugin, check it against the WIT contract, print describe() and its per-VU cost.
    Check {
        file: PathBuf,
        /// Virtual users to instantiate for the cost measurement.
        #[arg(long, default_value_t = 100)]
        vus: u32,
    },
}

/// `valkey-chaos plugin …`.
pub async fn plugin(cmd: &PluginCmd) -> Result<Outcome, CliError> {
    match cmd {
        PluginCmd::Check { file, vus } => check(file, *vus).await,
    }
}

/// `valkey-chaos plugin check`: what the plugin says about itself and what a VU costs.
async fn check(file: &Path, vus: u32) -> Result<Outcome, CliError> {
    let (p, info, cost) = crate::plugin::check(file, vus.max(1)).await?;
    println!("plugin {} ({})", p.name, file.display());
    println!("  contract   {} (ok)", crate::plugin::CONTRACT);
    println!("  describe   {} {}", info.name, info.version);
    for (k, d) in &info.params {
        println!("  param      {k}: {d}");
    }
    println!(
        "  compile    {:.1?} ({})",
        p.compile_time,
        if p.compiled_from_cache {
            "from cache"
        } else {
            "compiled, now cached"
        }
    );
    println!(
        "  per VU     {:.1} us to instantiate, {:.0} KiB resident ({} VUs measured)",
        cost.instantiate_us,
        cost.rss_per_vu_kib,
        vus.max(1)
    );
    Ok(Outcome::PASS)
}
