//! The way back of a cutover by replication, tried: every ordered pair of the servers this
//! project ships (Redis 7.0, Valkey 8.1, Valkey 9.x), the second made a replica of the first with
//! data in it. What happens must be what `plan::rollback` (and so `compat`'s "way back" line)
//! says, with the reason in the replica's own log where it refuses.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use valkey_chaos::plan::rollback::{by_replication, Engine, InUse, Server};
use valkey_chaos::valkey::embedded::{parse_info, Topology};
use valkey_chaos::valkey::Conn;

use crate::support::*;

async fn info(c: &mut Conn, section: &str) -> String {
    cmd(c, &["INFO", section])
        .await
        .as_str()
        .unwrap()
        .to_string()
}

/// The server as the rollback rules know it, from its own `INFO server`.
async fn server(c: &mut Conn) -> Server {
    let i = info(c, "server").await;
    match parse_info(&i, "valkey_version") {
        Some(v) => Server::parse(Engine::Valkey, &v).unwrap(),
        None => Server::parse(Engine::Redis, &parse_info(&i, "redis_version").unwrap()).unwrap(),
    }
}

/// Make `to` a replica of `from` (which holds `keys` keys) and wait, bounded, for the link to
/// come up with every key there (or for the replica to refuse the primary's RDB). Returns whether
/// it did, and the replica's log.
async fn replicates(from: &Topology, to: &Topology, keys: i64) -> (bool, String) {
    let mut c = conn(to).await;
    let port = from.primary().port.to_string();
    cmd(&mut c, &["REPLICAOF", "127.0.0.1", &port]).await;
    let log = to.dir.join(&to.primary().name).join("server.log");
    let refused = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Can't handle RDB format version")
    };
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut up = false;
    while Instant::now() < deadline && !refused() {
        let r = info(&mut c, "replication").await;
        let size = cmd(&mut c, &["DBSIZE"]).await.as_int().unwrap_or(0);
        if parse_info(&r, "master_link_status").as_deref() == Some("up") && size == keys {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cmd(&mut c, &["REPLICAOF", "NO", "ONE"]).await;
    (up, std::fs::read_to_string(log).unwrap_or_default())
}

#[tokio::test]
async fn the_way_back_is_what_the_servers_do() {
    let bins: [(&str, PathBuf); 3] = [
        ("redis 7.0", crate::tls::redis_bin()),
        ("valkey 8.1", valkey8_bin()),
        ("valkey 9", valkey_bin()),
    ];
    let mut tried = vec![];
    for (from_name, from_bin) in &bins {
        for (to_name, to_bin) in &bins {
            if from_name == to_name {
                continue;
            }
            let from = start_bin(from_bin).await;
            let to = start_bin(to_bin).await;
            let mut p = conn(&from).await;
            for i in 0..50 {
                cmd(&mut p, &["SET", &format!("k{i}"), "v"]).await;
            }
            cmd(&mut p, &["HSET", "h", "f", "v"]).await;
            cmd(&mut p, &["ZADD", "z", "1", "m"]).await;
            cmd(&mut p, &["RPUSH", "l", "a", "b"]).await;
            let verdict = by_replication(
                &server(&mut p).await,
                &server(&mut conn(&to).await).await,
                &InUse::default(),
            );
            let (up, log) = replicates(&from, &to, 53).await;
            assert_eq!(
                up, verdict.possible,
                "{from_name} → {to_name}: replicated {up}, the rules say {verdict:?}\n{log}"
            );
            assert!(verdict.tested_here, "{from_name} → {to_name}: {verdict:?}");
            if !up {
                assert!(
                    log.contains("Can't handle RDB format version"),
                    "{from_name} → {to_name}: {log}"
                );
            }
            tried.push(format!("{from_name} → {to_name}: {up}"));
        }
    }
    assert_eq!(tried.len(), 6, "{tried:?}");
}
