"""What bench/report.py and bench/pg-report.py share: number formatting, ratios, the
run's metadata and notes, and the header lines about the machine and its other load.
"""


def fmt(x, digits=1):
    """a figure for a table: n/a for None, strings as they are, thousands grouped"""
    if x is None:
        return "n/a"
    if isinstance(x, str):
        return x
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def ratio(a, b):
    """a / b, or None when either is missing (None or a status string) or b is 0"""
    if a is None or b is None or isinstance(a, str) or isinstance(b, str) or b == 0:
        return None
    return a / b


def ratio_fmt(a, b):
    r = ratio(a, b)
    return "n/a" if r is None else f"{r:.2f}x"


def read_meta(path):
    """key \\t value lines, in order"""
    meta = {}
    for line in open(path):
        k, _, v = line.rstrip("\n").partition("\t")
        meta[k] = v
    return meta


def read_notes(path):
    return [n.strip() for n in open(path) if n.strip()]


def print_notes(p, notes):
    """the report's closing Notes section, if there are notes"""
    if notes:
        p("## Notes")
        p()
        for n in notes:
            p(f"- {n}")
        p()


def print_run_header(p, meta):
    """the date, machine and scale lines"""
    p(f"- date: {meta.get('date', '?')}, total run time {meta.get('duration', '?')}")
    p(f"- machine: {meta.get('machine', '?')}; disk {meta.get('disk', '?')}")
    p(f"- scale: {meta.get('scale', '?')}")


def print_other_load(p, timed_rows, describe):
    """the other load the harness measured while timed_rows ran, with a warning naming
    the worst row (describe(row) says which) when the machine was not idle"""
    wall = sum(float(r["seconds"]) for r in timed_rows)
    if wall <= 0:
        return
    other = sum(float(r.get("other_cpu_seconds") or 0) for r in timed_rows)
    busy = other / wall
    p(f"- other load: while the tools ran, the rest of the machine kept {busy:.2f} CPUs "
      f"busy on average (CPU busy time from /proc/stat minus the tool's own)")
    if busy > 0.15:
        worst = max(timed_rows, key=lambda r: float(r.get("other_cpu_seconds") or 0) /
                    max(float(r["seconds"]), 1e-3))
        wr = float(worst["other_cpu_seconds"]) / max(float(worst["seconds"]), 1e-3)
        p(f"- **warning: the machine was not idle** ({busy:.2f} CPUs on average, up to "
          f"{wr:.2f} during {describe(worst)}); speeds are unreliable, rerun on a quiet machine")
