"""Real Dramatiq producers: `actor.send()` and `actor.send_with_options(delay=...)`.

usage: dramatiq_send.py URL QUEUE N DELAYED_N DELAY_MS IDS_FILE

Sends N messages to actor `record` on QUEUE, then DELAYED_N with delay=DELAY_MS, and writes every
message_id to IDS_FILE (one per line).
"""

import sys

import dramatiq
from dramatiq.brokers.redis import RedisBroker

url, queue, n, delayed_n, delay_ms, ids_file = sys.argv[1:7]
broker = RedisBroker(url=url)
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="record", queue_name=queue)
def record(*args, **kwargs):
    raise AssertionError("producer only")


ids = []
for i in range(int(n)):
    ids.append(record.send("py-%d" % i).message_id)
for i in range(int(delayed_n)):
    ids.append(record.send_with_options(args=("py-delayed-%d" % i,), delay=int(delay_ms)).message_id)
with open(ids_file, "w") as f:
    f.write("".join(i + "\n" for i in ids))
print("sent", len(ids), flush=True)
