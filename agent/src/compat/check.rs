//! Every check the compat probe runs, in table order: its row name, how much it weighs and why
//! it matters for ECHO's clients, in one line. Running them lives in `probes.rs`.

use super::weight::Weight::{self, Behaviour as B, ErrorText as T, Info as I};

/// Every check, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    InfoRedisVersion,
    InfoValkeyVersion,
    InfoServerName,
    InfoMode,
    Resp2Default,
    Hello3,
    ClientSetinfo,
    Select1,
    Select2,
    AuthWrongPassword,
    Eval,
    EvalshaNoscript,
    NoscriptViaEval,
    NoscriptText,
    Undeclared,
    KeysInScript,
    Keys,
    LuaServerCall,
    LuaPcallError,
    LuaRedisVersion,
    Unpack,
    UnpackLimit,
    MultiExec,
    WatchAbort,
    SetNxPx,
    SetNxEx,
    SetnxExpire,
    Incr,
    Incrbyfloat,
    Pexpire,
    Zset,
    Lists,
    Brpoplpush,
    Sets,
    Hashes,
    Mget,
    Scan,
    Pubsub,
    ReadonlyStandalone,
    Lolwut,
    BusyScript,
    Loading,
    Misconf,
    ConfigExtendedCompat,
    ConfigMaxmemoryPolicy,
    ConfigTimeout,
    ConfigMaxclients,
}

impl Check {
    pub const ALL: [Check; 47] = [
        Check::InfoRedisVersion,
        Check::InfoValkeyVersion,
        Check::InfoServerName,
        Check::InfoMode,
        Check::Resp2Default,
        Check::Hello3,
        Check::ClientSetinfo,
        Check::Select1,
        Check::Select2,
        Check::AuthWrongPassword,
        Check::Eval,
        Check::EvalshaNoscript,
        Check::NoscriptViaEval,
        Check::NoscriptText,
        Check::Undeclared,
        Check::KeysInScript,
        Check::Keys,
        Check::LuaServerCall,
        Check::LuaPcallError,
        Check::LuaRedisVersion,
        Check::Unpack,
        Check::UnpackLimit,
        Check::MultiExec,
        Check::WatchAbort,
        Check::SetNxPx,
        Check::SetNxEx,
        Check::SetnxExpire,
        Check::Incr,
        Check::Incrbyfloat,
        Check::Pexpire,
        Check::Zset,
        Check::Lists,
        Check::Brpoplpush,
        Check::Sets,
        Check::Hashes,
        Check::Mget,
        Check::Scan,
        Check::Pubsub,
        Check::ReadonlyStandalone,
        Check::Lolwut,
        Check::BusyScript,
        Check::Loading,
        Check::Misconf,
        Check::ConfigExtendedCompat,
        Check::ConfigMaxmemoryPolicy,
        Check::ConfigTimeout,
        Check::ConfigMaxclients,
    ];

    /// The row name.
    pub fn name(self) -> &'static str {
        self.spec().0
    }

    pub fn weight(self) -> Weight {
        self.spec().1
    }

    /// Why the check matters for ECHO's clients, in one line.
    pub fn why(self) -> &'static str {
        self.spec().2
    }

    fn spec(self) -> (&'static str, Weight, &'static str) {
        use Check::*;
        match self {
            InfoRedisVersion => ("info redis_version", I,
                "Valkey pins it at 7.2.4; redis-py 5.0.6 and Dramatiq never read it, version checks elsewhere see 7.2.4"),
            InfoValkeyVersion => ("info valkey_version", I,
                "identifies Valkey and its real version; nothing in ECHO's stack reads it"),
            InfoServerName => ("info server_name", I,
                "valkey on Valkey, absent on Redis; nothing in ECHO's stack reads it"),
            InfoMode => ("info redis_mode", I,
                "Valkey 8+ reports server_mode instead of redis_mode; ECHO's clients never read it, monitoring that does sees nothing"),
            Resp2Default => ("resp2 default", B,
                "redis-py 5.0.6 and Dramatiq speak RESP2 without HELLO and parse array replies"),
            Hello3 => ("hello 3", B,
                "RESP3 for clients that ask for it (a redis-py upgrade); redis-py 5.0.6 never sends HELLO, a client checking server=redis sees valkey"),
            ClientSetinfo => ("client setinfo", I,
                "redis-py 5 sends CLIENT SETINFO on every connect and ignores a refusal"),
            Select1 => ("select 1", B,
                "Dramatiq's broker, results and barriers live in db 1 (REDIS_URL + \"/1\")"),
            Select2 => ("select 2", B,
                "the pipeline coordination counters and locks live in db 2"),
            AuthWrongPassword => ("auth wrong password", B,
                "a wrong password must be refused, or the database is open to anyone who reaches it"),
            Eval => ("eval", B,
                "Dramatiq's dispatch script and the lock and lease scripts run through EVAL/EVALSHA"),
            EvalshaNoscript => ("evalsha noscript recovery", B,
                "redis-py's Script (Dramatiq's broker, Lock) answers NOSCRIPT after a restart or failover with SCRIPT LOAD, then EVALSHA again"),
            NoscriptViaEval => ("evalsha noscript via eval", I,
                "clients that recover with EVAL (ioredis in Directus) rely on EVAL caching the script; redis-py uses SCRIPT LOAD"),
            NoscriptText => ("noscript error text", T,
                "redis-py maps the code NOSCRIPT to NoScriptError; Valkey drops 'Please use EVAL.', noticed only by code matching the text"),
            Undeclared => ("eval undeclared keys", B,
                "Dramatiq's dispatch script touches keys it does not declare (non-cluster only)"),
            KeysInScript => ("keys in script", B,
                "Dramatiq's maintenance (1 in 1000 fetches) calls KEYS inside its dispatch script: refused, the consumers crash"),
            Keys => ("keys", I,
                "ECHO's code uses SCAN; only Dramatiq calls KEYS, inside its script (row keys in script)"),
            LuaServerCall => ("lua server.call", I,
                "Valkey adds server.* beside redis.*; ECHO's and Dramatiq's scripts use redis.call, a script written with server.call breaks on Redis"),
            LuaPcallError => ("lua redis.pcall error", I,
                "a script that handles a failed call reads err from the table redis.pcall returns; Dramatiq's and ECHO's scripts do not"),
            LuaRedisVersion => ("lua redis.REDIS_VERSION", I,
                "Valkey pins it at 7.2.4 like INFO; no ECHO or Dramatiq script reads it"),
            Unpack => ("lua unpack 7992", B,
                "Dramatiq sizes its batches with a pcall(unpack) stack probe: 7992 values must unpack"),
            UnpackLimit => ("lua unpack limit", I,
                "the exact Lua stack limit; Dramatiq stays under it as long as 7992 works"),
            MultiExec => ("multi exec", B,
                "Dramatiq's results and group barriers use MULTI/EXEC pipelines"),
            WatchAbort => ("watch exec abort", B,
                "report barriers use WATCH/MULTI/EXEC and retry when EXEC returns nil"),
            SetNxPx => ("set nx px", B, "the barriers and redis-py's Lock take SET NX PX"),
            SetNxEx => ("set nx ex", B, "ECHO's hand-rolled locks and leases take SET NX EX"),
            SetnxExpire => ("setnx expire", B, "the coordination locks use SETNX then EXPIRE"),
            Incr => ("incr incrby decr", B,
                "the HTTP rate limits and the pending-chunk counters use INCR/INCRBY/DECR"),
            Incrbyfloat => ("incrbyfloat", B, "LiteLLM's spend counters use INCRBYFLOAT"),
            Pexpire => ("pexpire pttl", B, "Dramatiq's results and barriers expire with PEXPIRE"),
            Zset => ("zadd zremrange zrangebyscore", B,
                "delayed messages, monitor presence and the email throttle are sorted sets"),
            Lists => ("lpush lindex lpop rpush", B, "Dramatiq's queues and result lists are lists"),
            Brpoplpush => ("brpoplpush", B,
                "Dramatiq's blocking result fetch waits in BRPOPLPUSH"),
            Sets => ("sadd smembers srem", B, "Dramatiq keeps each worker's unacked messages in a set"),
            Hashes => ("hset hmget hdel", B, "Dramatiq keeps message bodies in hashes (.msgs)"),
            Mget => ("mget", B,
                "the monitor snapshot reads many unrelated keys in one MGET (non-cluster)"),
            Scan => ("scan match count", B, "finalize cleans db 2 with SCAN MATCH COUNT"),
            Pubsub => ("pubsub across dbs", B,
                "SSE streams subscribe in db 0 to what db 2 publishes"),
            ReadonlyStandalone => ("readonly readwrite standalone", I,
                "Valkey answers OK in standalone mode where Redis 7.0 refuses; redis-py sends READONLY only to cluster replicas and ECHO runs standalone"),
            Lolwut => ("lolwut banner", I,
                "Valkey 9 prints Valkey ver., Valkey 8.1 still Redis ver. with its own version; only people read it"),
            BusyScript => ("busy script error", T,
                "redis-py 5.0.6, Dramatiq and ECHO's code get BUSY as a plain ResponseError and match no text; code matching 'Redis is busy' breaks"),
            Loading => ("loading error", T,
                "redis-py maps the code LOADING to BusyLoadingError and ignores the text, which says Valkey on Valkey 8+ like BUSY"),
            Misconf => ("misconf error", T,
                "no ECHO client reads MISCONF's text, which says Valkey on Valkey 8+ like BUSY (ECHO's docs quote it for people)"),
            ConfigExtendedCompat => ("config extended-redis-compatibility", I,
                "yes makes Valkey 8+ answer as Redis (HELLO, redis_mode, error texts); absent on Redis"),
            ConfigMaxmemoryPolicy => ("config maxmemory-policy", I,
                "Dramatiq's keys have no TTL: an allkeys-* policy can evict queued messages"),
            ConfigTimeout => ("config timeout", I,
                "a non-zero timeout closes the scheduler's idle broker connection between crons"),
            ConfigMaxclients => ("config maxclients", I,
                "the headroom a rollout's reconnect storm needs"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_has_a_unique_name_and_one_line_why() {
        let mut names: Vec<&str> = Check::ALL.iter().map(|c| c.name()).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate check names");
        for c in Check::ALL {
            let w = c.why();
            assert!(
                !w.is_empty() && !w.contains('\n') && !w.ends_with('.'),
                "{c:?}: {w}"
            );
        }
    }
}
