#!/usr/bin/env python3
"""Turns bench/out/raw.tsv (written by bench/run.sh) into the markdown report.

usage: report.py OUTDIR MANIFEST.tsv
MB = 10^6 bytes; MiB (peak RSS only) = 2^20 bytes.
"""
import csv
import os
import sys
from collections import defaultdict

from reportlib import fmt, print_other_load, print_notes, print_run_header, ratio_fmt, read_meta, read_notes

SERIES_TITLES = {
    "synthetic-random": "synthetic, random (incompressible)",
    "synthetic-text": "synthetic, text (compressible)",
    "pg-spread": "pg_dump series \"spread\": updates all over the table (compression dominates)",
    "pg-hot": "pg_dump series \"hot\": updates to a hot subset plus appends (dedup dominates)",
}


def variant_order(v):
    fam = ["bunker", "borg", "restic", "zstd-openssl"]
    base = v.split("-")[0] if not v.startswith("zstd") else "zstd-openssl"
    size = 0
    if "-" in v and v[-1] == "K":
        size = int(v.rsplit("-", 1)[1][:-1])
    return (fam.index(base) if base in fam else 9, size, v)


def main():
    out, manifest = sys.argv[1], sys.argv[2]
    rows = list(csv.DictReader(open(os.path.join(out, "raw.tsv")), delimiter="\t"))
    m = read_meta(os.path.join(out, "meta.tsv"))
    notes = read_notes(os.path.join(out, "notes.txt"))
    man = list(csv.DictReader(open(manifest), delimiter="\t"))

    p = print
    timed = [r for r in rows if r["op"] in ("backup", "rebackup", "restore")]
    p("# bunker benchmark")
    p()
    print_run_header(p, m)
    for k in ("bunker", "borg", "borg-64K", "restic", "zstd-openssl", "postgresql"):
        if k in m:
            p(f"- {k}: {m[k]}")
    print_other_load(p, timed, lambda r: f"{r['series']} {r['variant']} {r['op']}")
    p()
    p("MB = 10^6 bytes, MB/s = logical (input) MB per wall-clock second, peak RSS in MiB "
      "(largest single process). new = first backup into an empty repository (dump 1); "
      "later = dumps 2..N of the series, together; seen = the last file backed up a second "
      "time; restore = the last file written back to a file; stored = repository size on "
      "disk after the N backups (before the re-backup), apparent bytes of everything in "
      "the repository directory. Ratio rows divide the first tool's figure by the "
      "second's: above 1 is faster for speeds, below 1 is smaller for stored bytes, RSS and CPU. "
      "backup CPU s/GB = user+system CPU seconds of all the series' backups per GB of input "
      "(all threads and processes of the tool): less sensitive to other load than MB/s.")
    p()

    # data table
    p("## Data")
    p()
    p("| series | files | MB each | logical MB | zstd -3 ratio |")
    p("|---|---|---|---|---|")
    by_series = defaultdict(list)
    for r in man:
        by_series[r["series"]].append(r)
    for s, rs in by_series.items():
        sizes = [int(r["bytes"]) for r in rs]
        z = sum(int(r["zstd3_bytes"]) for r in rs)
        each = (f"{min(sizes) / 1e6:.1f}" if min(sizes) == max(sizes)
                else f"{min(sizes) / 1e6:.1f}-{max(sizes) / 1e6:.1f}")
        p(f"| {s} | {len(rs)} | {each} | {sum(sizes) / 1e6:.1f} | {sum(sizes) / z:.2f} |")
    p()

    # measurements
    data = defaultdict(lambda: defaultdict(list))
    for r in rows:
        data[(r["series"], r["variant"])][r["op"]].append(r)
    series_seen = []
    for r in rows:
        if r["series"] not in series_seen:
            series_seen.append(r["series"])

    def speed(rs):
        ok = [r for r in rs if r["status"] in ("ok", "mismatch")]
        if not rs:
            return None
        if len(ok) < len(rs):
            return "FAILED"
        b = sum(int(r["bytes"]) for r in ok)
        t = sum(float(r["seconds"]) for r in ok)
        return b / 1e6 / t if t > 0 else None

    for s in series_seen:
        variants = sorted({v for (ss, v) in data if ss == s}, key=variant_order)
        p(f"## {SERIES_TITLES.get(s, s)}")
        p()
        p("| tool | backup MB/s new | backup MB/s later | backup MB/s seen | restore MB/s "
          "| stored MB | stored/logical | peak RSS MiB | backup CPU s/GB |")
        p("|---|---|---|---|---|---|---|---|---|")
        figs = {}
        for v in variants:
            d = data[(s, v)]
            if d.get("init"):
                figs[v] = None
                p(f"| {v} | init failed | | | | | | | |")
                continue
            backups = d.get("backup", [])
            new = speed([r for r in backups if r["index"] == "1"])
            later = speed([r for r in backups if r["index"] != "1"])
            seen = speed(d.get("rebackup", []))
            rest = speed(d.get("restore", []))
            if d.get("restore") and d["restore"][0]["status"] == "mismatch":
                rest = "WRONG DATA"
            stored = int(d["stored"][0]["bytes"]) if d.get("stored") else None
            logical = int(d["logical"][0]["bytes"]) if d.get("logical") else None
            rss = max((int(r["peak_rss_kib"] or 0) for op in ("backup", "rebackup", "restore")
                       for r in d.get(op, [])), default=None)
            cpu_b = sum(int(r["bytes"]) for r in backups)
            cpu = (sum(float(r.get("cpu_seconds") or 0) for r in backups) / (cpu_b / 1e9)
                   if cpu_b and all(r["status"] == "ok" for r in backups) else None)
            f = dict(new=new, later=later, seen=seen, restore=rest, cpu=cpu,
                     stored=stored / 1e6 if stored is not None else None,
                     ratio=stored / logical if stored and logical else None,
                     rss=rss / 1024 if rss is not None else None)
            figs[v] = f
            p(f"| {v} | {fmt(f['new'])} | {fmt(f['later'])} | {fmt(f['seen'])} "
              f"| {fmt(f['restore'])} | {fmt(f['stored'])} "
              f"| {fmt(f['ratio'], 3) if f['ratio'] is not None else 'n/a'} "
              f"| {fmt(f['rss'], 0)} | {fmt(f['cpu'], 2)} |")
        pairs = [(v, "borg") for v in variants if v.startswith("bunker-")]
        if "bunker-64K" in figs and "borg-64K" in figs:
            pairs.append(("bunker-64K", "borg-64K"))
        for a, b in pairs:
            fa, fb = figs.get(a), figs.get(b)
            if not fa or not fb:
                continue
            p(f"| *{a} / {b}* | {ratio_fmt(fa['new'], fb['new'])} "
              f"| {ratio_fmt(fa['later'], fb['later'])} | {ratio_fmt(fa['seen'], fb['seen'])} "
              f"| {ratio_fmt(fa['restore'], fb['restore'])} "
              f"| {ratio_fmt(fa['stored'], fb['stored'])} | {ratio_fmt(fa['ratio'], fb['ratio'])} "
              f"| {ratio_fmt(fa['rss'], fb['rss'])} | {ratio_fmt(fa['cpu'], fb['cpu'])} |")
        extra = []
        for v in variants:
            d = data[(s, v)]
            if d.get("stats-stored") and d["stats-stored"][0]["bytes"]:
                extra.append(f"{v}: stats stored_bytes {int(d['stats-stored'][0]['bytes']) / 1e6:.1f} MB, "
                             f"data/ {int(d['data-dir'][0]['bytes'] or 0) / 1e6:.1f} MB")
        if extra:
            p()
            p("bunker's own accounting: " + "; ".join(extra) + ".")
        p()

    chunker = os.path.join(out, "chunker.txt")
    if os.path.exists(chunker):
        p("## Chunker alone (bench/bench-chunker, release build)")
        p()
        p("```")
        p(open(chunker).read().rstrip())
        p("```")
        p()
    print_notes(p, notes)


if __name__ == "__main__":
    main()
