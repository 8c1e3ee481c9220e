"""Where stacksample and perf say the time went, on a few Debian programs (run by
scripts/compare-perf.sh, which installs what this needs).

Each program runs under `perf record -e cpu-clock -F 999 -g`, under stacksample at 1 kHz
(`STACKSAMPLE_TID=main STACKSAMPLE_INTERVAL=1ms STACKSAMPLE_MODE=cpu`: perf's cpu-clock
counts time on the CPU only), then under perf again. For each run the
self time is split by function name: perf's leaf is the first frame of a sample outside the
kernel (where the program was when it entered the kernel, as stacksample sees it), samples
without such a frame are left out; names lose a symbol version (`@@GLIBC_2.17`) and a C++
parameter list, and code without a name (`[unknown]`, `module+0x...`) is one entry. Printed
per program: the total variation distance between stacksample's split and each perf run's,
perf's own distance between its two runs, and the top functions side by side.

Settings: COMPARE_PROGRAMS (comma-separated; python3,perl,sqlite3,cc1plus), COMPARE_TOP
(rows of the side-by-side table, 8), COMPARE_LIBRARY (the library, target/release/
libstacksample.so), COMPARE_DIR (scratch directory, target/compare-perf)."""

import collections
import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIBRARY = pathlib.Path(
    os.environ.get("COMPARE_LIBRARY", ROOT / "target/release/libstacksample.so"))
WORK = pathlib.Path(os.environ.get("COMPARE_DIR", ROOT / "target/compare-perf"))
TOP = int(os.environ.get("COMPARE_TOP", "8"))
NO_NAME = "(no name)"

PYTHON_WORK = """
import collections
words = [str(i * 7919 % 100003) for i in range(200000)]
for round in range(12):
    counts = collections.Counter(w[:3] for w in words)
    ordered = sorted(words, key=lambda w: (len(w), w[::-1]))
    joined = ",".join(f"{k}={v}" for k, v in counts.items())
    table = {w: i for i, w in enumerate(ordered)}
    total = sum(table[w] for w in words[::3]) + len(joined)
print(total)
"""

PERL_WORK = (
    'my %h; for my $i (1 .. 9_000_000) { my $k = "k" . ($i * 7919 % 200_000); $h{$k}++; '
    'delete $h{"k" . ($i % 1000)} if $i % 7 == 0 } '
    'my $n = 0; $n += $h{$_} for sort keys %h; print "$n\\n"')

SQLITE_WORK = """
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
INSERT INTO t(k, v) SELECT (i * 7919) % 10007, hex(randomblob(16)) FROM n;
CREATE INDEX tk ON t(k);
SELECT k, count(*), max(v) FROM t GROUP BY k ORDER BY 3 DESC LIMIT 3;
SELECT count(*) FROM t a JOIN t b ON a.k = b.k AND a.id < b.id WHERE a.id % 97 = 0;
SELECT sum(length(v)) FROM t WHERE v LIKE '%AB%';
UPDATE t SET v = lower(v) WHERE k % 3 = 0;
SELECT count(DISTINCT substr(v, 1, 4)) FROM t;
"""


def cxx_source(units):
    """A C++ file that takes cc1plus a few seconds: the standard headers, and templates
    instantiated `units` times over distinct types."""
    lines = [
        "#include <algorithm>", "#include <iostream>", "#include <map>", "#include <regex>",
        "#include <sstream>", "#include <string>", "#include <unordered_map>",
        "#include <vector>",
        "template <int N> struct Unit {",
        "  std::map<std::string, std::vector<int>> table;",
        "  std::unordered_map<int, std::string> names;",
        "  int run(const std::string &text) {",
        "    std::regex pattern(\"([a-z]+)(\\\\d+)\");",
        "    std::smatch match; std::ostringstream out; int total = N;",
        "    for (auto it = text.begin(); std::regex_search(it, text.end(), match, pattern);",
        "         it = match.suffix().first) {",
        "      table[match[1]].push_back(std::stoi(match[2]) + N);",
        "      names[total++] = match.str(); out << match[1] << N; }",
        "    for (auto &[key, values] : table) { std::sort(values.begin(), values.end());",
        "      total += std::count_if(values.begin(), values.end(),",
        "                             [](int v) { return v % (N + 2); }); }",
        "    std::cout << out.str(); return total; } };",
    ]
    lines += [f"int unit{i}(const std::string &s) {{ return Unit<{i}>().run(s); }}"
              for i in range(units)]
    return "\n".join(lines) + "\n"


def programs():
    """name -> (command, the process name perf records its samples under, stdin)."""
    source = WORK / "big.cpp"
    source.write_text(cxx_source(int(os.environ.get("COMPARE_CXX_UNITS", "10"))))
    return {
        "python3": (["/usr/bin/python3", "-c", PYTHON_WORK], None, None),
        "perl": (["/usr/bin/perl", "-e", PERL_WORK], None, None),
        "sqlite3": (["/usr/bin/sqlite3", ":memory:"], None, SQLITE_WORK),
        "cc1plus": (["g++", "-O2", "-c", str(source), "-o", str(WORK / "big.o")], "cc1plus", None),
    }


def plain_name(name):
    """The function's name without offset, symbol version or C++ parameter list."""
    name = name.split("@")[0]
    if name in ("", "[unknown]", "[anon]") or "+0x" in name:
        return NO_NAME
    depth = 0
    for i, c in enumerate(name):
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif c == "(" and depth == 0 and i > 0:
            rest, before = name[i:], name[:i]
            if not rest.startswith("(anonymous namespace)") and not before.endswith("operator"):
                return before
    return name


def perf_record(name, command, comm, stdin, run):
    data = WORK / f"{name}.perf{run}.data"
    record = ["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-g", "-o", str(data)]
    subprocess.run([*record, "--", *command], input=stdin, text=True,
                   stdout=subprocess.DEVNULL, check=True)
    script = ["perf", "script", "-i", str(data), "-F", "comm,ip,sym,dso", "--no-inline"]
    if comm:
        script += ["--comm", comm]
    text = subprocess.run(script, capture_output=True, text=True, check=True).stdout
    counts = collections.Counter()
    for sample in text.split("\n\n"):
        frames = [line.strip() for line in sample.splitlines()[1:] if line.strip()]
        for frame in frames:
            parts = frame.split(" ", 1)
            symbol, _, dso = parts[-1].rpartition(" (")
            if dso.startswith("[kernel"):
                continue
            counts[plain_name(symbol)] += 1
            break
    return counts


def stacksample_record(name, command, comm, stdin):
    out = WORK / f"{name}.stacksample"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = dict(os.environ, LD_PRELOAD=str(LIBRARY), STACKSAMPLE_TID="main",
               STACKSAMPLE_INTERVAL="1ms", STACKSAMPLE_MODE="cpu", STACKSAMPLE_FORMAT="txt,folded",
               STACKSAMPLE_OUTPUT=str(out / "profile.%p"))
    subprocess.run(command, input=stdin, text=True, env=env, stdout=subprocess.DEVNULL, check=True)
    counts = collections.Counter()
    for folded in out.glob("*.folded"):
        header = folded.with_suffix(".txt").read_text().splitlines()[0]
        if comm and f"`{comm}" not in header and f"/{comm} " not in header:
            continue
        for line in folded.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            counts[plain_name(stack.split(";")[-1])] += int(count)
    return counts


def distance(a, b):
    """Total variation distance between two splits of samples by name."""
    total_a, total_b = sum(a.values()), sum(b.values())
    names = set(a) | set(b)
    return 0.5 * sum(abs(a[n] / total_a - b[n] / total_b) for n in names)


def side_by_side(splits):
    columns = []
    for label, counts in splits:
        total = sum(counts.values())
        rows = [f"{100 * c / total:5.1f}% {n[:34]}" for n, c in counts.most_common(TOP)]
        columns.append((f"{label} ({total} samples)", rows))
    width = 44
    print("  " + "".join(label.ljust(width) for label, _ in columns))
    for i in range(TOP):
        cells = (rows[i] if i < len(rows) else "" for _, rows in columns)
        print("  " + "".join(cell.ljust(width) for cell in cells))


def main():
    if not LIBRARY.exists():
        sys.exit(f"compare_perf.py: {LIBRARY} is missing; run cargo build --release")
    WORK.mkdir(parents=True, exist_ok=True)
    wanted = os.environ.get("COMPARE_PROGRAMS", "python3,perl,sqlite3,cc1plus").split(",")
    table = []
    for name, (command, comm, stdin) in programs().items():
        if name not in wanted:
            continue
        first = perf_record(name, command, comm, stdin, 1)
        ours = stacksample_record(name, command, comm, stdin)
        second = perf_record(name, command, comm, stdin, 2)
        row = (name, distance(ours, first), distance(ours, second), distance(first, second))
        table.append(row)
        print(f"\n{name}: stacksample vs perf {row[1]:.3f} / {row[2]:.3f},"
              f" perf vs perf {row[3]:.3f}")
        side_by_side([("perf 1", first), ("stacksample", ours), ("perf 2", second)])
    print("\n| program | stacksample vs perf run 1 | vs perf run 2 | perf vs perf"
          " | within perf's + 0.03 |")
    print("|---|--:|--:|--:|---|")
    for name, one, two, own in table:
        met = "yes" if max(one, two) <= own + 0.03 else "no"
        print(f"| {name} | {one:.3f} | {two:.3f} | {own:.3f} | {met} |")


if __name__ == "__main__":
    main()
