#!/usr/bin/env python3
"""Deterministic data generators for the bunker benchmark (bench/run.sh).

Subcommands (all write to stdout):
  text BYTES SEED            compressible text: random words with a Zipf-like
                             distribution over a synthetic vocabulary (zstd -3 ~3x)
  accounts NROWS SEED        COPY text rows for the `accounts` table
                             (aid, bid, abalance, filler): a pgbench_accounts lookalike
                             whose filler is random words instead of blanks
  notes FIRST NROWS SEED     COPY text rows for the `notes` table
                             (id, created, author, title, body, token, likes, edited, status, lang)

Only the standard library is used, so it runs wherever borg (a Python program) does.
"""
import itertools
import random
import sys

ALPHA_ON = "bcdfghjklmnprstvwz"
ALPHA_V = "aeiouy"


def vocabulary(rng, n):
    """n distinct pronounceable pseudo-words, most frequent first."""
    seen = set()
    out = []
    while len(out) < n:
        syl = rng.choice((1, 2, 2, 3, 3, 4))
        w = "".join(rng.choice(ALPHA_ON) + rng.choice(ALPHA_V) +
                    (rng.choice("nrslt") if rng.random() < 0.3 else "")
                    for _ in range(syl))
        if w not in seen:
            seen.add(w)
            out.append(w)
    # short words tend to be the frequent ones, as in real languages
    out.sort(key=lambda w: (len(w) + rng.random() * 4))
    return out


class Words:
    """Fast supply of random text drawn with Zipf weights (1/rank^s).

    Text is made of phrases (1-5 words) drawn from a pool of common phrases, so an
    LZ compressor finds matches the way it does in real prose: zstd -3 gets ~4x.
    """

    def __init__(self, seed, nwords=20000, nphrases=50000, s=1.45):
        self.rng = rng = random.Random(seed)
        self.vocab = vocabulary(rng, nwords)
        wcum = list(itertools.accumulate(1.0 / (r + 1) for r in range(nwords)))
        words = rng.choices(self.vocab, cum_weights=wcum, k=nphrases * 5)
        self.phrases = [" ".join(words[i * 5:i * 5 + rng.randint(1, 5)])
                        for i in range(nphrases)]
        self.cum = list(itertools.accumulate(1.0 / (r + 1) ** s for r in range(nphrases)))
        self.buf = []
        self.pos = 0

    def take(self, k):
        """k random phrases."""
        if self.pos + k > len(self.buf):
            self.buf = self.rng.choices(self.phrases, cum_weights=self.cum,
                                        k=max(1 << 20, k))
            self.pos = 0
        p = self.pos
        self.pos = p + k
        return self.buf[p:p + k]

    def sentence(self, k):
        """k phrases (about 3k words) joined by blanks."""
        return " ".join(self.take(k))


def out_writer():
    return open(sys.stdout.fileno(), "w", buffering=1 << 20, encoding="ascii", closefd=False)


def cmd_text(nbytes, seed):
    w = Words(seed)
    rng = w.rng
    out = out_writer()
    done = 0
    while done < nbytes:
        lines = []
        for _ in range(256):
            s = w.sentence(rng.randint(2, 6))
            lines.append(s[0].upper() + s[1:] + rng.choice(".....!?;") + "\n")
        chunk = "".join(lines)
        if done + len(chunk) > nbytes:
            chunk = chunk[:nbytes - done]
        out.write(chunk)
        done += len(chunk)
    out.flush()


def cmd_accounts(nrows, seed):
    w = Words(seed)
    rng = w.rng
    out = out_writer()
    lines = []
    for aid in range(1, nrows + 1):
        bid = (aid - 1) // 100000 + 1
        bal = 0 if rng.random() < 0.7 else rng.randint(-9999, 9999)
        filler = w.sentence(rng.randint(3, 5))[:84]
        lines.append(f"{aid}\t{bid}\t{bal}\t{filler}\n")
        if len(lines) >= 4096:
            out.write("".join(lines))
            lines = []
    out.write("".join(lines))
    out.flush()


STATUS = ("published", "published", "draft", "archived", "published", "flagged")
LANGS = ("en", "de", "fr", "es", "it", "nl", "pt", "pl", "sv", "fi")


def cmd_notes(first, nrows, seed):
    w = Words(seed)
    rng = w.rng
    out = out_writer()
    names = [f"{rng.choice(w.vocab).capitalize()} {rng.choice(w.vocab).capitalize()}"
             for _ in range(3000)]
    base = 1640995200  # 2022-01-01 00:00:00 UTC
    lines = []
    for i in range(first, first + nrows):
        t = base + i * 37 + rng.randint(0, 30)
        created = "%04d-%02d-%02d %02d:%02d:%02d+00" % _utc(t)
        author = names[min(int(rng.paretovariate(1.2)) - 1, len(names) - 1)]
        title = w.sentence(rng.randint(1, 3)).capitalize()
        body = w.sentence(int(rng.lognormvariate(2.4, 0.7)) + 1)
        token = "%08x-%04x-4%03x-%04x-%012x" % (rng.getrandbits(32), rng.getrandbits(16),
                                                rng.getrandbits(12),
                                                0x8000 | rng.getrandbits(14),
                                                rng.getrandbits(48))
        likes = int(rng.expovariate(0.05))
        status = STATUS[int(rng.paretovariate(2.0)) % len(STATUS)]
        lang = LANGS[min(int(rng.expovariate(1.0)), len(LANGS) - 1)]
        lines.append(f"{i}\t{created}\t{author}\t{title}\t{body}\t{token}\t{likes}\t\\N"
                     f"\t{status}\t{lang}\n")
        if len(lines) >= 2048:
            out.write("".join(lines))
            lines = []
    out.write("".join(lines))
    out.flush()


def _utc(t):
    days, rem = divmod(t, 86400)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    # civil-from-days (Howard Hinnant)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + (m <= 2), m, d, hh, mm, ss)


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], [int(a) for a in argv[2:]]
    try:
        if cmd == "text" and len(args) == 2:
            cmd_text(*args)
        elif cmd == "accounts" and len(args) == 2:
            cmd_accounts(*args)
        elif cmd == "notes" and len(args) == 3:
            cmd_notes(*args)
        else:
            sys.exit(__doc__)
    except BrokenPipeError:
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv)
