#!/usr/bin/python3
"""kafka_stream.py - the expected outputs of a stream that went through Kafka.

    kafka_stream.py close IN OUT
        Copy the JSON-lines stream IN to OUT and append one "closing" purchase
        per merchant, two days of event time after the last record. posguard
        run never ends its input (only replay flushes at the end), so refund
        decisions still pending at the end of a partition are only taken when
        a later record moves that partition's event time past them; the
        closing records do that. Each is a unique charge (own card, terminal,
        stan, rrn) that no rule pairs with anything.

    kafka_stream.py expect IN PARTITIONS RULES OUT_PREFIX [oracle args...]
        Kafka keeps order per partition only, and the engine keeps event
        time, lateness and state per partition (DOMAIN.md). So the reference
        is the oracle run on each partition's records separately: IN is split
        by PARTITIONS ("LINE_NO PARTITION" lines from posguard produce
        --partitions-out), the oracle runs on every part, and the outputs
        and counters are summed into OUT_PREFIX.jsonl and OUT_PREFIX.stats.json.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DAY_MS = 86400000


def event_ms(v):
    if isinstance(v, int):
        return v
    from datetime import datetime
    return int(datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp() * 1000)


def close(src, dst):
    merchants, last = {}, 0
    with open(src, "rb") as f, open(dst, "wb") as out:
        for line in f:
            out.write(line if line.endswith(b"\n") else line + b"\n")
            try:
                o = json.loads(line)
                m, t = o["merchant_id"], event_ms(o["event_time"])
                if isinstance(m, str) and m and isinstance(t, int):
                    merchants.setdefault(m, True)
                    last = max(last, t)
            except Exception:
                pass
        t = last + 2 * DAY_MS
        for i, m in enumerate(sorted(merchants)):
            rec = {"txn_id": "close-%d" % i, "kind": "purchase",
                   "status": "approved", "merchant_id": m,
                   "terminal_id": "close-T%d" % i, "stan": "%06d" % (i % 1000000),
                   "rrn": "close-R%d" % i, "card_token": "tok_close_%d" % i,
                   "amount": 1, "currency": "EUR", "event_time": t}
            out.write(json.dumps(rec, separators=(",", ":")).encode() + b"\n")
    print("closed %d merchants at %d" % (len(merchants), t))


def expect(src, parts_file, rules, prefix, extra):
    where = {}
    with open(parts_file) as f:
        for line in f:
            n, p = line.split()
            where[int(n)] = int(p)
    parts = {}
    with open(src, "rb") as f:
        for n, line in enumerate(f, 1):
            if n not in where:
                sys.exit("line %d was not delivered (not in %s)" % (n, parts_file))
            parts.setdefault(where[n], []).append(line)
    total = {"rejected": 0, "duplicates": 0, "late": 0, "refunds": 0}
    with open(prefix + ".jsonl", "wb") as out:
        for p in sorted(parts):
            pin = "%s.p%d.jsonl" % (prefix, p)
            with open(pin, "wb") as f:
                f.writelines(parts[p])
            res = subprocess.run(
                ["/usr/bin/python3", os.path.join(HERE, "oracle", "oracle.py"),
                 "--rules", rules, "--input", pin, "--stats", pin + ".stats"]
                + extra, stdout=subprocess.PIPE, check=True)
            out.write(res.stdout)
            st = json.load(open(pin + ".stats"))
            for k in total:
                total[k] += st.get(k, 0)
    json.dump(total, open(prefix + ".stats.json", "w"))
    print("expected over %d partitions: %s" % (len(parts), total))


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "close":
        close(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 6 and sys.argv[1] == "expect":
        expect(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:])
    else:
        sys.exit(__doc__)
