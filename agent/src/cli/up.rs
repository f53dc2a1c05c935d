//! `up`: the embedded topology in the foreground until Ctrl-C.

use std::path::PathBuf;

use clap::Args;

use super::exit::{CliError, Outcome};
use crate::valkey::embedded::{self, NodeRole, Topology, TopologySpec};

/// `valkey-chaos up`'s flags.
#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    #[arg(long, default_value_t = 0)]
    pub replicas: u8,
    #[arg(long, default_value_t = 0)]
    pub sentinels: u8,
    #[arg(long, value_name = "PATH")]
    pub valkey_server: Option<PathBuf>,
}

/// `valkey-chaos up`: print every node's URL, wait for Ctrl-C or SIGTERM, stop them all.
pub async fn up(a: &UpArgs) -> Result<Outcome, CliError> {
    let bin = embedded::locate_valkey(a.valkey_server.as_deref()).map_err(CliError::runtime)?;
    let spec = TopologySpec {
        replicas: a.replicas,
        sentinels: a.sentinels,
        ..Default::default()
    };
    let mut topo = Topology::start(&bin, spec)
        .await
        .map_err(CliError::runtime)?;
    for n in &topo.nodes {
        let role = match n.role {
            NodeRole::Primary => "primary ",
            NodeRole::Replica => "replica ",
            NodeRole::Sentinel => "sentinel",
        };
        println!("{role} {:<12} redis://127.0.0.1:{}", n.name, n.port);
    }
    if a.sentinels > 0 {
        println!("sentinel master name: {}", embedded::MASTER_NAME);
    }
    println!("ready; Ctrl-C stops everything");
    super::signals::interrupted().await;
    topo.stop();
    println!("stopped");
    Ok(Outcome::PASS)
}
