#!/usr/bin/env bash
# How fast `verify -c` and `sum` hash, against coreutils and against the
# in-memory SHA-256 rate, all measured in one run (issue #17's goals):
#
#   verify: BENCH_FILES files of BENCH_MIB MiB, `tcpfetch verify -c` with the
#           default --jobs (one per core) against `--jobs 1` and against
#           `sha256sum -c`;
#   sum:    one file of BENCH_BIG_MIB MiB, `tcpfetch sum FILE` (two threads
#           that take turns: while one hashes a chunk the other reads the
#           next) and `sum --jobs 1 FILE` (read and
#           hash in turn) against the in-memory rate of one core: the same
#           sha2 crate and release profile hashing one cache-resident 128 KiB
#           buffer over and over, as many bytes, nothing read
#           (tests/tools/sha256_rate.rs). `openssl speed` is shown for scale.
#
# Every figure is from a warm page cache: the files are read once before
# the first timing, so no side waits for the disk and both sides read the
# same cached pages. Each round runs every contender once, in turn; the
# figure is the median of BENCH_RUNS rounds, speed-ups are ratios of
# medians. Each round also runs two in-memory hashers at once: on a shared
# or virtual machine two threads may not get two cores' worth, and that
# ratio is the ceiling for any --jobs 2 speed-up in the same run. Prints
# the load average too. On a machine shared with other work, run it as root
# with real-time priority, `chrt -f 50 bash tests/verify-bench.sh`, so that
# the other work cannot take its cores (every contender alike; the kernel
# still leaves 5 % of each second to the rest).
#
# Usage: bash tests/verify-bench.sh [BINARY]   (default target/release/tcpfetch)
# Env:   BENCH_RUNS=5 BENCH_FILES=200 BENCH_MIB=8 BENCH_BIG_MIB=1024
#        BENCH_DIR=target/verify-bench (kept between runs: the files are
#        made once; delete it to start over)
#        BENCH_PARTS="verify sum" (either alone to time only that goal)
#        BENCH_SUM_OLD=PATH: another tcpfetch binary whose `sum` is timed in
#        the same rounds, right after this one (an A/B of two builds)
# The last lines say each goal's ratio and whether it is met.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=$(realpath "${1:-target/release/tcpfetch}")
RUNS=${BENCH_RUNS:-5}
FILES=${BENCH_FILES:-200}
MIB=${BENCH_MIB:-8}
BIG_MIB=${BENCH_BIG_MIB:-1024}
DIR=${BENCH_DIR:-target/verify-bench}
PARTS=${BENCH_PARTS:-verify sum}
OLD=${BENCH_SUM_OLD:+$(realpath "$BENCH_SUM_OLD")}
part() { [[ " $PARTS " == *" $1 "* ]]; }

command -v sha256sum >/dev/null || { echo "verify-bench: sha256sum is missing" >&2; exit 1; }
cargo build --release --quiet --example sha256_rate
RATE_BIN=target/release/examples/sha256_rate

# The files: made once, then kept (making 2.6 GB is slower than a round).
tree=$DIR/tree-$FILES-$MIB
if part verify && [ ! -f "$tree/SHA256SUMS" ]; then
    echo "verify-bench: making $FILES files of $MIB MiB in $tree"
    rm -rf "$tree"
    mkdir -p "$tree"
    for i in $(seq -w 1 "$FILES"); do
        head -c "$((MIB << 20))" /dev/urandom >"$tree/f$i.bin"
    done
    (cd "$tree" && sha256sum f*.bin >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
fi
big=$DIR/big-$BIG_MIB.bin
if part sum && [ ! -f "$big" ]; then
    echo "verify-bench: making $big"
    head -c "$((BIG_MIB << 20))" /dev/urandom >"$big.tmp"
    mv "$big.tmp" "$big"
fi
# Warm the page cache for everyone.
if part verify; then cat "$tree"/f*.bin >/dev/null; fi
if part sum; then cat "$big" >/dev/null; fi

now() { date +%s.%N; }
# Seconds COMMAND... takes; it must succeed.
timed() {
    local start end
    start=$(now)
    "$@" >/dev/null || { echo "verify-bench: '$*' failed" >&2; exit 1; }
    end=$(now)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
rate() { awk -v mib="$1" -v s="$2" 'BEGIN { printf "%.0f", mib * 1048576 / s / 1e6 }'; }

declare -A t
for r in $(seq "$RUNS"); do
    if part verify; then
        t[coreutils]+="$(cd "$tree" && timed sha256sum -c SHA256SUMS) "
        t[jobs1]+="$(cd "$tree" && timed "$BIN" verify -c SHA256SUMS --jobs 1) "
        t[jobs]+="$(cd "$tree" && timed "$BIN" verify -c SHA256SUMS) "
    fi
    t[mem]+="$("$RATE_BIN" "$BIG_MIB" | awk '{ print $1 }') "
    # Two at once: how much two threads can get from this machine now.
    t[mem2]+="$( ("$RATE_BIN" "$BIG_MIB" & "$RATE_BIN" "$BIG_MIB"; wait) | awk '{ s += $1 } END { print s }') "
    if part sum; then
        t[sum1]+="$(timed "$BIN" sum --jobs 1 "$big") "
        t[sum]+="$(timed "$BIN" sum "$big") "
        if [ -n "$OLD" ]; then t[old]+="$(timed "$OLD" sum "$big") "; fi
    fi
    echo "verify-bench: round $r of $RUNS done"
done
med() { echo "${t[$1]}" | tr ' ' '\n' | grep . | median; }
mem=$(med mem) mem2=$(med mem2)
cores=$(nproc)
goal() { awk -v r="$1" -v g="$2" 'BEGIN { print (r >= g) ? "met" : "NOT met" }'; }
summary=()

echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1), $cores cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "(two in-memory hashers at once ran $(ratio "$mem2" "$mem") x as fast as one: the most two threads got here)"
if part verify; then
coreutils=$(med coreutils) jobs1=$(med jobs1) jobs=$(med jobs)
total_mib=$((FILES * MIB))
echo "verify -c, $FILES files x $MIB MiB, warm page cache, median of $RUNS rounds:"
printf '  %-34s %7.3f s  %5s MB/s\n' "sha256sum -c" "$coreutils" "$(rate $total_mib "$coreutils")"
printf '  %-34s %7.3f s  %5s MB/s\n' "tcpfetch verify -c --jobs 1" "$jobs1" "$(rate $total_mib "$jobs1")"
printf '  %-34s %7.3f s  %5s MB/s\n' "tcpfetch verify -c (--jobs $cores)" "$jobs" "$(rate $total_mib "$jobs")"
vs1=$(ratio "$jobs1" "$jobs") vsc=$(ratio "$coreutils" "$jobs")
echo "  --jobs $cores vs --jobs 1: $vs1 x (goal 1.8 x); vs sha256sum -c: $vsc x (goal 6 x)"
summary+=("verify -c --jobs $cores / --jobs 1:        $vs1 x (goal >= 1.8 x): $(goal "$vs1" 1.8)")
summary+=("verify -c --jobs $cores / sha256sum -c:      $vsc x (goal >= 6 x): $(goal "$vsc" 6)")
fi
if part sum; then
sum1=$(med sum1) sum=$(med sum)
echo "sum of one $BIG_MIB MiB file, warm page cache, median of $RUNS rounds:"
printf '  %-34s %5s MB/s\n' "in-memory SHA-256, one core" "$mem"
printf '  %-34s %5s MB/s  %s x in-memory\n' "tcpfetch sum --jobs 1 (one thread)" "$(rate "$BIG_MIB" "$sum1")" "$(ratio "$(rate "$BIG_MIB" "$sum1")" "$mem")"
vsm=$(ratio "$(rate "$BIG_MIB" "$sum")" "$mem")
printf '  %-34s %5s MB/s  %s x in-memory (goal 0.95 x)\n' "tcpfetch sum (two threads)" "$(rate "$BIG_MIB" "$sum")" "$vsm"
if [ -n "$OLD" ]; then
    old=$(med old)
    printf '  %-34s %5s MB/s  %s x in-memory (%s)\n' "the other binary's sum" "$(rate "$BIG_MIB" "$old")" "$(ratio "$(rate "$BIG_MIB" "$old")" "$mem")" "$OLD"
fi
echo "  each round: in-memory MB/s ${t[mem]}; sum s ${t[sum]}${OLD:+; other s ${t[old]}}"
summary+=("sum of one $BIG_MIB MiB file / in-memory: $vsm x (goal >= 0.95 x): $(goal "$vsm" 0.95)")
if command -v openssl >/dev/null; then
    ossl=$(openssl speed -evp sha256 -bytes 131072 -seconds 2 2>/dev/null | awk '/^sha256/ { sub(/k$/, "", $2); printf "%.0f", $2 * 1000 / 1e6 }')
    echo "  (for scale: openssl speed -evp sha256, 128 KiB blocks: $ossl MB/s)"
fi
fi
echo
echo "issue 17 goals, this run:"
printf '  %s\n' "${summary[@]}"
