#!/usr/bin/env python3
"""Track B coverage of an archive, from the files alone (issue 13's "done when").

    python3 tools/scalp_coverage.py DATA_DIR [--settle-ms 5000] [--dark-s 30]

Splits each symbol's samples into stays in its slot (a pause longer than two sampling
intervals ends a stay) and prints: samples, the share with data (quality_flag not
`no_data`) after each stay's first --settle-ms, stays of --dark-s or more with no fresh
sample (neither `no_data` nor `stale`), and the recording rate the session_end counters
imply ((written - no_data) / due), which must equal the exit summary's.
"""
import argparse
import collections
import datetime
import json
import pathlib
import sys


def ms(s):
    return int(datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000)


def lines(root):
    for p in sorted(root.rglob("*.jsonl")):
        with open(p) as f:
            for line in f:
                yield json.loads(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=pathlib.Path)
    ap.add_argument("--settle-ms", type=int, default=5000)
    ap.add_argument("--dark-s", type=int, default=30)
    a = ap.parse_args()
    by_symbol = collections.defaultdict(list)
    flags = collections.Counter()
    for s in lines(a.data_dir / "scalp"):
        by_symbol[(s["provider"], s["symbol"])].append((ms(s["event_time"]), s["sample_interval_ms"], s["quality_flag"]))
        flags[s["quality_flag"]] += 1
    if not by_symbol:
        sys.exit(f"no scalp samples under {a.data_dir}")
    settled = with_data = stays = 0
    dark = []
    for key, samples in by_symbol.items():
        samples.sort()
        stay = []
        for i, smp in enumerate(samples + [None]):
            if smp is None or (stay and smp[0] - stay[-1][0] > 2 * smp[1]):
                stays += 1
                entered = stay[0][0]
                for t, _, q in stay:
                    if t >= entered + a.settle_ms:
                        settled += 1
                        with_data += q != "no_data"
                if (stay[-1][0] - entered) >= a.dark_s * 1000 and all(q in ("no_data", "stale") for _, _, q in stay):
                    dark.append((key, entered, len(stay)))
                stay = []
            if smp is not None:
                stay.append(smp)
    total = sum(flags.values())
    print(f"samples {total}: " + ", ".join(f"{k} {v}" for k, v in sorted(flags.items())))
    print(f"stays in a slot {stays}, symbols {len(by_symbol)}")
    print(f"settled samples (after {a.settle_ms} ms in the slot) with data: {with_data} of {settled} = {with_data / max(settled, 1):.4%}")
    print(f"stays of {a.dark_s} s or more without fresh data: {len(dark)}")
    for key, entered, n in dark[:20]:
        print(f"  {key[0]} {key[1]} from {datetime.datetime.fromtimestamp(entered / 1000, datetime.timezone.utc).isoformat()} ({n} samples)")
    ends = [e for e in lines(a.data_dir / "system/events") if e.get("event_type") == "session_end"]
    for e in ends:
        c = e["counters"]
        due = c["scalp_expected"]
        rate = (c["scalp_written"] - c["scalp_no_data"]) / due if due else float("nan")
        print(f"session {e['session_id']}: due {due}, written {c['scalp_written']}, no_data {c['scalp_no_data']}, "
              f"stale {c['scalp_stale']} -> recording rate {rate:.1%}")
    on_disk = (total - flags["no_data"]) / sum(e["counters"]["scalp_expected"] for e in ends) if ends else float("nan")
    print(f"on-disk recording rate (samples with data / due): {on_disk:.1%}")
    slot_dark = sum(1 for e in lines(a.data_dir / "system/events") if e.get("event_type") == "slot_dark")
    print(f"slot_dark events: {slot_dark}")


if __name__ == "__main__":
    main()
