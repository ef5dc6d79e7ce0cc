#!/usr/bin/env python3
"""Turns bench/out/pg-raw.tsv (written by bench/pg-bench.sh) into the markdown report.

usage: pg-report.py OUTDIR
MB = 10^6 bytes; MiB (peak RSS only) = 2^20 bytes.
"""
import csv
import math
import os
import sys
from collections import defaultdict

from reportlib import fmt, print_other_load, print_notes, print_run_header, ratio, read_meta, read_notes

TOOLS = ("bunker", "pgbackrest")
NAMES = {"bunker": "bunker", "pgbackrest": "pgBackRest"}
# targets of the issue
WALPUSH_P50_MS = 60.0
SPEED_RATIO = 1.5
INCR_RATIO = 1.0


def quantile(sorted_vals, q):
    """nearest rank: the smallest value with at least q of the values at or below it"""
    if not sorted_vals:
        return None
    return sorted_vals[max(0, math.ceil(q * len(sorted_vals)) - 1)]


def main():
    out = sys.argv[1]
    rows = list(csv.DictReader(open(os.path.join(out, "pg-raw.tsv")), delimiter="\t"))
    meta = read_meta(os.path.join(out, "pg-meta.tsv"))
    notes = read_notes(os.path.join(out, "pg-notes.txt"))

    d = defaultdict(list)
    for r in rows:
        d[(r["step"], r["tool"], r["op"])].append(r)

    def one(step, tool, op, field="bytes"):
        rs = d.get((step, tool, op))
        if not rs or rs[0]["status"] != "ok" or rs[0][field] in ("", None):
            return None
        return float(rs[0][field])

    def timed(step, tool, op, index=None):
        """(seconds, bytes, rss KiB, cpu s) of a single timed command (the first, or the
        one of that index), or 'FAILED'"""
        rs = [r for r in d.get((step, tool, op), []) if index is None or r["index"] == index]
        if not rs:
            return None
        r = rs[0]
        if r["status"] != "ok":
            return "FAILED"
        return (float(r["seconds"]), int(r["bytes"]), int(r["peak_rss_kib"] or 0),
                float(r["cpu_seconds"] or 0))

    p = print
    timed_ops = [r for r in rows if r["op"] in ("push", "basebackup", "backup", "restore")]
    p("# bunker against pgBackRest on PostgreSQL 15")
    p()
    print_run_header(p, meta)
    if "cluster" in meta:
        cb, zb, acc, notes_b = (int(x) for x in meta["cluster"].split())
        p(f"- cluster: {cb / 1e6:,.0f} MB without pg_wal (pgbench_accounts {acc / 1e6:,.0f} MB, "
          f"notes {notes_b / 1e6:,.0f} MB, with indexes); zstd -3 of the whole data directory "
          f"(tar) compresses it {cb / max(zb, 1):.1f}x")
    p(f"- bunker: {meta.get('bunker', '?')}; repository: {meta.get('bunker-repo', '?')}")
    if "pgbackrest" in meta:
        p(f"- pgBackRest: {meta['pgbackrest']} (Debian package): compress-type=zst (level 3), "
          "repo1-cipher-type=aes-256-cbc, process-max=2, repo1-bundle=y"
          + (", repo1-block=y (beta=y)" if "block" in meta.get("pgbr-options", "") else ""))
    p(f"- postgresql: {meta.get('postgresql', '?')}")
    print_other_load(p, timed_ops,
                     lambda r: f"{r['step']} {r['tool']} {r['op']} {r['index']}")
    p()
    p("MB = 10^6 bytes, MB/s = the cluster's size (data directory without pg_wal, apparent "
      "bytes) per wall-clock second of the command (process start-up included), peak RSS in "
      "MiB (largest single process, as `/usr/bin/time -f %M`), CPU = user + system seconds of "
      "the command and all its processes. Every command runs as the server's OS user. "
      "Before each timed base backup the data directory (but pg_wal), and before each "
      "restore the tool's repository, is read once, untimed, into the page cache: this "
      "kernel pages out page cache left idle for about 30 s (DAMON), which made whichever "
      "command came first after a pause read from disk. "
      "Ratio rows divide bunker's figure by pgBackRest's.")
    p()

    # ------------------------------------------------------------ wal-push
    p("## 1. WAL archiving: one 16 MiB segment per process")
    p()
    if "segments" in meta:
        n, nl, no, al, ao, z = (int(x) for x in meta["segments"].split())
        p(f"{n} completed segments copied aside while the data loaded and pgbench ran: {nl} "
          f"of the {al} the load wrote (COPY, index builds, VACUUM FREEZE), {no} of the {ao} "
          f"of `pgbench -c 4 -j 2` (full-page images and small records), spread evenly; zstd "
          f"-3 compresses the set {n * 16777216 / max(z, 1):.1f}x. Each tool pushes them one "
          "by one into its own fresh repository on the same disk (`bunker pg wal-push` / "
          "`pgbackrest archive-push`, both run by hand as the archive_command would), "
          "alternating which tool goes first. Time = process start to exit.")
        p()
    p("| tool | segments | p50 ms | p90 ms | mean ms | max ms | CPU ms/segment | peak RSS MiB "
      "| stored MB/segment |")
    p("|---|---|---|---|---|---|---|---|---|")
    wp = {}
    for t in TOOLS:
        rs = d.get(("walpush", t, "push"), [])
        if not rs:
            continue
        ok = [r for r in rs if r["status"] == "ok"]
        ms = sorted(float(r["seconds"]) * 1000 for r in ok)
        f = dict(n=len(ok), bad=len(rs) - len(ok), p50=quantile(ms, 0.5), p90=quantile(ms, 0.9),
                 mean=sum(ms) / len(ms) if ms else None, max=ms[-1] if ms else None,
                 cpu=(sum(float(r["cpu_seconds"] or 0) for r in ok) * 1000 / len(ok)) if ok else None,
                 rss=max((int(r["peak_rss_kib"] or 0) for r in ok), default=0) / 1024 if ok else None)
        st = one("walpush", t, "stored")
        f["stored"] = st / 1e6 / len(ok) if st is not None and ok else None
        wp[t] = f
        segs = f"{f['n']}" + (f" (**{f['bad']} FAILED**)" if f["bad"] else "")
        p(f"| {NAMES[t]} | {segs} | {fmt(f['p50'])} | {fmt(f['p90'])} | {fmt(f['mean'])} "
          f"| {fmt(f['max'])} | {fmt(f['cpu'])} | {fmt(f['rss'], 0)} | {fmt(f['stored'], 2)} |")
    if len(wp) == 2:
        a, b = wp["bunker"], wp["pgbackrest"]
        p("| *bunker / pgBackRest* | | " + " | ".join(
            fmt(ratio(a[k], b[k]), 2) + ("x" if ratio(a[k], b[k]) is not None else "")
            for k in ("p50", "p90", "mean", "max", "cpu", "rss", "stored")) + " |")
    p()

    # ------------------------------------------------------------ base backups
    p("## 2-3. Base backups: full, then incremental after light changes")
    p()
    p(f"bunker: `bunker pg basebackup --dbname ... --fast-checkpoint` (over a replication "
      f"connection; every base backup is a full one, deduplicated against the repository). "
      f"pgBackRest: `pgbackrest backup --type=full`, then `--type=incr` (reads the data "
      f"directory from disk, start-fast=y). Between the two: {meta.get('light', '?')} "
      f"transactions of `pgbench -c 2 -R {meta.get('light-tps', '?')} -T "
      f"{meta.get('light-secs', '?')}`. Repository growth = `du -sb` of the whole repository "
      "directory after minus before (WAL archived meanwhile included, a segment or two for "
      "each tool); own account = bunker's `--json` stored_bytes, pgBackRest's `info` "
      "repository delta. The full backups run twice: bunker then pgBackRest, then "
      "pgBackRest then bunker (bunker's second into a repository of its own, which the "
      "archiver also feeds during round 2 only); seconds, MB/s and CPU s of the full rows are the means of the "
      "two rounds (round 1 / round 2 in brackets), the sizes are round 1's.")
    p()
    p("| tool | backup | seconds | MB/s | repository growth MB | own account MB | peak RSS MiB "
      "| CPU s |")
    p("|---|---|---|---|---|---|---|---|")
    bb = {}
    for step in ("full", "incr"):
        for t in TOOLS:
            op = "basebackup" if t == "bunker" else "backup"
            tm = timed(step, t, op)
            if tm is None:
                continue
            if tm == "FAILED":
                bb[(step, t)] = None
                p(f"| {NAMES[t]} | {step} | **FAILED** | | | | | |")
                continue
            secs, nbytes, rss, cpu = tm
            rounds = ""
            again = timed(step, t, op, "2")
            if again == "FAILED":
                rounds = f" ({fmt(secs)} / FAILED)"
            elif again:
                rounds = f" ({fmt(secs)} / {fmt(again[0])})"
                secs, cpu, rss = (secs + again[0]) / 2, (cpu + again[3]) / 2, max(rss, again[2])
            g = one(step, t, "repo-growth")
            own = one(step, t, "stored-own")
            f = dict(secs=secs, mbs=nbytes / 1e6 / secs if secs > 0 else None,
                     growth=g / 1e6 if g is not None else None,
                     own=own / 1e6 if own is not None else None, rss=rss / 1024, cpu=cpu)
            bb[(step, t)] = f
            p(f"| {NAMES[t]} | {step} | {fmt(secs)}{rounds} | {fmt(f['mbs'])} | {fmt(f['growth'])} "
              f"| {fmt(f['own'])} | {fmt(f['rss'], 0)} | {fmt(cpu)} |")
        a, b = bb.get((step, "bunker")), bb.get((step, "pgbackrest"))
        if a and b:
            p(f"| *bunker / pgBackRest* | {step} | {fmt(ratio(a['secs'], b['secs']), 2)}x "
              f"| {fmt(ratio(a['mbs'], b['mbs']), 2)}x | {fmt(ratio(a['growth'], b['growth']), 2)}x "
              f"| {fmt(ratio(a['own'], b['own']), 2)}x | {fmt(ratio(a['rss'], b['rss']), 2)}x "
              f"| {fmt(ratio(a['cpu'], b['cpu']), 2)}x |")
    p()

    # ------------------------------------------------------------ restore
    p("## 4. Restore and recovery")
    p()
    p("The newest backup (the incremental one) restored into a new directory "
      "(`bunker pg restore --target DIR`, no target: to the end of the archived WAL; "
      "`pgbackrest restore --pg1-path DIR`, default type), then a server started on it "
      "(`pg_ctl start -w`, own socket, archive_mode off) and polled until "
      "`pg_is_in_recovery()` is false. Both replay the same WAL (every segment went to both "
      "archives) from their own backup's start. Then a second round of the restore alone, in "
      "the other order (pgBackRest, then bunker), each into a new directory: a restore right "
      "after another one costs much more system time here, whichever tool it is. restore s, "
      "MB/s and CPU s are the means of the two rounds (round 1 / round 2 in brackets); "
      "restore MB/s = cluster size / restore seconds. tables = the restored tables against "
      "the original's final state (row counts and sums).")
    p()
    p("| tool | restore s | restore MB/s | restored MB | start to connections s "
      "| start to end of recovery s | restore + recovery s | peak RSS MiB | CPU s | tables |")
    p("|---|---|---|---|---|---|---|---|---|---|")
    rr = {}
    for t in TOOLS:
        tm = timed("restore", t, "restore", "1")
        if tm is None:
            continue
        if tm == "FAILED":
            rr[t] = None
            p(f"| {NAMES[t]} | **FAILED** | | | | | | | | |")
            continue
        secs, nbytes, rss, cpu = tm
        rounds = f"{fmt(secs)}"
        again = timed("restore", t, "restore", "2")
        if again == "FAILED":
            rounds += " / FAILED"
        elif again:
            rounds += f" / {fmt(again[0])}"
            secs, cpu, rss = (secs + again[0]) / 2, (cpu + again[3]) / 2, max(rss, again[2])
        rb = one("restore", t, "restored-bytes")
        ready = one("restore", t, "ready", "seconds")
        recov = d.get(("restore", t, "recovery"))
        rec_s = float(recov[0]["seconds"]) if recov and recov[0]["status"] == "ok" else None
        ver = d.get(("restore", t, "verify"))
        ver_s = ver[0]["status"] if ver else ("server did not recover" if recov else "n/a")
        if ver_s == "mismatch":
            ver_s = "**WRONG DATA**"
        f = dict(secs=secs, mbs=nbytes / 1e6 / secs if secs > 0 else None,
                 rec=rec_s, total=secs + rec_s if rec_s is not None else None,
                 rss=rss / 1024, cpu=cpu, ready=ready)
        rr[t] = f
        p(f"| {NAMES[t]} | {fmt(secs)} ({rounds}) | {fmt(f['mbs'])} "
          f"| {fmt(rb / 1e6 if rb else None)} "
          f"| {fmt(ready, 2)} | {fmt(rec_s if rec_s is not None else 'FAILED', 2)} "
          f"| {fmt(f['total'])} | {fmt(f['rss'], 0)} | {fmt(cpu)} | {ver_s} |")
    a, b = rr.get("bunker"), rr.get("pgbackrest")
    if a and b:
        p(f"| *bunker / pgBackRest* | {fmt(ratio(a['secs'], b['secs']), 2)}x "
          f"| {fmt(ratio(a['mbs'], b['mbs']), 2)}x | | {fmt(ratio(a['ready'], b['ready']), 2)}x "
          f"| {fmt(ratio(a['rec'], b['rec']), 2)}x | {fmt(ratio(a['total'], b['total']), 2)}x "
          f"| {fmt(ratio(a['rss'], b['rss']), 2)}x | {fmt(ratio(a['cpu'], b['cpu']), 2)}x | |")
    p()

    # ------------------------------------------------------------ targets
    p("## Targets (issue)")
    p()
    p("| target | bunker | pgBackRest | bunker / pgBackRest | goal | met |")
    p("|---|---|---|---|---|---|")

    def met(ok):
        return "n/a" if ok is None else ("yes" if ok else "**NO**")

    w = wp.get("bunker")
    wb = wp.get("pgbackrest")
    if w:
        r = ratio(w["p50"], wb["p50"]) if wb else None
        p(f"| wal-push p50 ms | {fmt(w['p50'])} | {fmt(wb['p50']) if wb else 'n/a'} "
          f"| {fmt(r, 2)}{'x' if r else ''} | bunker <= {WALPUSH_P50_MS:.0f} ms "
          f"| {met(w['p50'] <= WALPUSH_P50_MS if w['p50'] is not None and not w['bad'] else False)} |")
    for label, x, key, goal, cmp in (
            ("full base backup MB/s", bb.get(("full", "bunker")), "mbs", SPEED_RATIO, "ge"),
            ("incremental base backup, repository growth MB", bb.get(("incr", "bunker")),
             "growth", INCR_RATIO, "le"),
            ("restore MB/s", rr.get("bunker"), "mbs", SPEED_RATIO, "ge")):
        step = "full" if label.startswith("full") else "incr"
        y = (bb.get((step, "pgbackrest")) if "backup" in label else rr.get("pgbackrest"))
        a_ = x[key] if x else None
        b_ = y[key] if y else None
        r = ratio(a_, b_)
        ok = None if r is None else (r >= goal if cmp == "ge" else r <= goal)
        if x is None and (("full", "bunker") in bb or ("incr", "bunker") in bb or "bunker" in rr):
            ok = False
        p(f"| {label} | {fmt(a_) if x else 'FAILED'} | {fmt(b_)} | {fmt(r, 2)}{'x' if r else ''} "
          f"| {'>=' if cmp == 'ge' else '<='} {goal:.1f}x | {met(ok)} |")
    if w and wb:
        r = ratio(w["cpu"], wb["cpu"])
        p(f"| wal-push CPU ms/segment (no target; steadier under load) | {fmt(w['cpu'])} "
          f"| {fmt(wb['cpu'])} | {fmt(r, 2)}x | | |")
    a, b = bb.get(("incr", "bunker")), bb.get(("incr", "pgbackrest"))
    if a and b:
        r = ratio(a["mbs"], b["mbs"])
        p(f"| incremental base backup MB/s (no target) | {fmt(a['mbs'])} | {fmt(b['mbs'])} "
          f"| {fmt(r, 2)}x | | |")
    a, b = rr.get("bunker"), rr.get("pgbackrest")
    if a and b and a["total"] and b["total"]:
        r = ratio(a["total"], b["total"])
        p(f"| restore + recovery s (no target) | {fmt(a['total'])} | {fmt(b['total'])} "
          f"| {fmt(r, 2)}x | | |")
    for step, label in (("full", "full base backup"), ("incr", "incremental base backup")):
        a, b = bb.get((step, "bunker")), bb.get((step, "pgbackrest"))
        if a and b:
            r = ratio(a["cpu"], b["cpu"])
            p(f"| {label} CPU s (no target) | {fmt(a['cpu'])} | {fmt(b['cpu'])} "
              f"| {fmt(r, 2)}x | | |")
    a, b = rr.get("bunker"), rr.get("pgbackrest")
    if a and b:
        r = ratio(a["cpu"], b["cpu"])
        p(f"| restore CPU s (no target) | {fmt(a['cpu'])} | {fmt(b['cpu'])} | {fmt(r, 2)}x | | |")
    p()
    chk = d.get(("check", "bunker", "check"))
    if chk:
        p(f"`bunker check` on the repository after the run: "
          f"{'ok' if chk[0]['status'] == 'ok' else '**FAILED** (' + chk[0]['status'] + ')'}.")
    p("Peak RSS of each bunker command (MiB): " + ", ".join(
        f"{k} {fmt(v, 0)}" for k, v in (
            ("wal-push", w["rss"] if w else None),
            ("basebackup full", (bb.get(("full", "bunker")) or {}).get("rss")),
            ("basebackup incremental", (bb.get(("incr", "bunker")) or {}).get("rss")),
            ("restore", (rr.get("bunker") or {}).get("rss"))) if v is not None) + ".")
    p()
    print_notes(p, notes)


if __name__ == "__main__":
    main()
