#!/usr/bin/env python3
"""summarize.py DIR: per figure, the median over rounds of each library's
per-round median, and the ratio reign/peer: the median over rounds of the
ratio within each round (each round's runs are minutes apart at most, so a
within-round ratio sees the same load on both sides)."""
import glob
import json
import os
import re
import statistics
import sys

d = sys.argv[1]
vals = {}  # lib -> key -> {round: value}
for f in sorted(glob.glob(os.path.join(d, "r*-*.json"))):
    m = re.match(r"r(\d+)-(.+)\.json", os.path.basename(f))
    rnd, lib = int(m.group(1)), m.group(2)
    for k, v in json.load(open(f)).items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            vals.setdefault(lib, {}).setdefault(k, {})[rnd] = float(v)

keys = ["local_small_msgs_per_sec", "local_small_pingpong_p50_us", "local_small_pingpong_p99_us",
        "local_msgs_per_sec", "local_pingpong_p50_us", "local_pingpong_p99_us",
        "selective_small_1k_ns", "selective_1k_ns",
        "remote_msgs_per_sec", "remote_pingpong_p50_us", "remote_pingpong_p99_us",
        "tls_pingpong_p50_us", "tls_pingpong_p99_us"]
compared = [k for k in keys if k.startswith(("local_small", "remote_"))]
libs = ["reign"] + [l for l in ["hollywood", "protoactor", "goakt", "ergo"] if l in vals]
print("per figure: median over rounds of each round's median of its runs")
print(f"{'figure':30}" + "".join(f"{l:>12}" for l in libs))
for k in keys:
    if not any(k in vals.get(l, {}) for l in libs):
        continue
    row = f"{k:30}"
    for l in libs:
        v = vals.get(l, {}).get(k)
        row += f"{statistics.median(v.values()):>12.4g}" if v else f"{'-':>12}"
    print(row)
print()
print("reign / peer, median over rounds of the within-round ratio [min - max]")
print("(throughput: > 1 means reign is faster; latency: < 1 means reign is faster)")
print(f"{'figure':30}" + "".join(f"{l:>22}" for l in libs[1:]))
for k in compared:
    if k not in vals.get("reign", {}):
        continue
    row = f"{k:30}"
    for l in libs[1:]:
        pv = vals[l].get(k, {})
        rs = [vals["reign"][k][r] / pv[r] for r in sorted(pv) if r in vals["reign"][k]]
        cell = f"{statistics.median(rs):.3g} [{min(rs):.3g}-{max(rs):.3g}]" if rs else "-"
        row += f"{cell:>22}"
    print(row)
