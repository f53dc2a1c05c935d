"""Dramatiq `ConcurrentRateLimiter` holders sharing one key.

usage: limiter_holders.py URL KEY LIMIT THREADS DURATION_S OUT READY_FILE STOP_FILE

THREADS threads loop until STOP_FILE exists (at most DURATION_S) on
ConcurrentRateLimiter(RedisBackend(client=...), KEY, limit=LIMIT): when admitted, hold 2-10ms
and write "py <key> <from_ns> <to_ns>" to OUT (time.monotonic_ns(), inside the `with`); when
rejected, wait 5ms. READY_FILE is created just before the threads start. Prints "admitted=<n>
rejected=<n>".
"""

import os
import random
import sys
import threading
import time

import redis
from dramatiq.rate_limits import ConcurrentRateLimiter
from dramatiq.rate_limits.backends import RedisBackend

url, key, limit, threads, duration_s, out, ready, stop = sys.argv[1:9]
client = redis.Redis.from_url(url)
client.ping()
limiter = ConcurrentRateLimiter(RedisBackend(client=client), key, limit=int(limit))
holds, rejected = [], [0]
mu = threading.Lock()
deadline = time.monotonic() + float(duration_s)


def run(idx):
    rng = random.Random(idx)
    while time.monotonic() < deadline and not os.path.exists(stop):
        with limiter.acquire(raise_on_failure=False) as admitted:
            if admitted:
                t0 = time.monotonic_ns()
                time.sleep(rng.uniform(0.002, 0.010))
                t1 = time.monotonic_ns()
                with mu:
                    holds.append("py %s %d %d\n" % (key, t0, t1))
                continue
        with mu:
            rejected[0] += 1
        time.sleep(0.005)


open(ready, "w").close()
ts = [threading.Thread(target=run, args=(i,)) for i in range(int(threads))]
for t in ts:
    t.start()
for t in ts:
    t.join()
with open(out, "w") as f:
    f.write("".join(holds))
print("admitted=%d rejected=%d" % (len(holds), rejected[0]), flush=True)
