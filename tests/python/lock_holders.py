"""redis-py `Lock` holders competing for a few lock names.

usage: lock_holders.py URL KEY_PATTERN NAMES THREADS DURATION_S OUT READY_FILE STOP_FILE

THREADS threads loop until STOP_FILE exists (at most DURATION_S): pick a name (KEY_PATTERN with
{n} in 0..NAMES), acquire r.lock(name, timeout=5, sleep=0.01, blocking_timeout=5), hold 5-20ms,
release. Each hold is written to OUT as "py-<thread> <key> <from_ns> <to_ns>"
(time.monotonic_ns(): from when acquire returned to just before release). READY_FILE is created
just before the threads start. Exits 1 if a release found the lock no longer owned.
"""

import os
import random
import sys
import threading
import time

import redis

url, pattern, names, threads, duration_s, out, ready, stop = sys.argv[1:9]
r = redis.Redis.from_url(url)
r.ping()
holds, errors, timeouts = [], [], [0]
mu = threading.Lock()
deadline = time.monotonic() + float(duration_s)


def run(idx):
    rng = random.Random(idx)
    while time.monotonic() < deadline and not os.path.exists(stop):
        key = pattern.replace("{n}", str(rng.randrange(int(names))))
        lock = r.lock(key, timeout=5, sleep=0.01, blocking_timeout=5)
        if not lock.acquire():
            with mu:
                timeouts[0] += 1
            continue
        t0 = time.monotonic_ns()
        time.sleep(rng.uniform(0.005, 0.020))
        t1 = time.monotonic_ns()
        try:
            lock.release()
        except redis.exceptions.LockError as e:
            with mu:
                errors.append("%s: %r" % (key, e))
        with mu:
            holds.append("py-%d %s %d %d\n" % (idx, key, t0, t1))


open(ready, "w").close()
ts = [threading.Thread(target=run, args=(i,)) for i in range(int(threads))]
for t in ts:
    t.start()
for t in ts:
    t.join()
with open(out, "w") as f:
    f.write("".join(holds))
print("holds=%d timeouts=%d errors=%d" % (len(holds), timeouts[0], len(errors)), flush=True)
for e in errors:
    print(e, file=sys.stderr)
sys.exit(1 if errors else 0)
