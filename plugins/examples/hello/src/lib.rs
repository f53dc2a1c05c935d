//! The smallest real scenario: each iteration SETs the VU's own key to the
//! iteration number and GETs it back.
//!
//! Keys: `<prefix>hello:<vu>` (one string per VU).
//! Params: `prefix` (default `vc:`).
//! Metrics: `hello_mismatches_total`, GETs that did not return what the VU had
//! just written (lost writes, e.g. across a failover).

use valkey_chaos_sdk::{
    Config, Error, Info, Result, Scenario, cmd, export_scenario, metrics, valkey,
};

struct Hello {
    key: String,
    mismatches: metrics::Counter,
}

impl Scenario for Hello {
    fn describe() -> Info {
        valkey_chaos_sdk::package_info!().param("prefix", "key prefix (default \"vc:\")")
    }

    fn setup(config: &Config) -> Result<Self> {
        let prefix = config.param_or("prefix", "vc:");
        Ok(Hello {
            key: format!("{prefix}hello:{}", config.vu_id),
            mismatches: metrics::counter("hello_mismatches_total"),
        })
    }

    fn iteration(&mut self, n: u64) -> Result {
        valkey::execute(cmd!("SET", self.key, n))?;
        let reply = valkey::execute(cmd!("GET", self.key))?;
        let read = reply.as_int();
        if read != Some(n as i64) {
            self.mismatches.inc();
            return Err(Error::new(format!(
                "GET {} returned {read:?}, expected {n}",
                self.key
            )));
        }
        Ok(())
    }
}

export_scenario!(Hello);
