#!/usr/bin/env python3
"""Shuffle a JSON-lines stream within an event-time bound, keeping the
input order of records that share an event time (ties are ordered by input,
so moving them apart would change the contract's answer).

usage: shuffle_within.py IN OUT MAX_MS SEED

Each distinct event time gets one random delay in [0, MAX_MS); lines are
stably sorted by time + delay. A record then arrives after records that are
at most MAX_MS later in event time, i.e. within the allowed lateness when
MAX_MS < allowed_lateness. Lines that are not records keep the time of the
line before them.
"""
import datetime
import json
import random
import sys


def event_ms(v):
    if isinstance(v, int):
        return v
    s = v.replace("Z", "+00:00")
    return int(datetime.datetime.fromisoformat(s).timestamp() * 1000)


def main():
    src, dst, max_ms, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    delay = {}
    rows = []
    t = 0
    with open(src, "rb") as f:
        for i, line in enumerate(f):
            try:
                t = event_ms(json.loads(line)["event_time"])
            except Exception:
                pass
            if t not in delay:
                delay[t] = rng.randrange(max_ms)
            rows.append((t + delay[t], i, line))
    rows.sort(key=lambda r: (r[0], r[1]))
    with open(dst, "wb") as f:
        for _, _, line in rows:
            f.write(line)


if __name__ == "__main__":
    main()
