//! `type = "commands"`: a weighted mix of plain commands over a key space, pipelined or not.

use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;

use super::ctx::Ctx;
use crate::plan::rollout::Clients;
use crate::plan::{CommandKind, CommandsPlan, WorkloadPlan};
use crate::rng::Rng;
use crate::valkey::resp::{encode_args, push_uint, uint_digits};
use crate::valkey::{Client, ErrorKind};
use crate::workload::pacing::Pacer;

pub fn spawn(plan: &WorkloadPlan, c: &CommandsPlan, ctx: Ctx, tasks: &mut JoinSet<()>) {
    let c = Arc::new(c.clone());
    for i in 0..plan.clients {
        let pacer = Pacer::new(
            &plan.load,
            i,
            plan.clients,
            c.pipeline,
            ctx.start,
            ctx.end,
            Some(ctx.metrics.clone()),
        );
        tasks.spawn(client(c.clone(), ctx.clone(), i, pacer));
    }
}

async fn client(c: Arc<CommandsPlan>, ctx: Ctx, idx: u32, mut pacer: Pacer) {
    let mut rng = Rng::derive(ctx.seed, &ctx.metrics.id, idx as u64);
    let rec = ctx.metrics.recorder(idx as usize);
    let ops: Vec<usize> = c
        .mix
        .iter()
        .map(|(k, _)| ctx.metrics.op_index(k.name()))
        .collect();
    let total: u64 = c.mix.iter().map(|(_, w)| *w as u64).sum();
    let value = rng.alnum(c.value_bytes);
    let mut client = Client::new(ctx.client_route(Clients::All, idx));
    let mut buf = Vec::with_capacity(256 * c.pipeline);
    let mut picked: Vec<usize> = Vec::with_capacity(c.pipeline);
    let mut key = Vec::with_capacity(ctx.key_prefix.len() + 24);
    let mut key2 = Vec::with_capacity(ctx.key_prefix.len() + 24);
    let mut replies: Vec<Result<(), ErrorKind>> = Vec::with_capacity(c.pipeline);
    while let Some(intended) = pacer.next(&ctx.cancel).await {
        buf.clear();
        picked.clear();
        for _ in 0..c.pipeline {
            let mut r = rng.below(total);
            let mut which = 0;
            for (i, (_, w)) in c.mix.iter().enumerate() {
                if r < *w as u64 {
                    which = i;
                    break;
                }
                r -= *w as u64;
            }
            picked.push(which);
            make_key(&mut key, &ctx.key_prefix, "key:", rng.below(c.keys));
            encode(
                c.mix[which].0,
                &key,
                &mut key2,
                &value,
                &ctx.key_prefix,
                &mut rng,
                c.keys,
                &mut buf,
            );
        }
        let sent = Instant::now();
        replies.clear();
        match client.conn().await {
            Ok(conn) => {
                if let Err(e) = conn.pipeline_status(&buf, picked.len(), &mut replies).await {
                    client.reset();
                    replies.clear();
                    replies.resize(picked.len(), Err(e.kind));
                }
            }
            Err(e) => replies.resize(picked.len(), Err(e.kind)),
        }
        let end = Instant::now();
        let start = if pacer.is_open() { intended } else { sent };
        rec.record_all(
            start,
            sent,
            end,
            picked
                .iter()
                .zip(replies.iter())
                .map(|(w, r)| (ops[*w], *r)),
        );
    }
}

fn make_key(key: &mut Vec<u8>, prefix: &str, kind: &str, n: u64) {
    key.clear();
    key.extend_from_slice(prefix.as_bytes());
    key.extend_from_slice(kind.as_bytes());
    push_uint(key, n);
}

#[allow(clippy::too_many_arguments)]
fn encode(
    kind: CommandKind,
    key: &[u8],
    key2: &mut Vec<u8>,
    value: &[u8],
    prefix: &str,
    rng: &mut Rng,
    keys: u64,
    out: &mut Vec<u8>,
) {
    use CommandKind::*;
    // Drawn for every command (as always), formatted only where it is used.
    let member_n = rng.below(1000);
    let mut mbuf = [0u8; 20];
    let member = uint_digits(&mut mbuf, member_n);
    match kind {
        Get => encode_args(&[b"GET", key], out),
        Set => encode_args(&[b"SET", key, value], out),
        Setex => encode_args(&[&b"SET"[..], key, value, b"EX", b"60"], out),
        Del => encode_args(&[b"DEL", key], out),
        Exists => encode_args(&[b"EXISTS", key], out),
        Incr => {
            make_key(key2, prefix, "ctr:", rng.below(keys));
            encode_args(&[b"INCR", &key2[..]], out)
        }
        Expire => encode_args(&[&b"EXPIRE"[..], key, b"300"], out),
        Mget => {
            make_key(key2, prefix, "key:", rng.below(keys));
            encode_args(&[b"MGET", key, &key2[..]], out)
        }
        Hset => {
            make_key(key2, prefix, "hash:", rng.below(keys));
            encode_args(&[b"HSET", &key2[..], member, value], out)
        }
        Hget => {
            make_key(key2, prefix, "hash:", rng.below(keys));
            encode_args(&[b"HGET", &key2[..], member], out)
        }
        Lpush | Rpush => {
            make_key(key2, prefix, "list:", rng.below(keys.min(1000)));
            encode_args(
                &[
                    if kind == Lpush {
                        &b"LPUSH"[..]
                    } else {
                        b"RPUSH"
                    },
                    &key2[..],
                    value,
                ],
                out,
            )
        }
        Lpop => {
            make_key(key2, prefix, "list:", rng.below(keys.min(1000)));
            encode_args(&[b"LPOP", &key2[..]], out)
        }
        Sadd => {
            make_key(key2, prefix, "set:", rng.below(keys));
            encode_args(&[b"SADD", &key2[..], member], out)
        }
        Zadd => {
            make_key(key2, prefix, "zset:", rng.below(keys.min(1000)));
            let mut sbuf = [0u8; 20];
            let score = uint_digits(&mut sbuf, rng.below(1_000_000));
            encode_args(&[b"ZADD", &key2[..], score, member], out)
        }
        Zrange => {
            make_key(key2, prefix, "zset:", rng.below(keys.min(1000)));
            encode_args(&[&b"ZRANGE"[..], &key2[..], b"0", b"9"], out)
        }
        Publish => {
            make_key(key2, prefix, "chan:", rng.below(16));
            encode_args(&[b"PUBLISH", &key2[..], value], out)
        }
        Ping => encode_args(&[b"PING"], out),
    }
}
