"""A real Dramatiq worker (RedisBroker) for the interop tests.

usage: dramatiq_worker.py URL QUEUE MODE RECORD_KEY STOP_KEY TIMEOUT_S [MAX_RETRIES [WORK_MS]]

Declares actor `record` on QUEUE. MODE `record`: the actor sleeps WORK_MS (default 0), then
RPUSHes "<message_id> <retries>" to RECORD_KEY. MODE `fail`: it always raises (Retries
middleware: MAX_RETRIES, 10-50ms backoff). Runs a 4-thread Worker, sets STOP_KEY + ".ready" once
started, stops gracefully when STOP_KEY exists. Exits 3 if STOP_KEY did not appear within
TIMEOUT_S.
"""

import logging
import sys
import time

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

url, queue, mode, record_key, stop_key, timeout_s = sys.argv[1:7]
max_retries = int(sys.argv[7]) if len(sys.argv) > 7 else 0
work_s = int(sys.argv[8]) / 1000.0 if len(sys.argv) > 8 else 0.0
assert mode in ("record", "fail"), mode
logging.basicConfig(
    level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
)

r = redis.Redis.from_url(url)
broker = RedisBroker(url=url)
broker.add_middleware(CurrentMessage())
dramatiq.set_broker(broker)


def record(*args, **kwargs):
    if mode == "fail":
        raise RuntimeError("interop: this actor always fails")
    m = CurrentMessage.get_current_message()
    if work_s:
        time.sleep(work_s)
    r.rpush(record_key, "%s %d" % (m.message_id, m.options.get("retries", 0)))


dramatiq.actor(
    record,
    actor_name="record",
    queue_name=queue,
    broker=broker,
    max_retries=max_retries,
    min_backoff=10,
    max_backoff=50,
)

print("dramatiq", dramatiq.__version__, "redis", redis.__version__, flush=True)
worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=100)
worker.start()
r.set(stop_key + ".ready", 1)
deadline = time.monotonic() + float(timeout_s)
code = 0
while not r.exists(stop_key):
    if time.monotonic() > deadline:
        print("timeout: %s never appeared" % stop_key, flush=True)
        code = 3
        break
    time.sleep(0.05)
worker.stop(timeout=10000)
print("stopped", flush=True)
sys.exit(code)
