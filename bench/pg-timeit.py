#!/usr/bin/env python3
"""Times one command for bench/pg-bench.sh, the way bench/run.sh's measure() does.

usage: pg-timeit.py STEP TOOL OP INDEX BYTES -- CMD [ARGS...]

Runs CMD (stdin, stdout and stderr inherited) and writes one line to file descriptor 3
(stdout if fd 3 is not open), in the columns of bench/out/pg-raw.tsv:

    step tool op index bytes seconds peak_rss_kib status cpu_seconds other_cpu_seconds

- seconds: wall time from just before fork to the child's exit (process start-up
  included), time.perf_counter();
- peak_rss_kib, cpu_seconds: the rusage os.wait4 returns for the child, the same figures
  `/usr/bin/time -f '%M %U %S'` prints (maximum resident set of the child or of any of
  its waited-for descendants, user + system CPU of all of them);
- other_cpu_seconds: busy CPU time of the whole machine (/proc/stat: user nice system
  irq softirq steal) over the same interval minus the child's own: the load of other
  processes, near 0 on a quiet machine;
- status: ok or exit-N (signal-N).

It is run as the server's OS user (runuser), so that the command itself starts as that
user as an archive_command would, with no runuser or /usr/bin/time in the timing.
os.sync() runs before the clock starts, as run.sh does before each timed command.
"""
import os
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def busy_jiffies():
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                v = [int(x) for x in line.split()[1:]]
                # user nice system idle iowait irq softirq steal
                return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    return 0


def main(argv):
    if len(argv) < 8 or argv[6] != "--":
        sys.exit(__doc__)
    step, tool, op, idx, nbytes = argv[1:6]
    cmd = argv[7:]
    try:
        out = os.fdopen(3, "w")
    except OSError:
        out = sys.stdout
    os.sync()
    j0 = busy_jiffies()
    t0 = time.perf_counter()
    try:
        pid = os.fork()
    except OSError as e:
        sys.exit(f"pg-timeit: fork: {e}")
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        except OSError as e:
            os.write(2, f"pg-timeit: {cmd[0]}: {e}\n".encode())
        os._exit(127)
    _, status, ru = os.wait4(pid, 0)
    t1 = time.perf_counter()
    j1 = busy_jiffies()
    cpu = ru.ru_utime + ru.ru_stime
    other = max(0.0, (j1 - j0) / HZ - cpu)
    if os.WIFEXITED(status):
        rc = os.WEXITSTATUS(status)
        st = "ok" if rc == 0 else f"exit-{rc}"
    else:
        st = f"signal-{os.WTERMSIG(status)}"
    out.write(f"{step}\t{tool}\t{op}\t{idx}\t{nbytes}\t{t1 - t0:.4f}\t{ru.ru_maxrss}\t{st}"
              f"\t{cpu:.3f}\t{other:.3f}\n")
    out.flush()
    return 0 if st == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
