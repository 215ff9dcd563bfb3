#!/usr/bin/env bash
# `make bench`, part 3: what a durable download costs (issue #15 item 5).
#
#   get --no-fsync   tcpfetch get of 1 GiB over loopback, verified, left in
#                    the page cache (nothing flushed)
#   dd fdatasync     dd bs=1M count=1024 conv=fdatasync: the same bytes
#                    written and flushed, no network and no hashing
#   get (durable)    the default: writeback started every 8 MiB while the
#                    bytes arrive, fdatasync before the rename, fsync of
#                    the directory after
#   ratio            durable / the slower of the two references
#                    (goal <= 1.15)
#   final flush      how long the fdatasync before the rename takes (strace
#                    -T, one more durable run): what starting writeback
#                    while receiving leaves for the end
#
# The three are interleaved, each run starting from a clean page cache
# state (the previous output removed, everything synced), so writeback of
# one run never throttles the next. The server's digest is computed before
# (--precompute), so no run waits for it. Median of RUNS runs (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/bench-lib.sh
bench_bin "${1:-}"
RUNS=${RUNS:-5}
dir=target/bench/durable
mkdir -p "$dir/files" "$dir/out"
big="$dir/files/1gib.bin"
random_file "$big" 1073741824
cat "$big" > /dev/null # into the page cache
out="$dir/out/1gib.bin"

trap stop_pids EXIT
start_serve "$dir/serve" "$dir/files" --precompute
while ! "$BIN" list "$addr" --json | grep -q '1gib.bin.*sha256'; do sleep 0.2; done

settle() { rm -f "$out"; sync; }
nofsync_once() { "$BIN" get "$addr" 1gib.bin -o "$out" -q --no-fsync; }
dd_once() { dd if="$big" of="$out" bs=1M count=1024 conv=fdatasync status=none; }
durable_once() { "$BIN" get "$addr" 1gib.bin -o "$out" -q; }

: > "$dir/times"
for _ in $(seq "$RUNS"); do
    for what in nofsync dd durable; do
        settle
        echo "$what $(elapsed "${what}_once")" >> "$dir/times"
    done
done
flush_s=-
if command -v strace > /dev/null; then
    settle
    strace -f -qq -T -e trace=fdatasync -o "$dir/flush.txt" "$BIN" get "$addr" 1gib.bin -o "$out" -q
    # The .part's flush is the longest (the version record's is tiny).
    flush_s=$(sed -n 's/.*fdatasync.*<\([0-9.]*\)>$/\1/p' "$dir/flush.txt" | sort -g | tail -1)
fi
settle
pick() { awk -v w="$1" '$1 == w {print $2}' "$dir/times" | median; }
nofsync_s=$(pick nofsync)
dd_s=$(pick dd)
durable_s=$(pick durable)
slower=$(echo "if ($nofsync_s > $dd_s) $nofsync_s else $dd_s" | bc -l)
ratio=$(echo "scale=3; $durable_s / $slower" | bc -l)

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)"
echo "disk:    $(df -T "$dir" | awk 'NR == 2 {print $1 " (" $2 ")"}')"
echo "date:    $(date -u +%Y-%m-%dT%H:%MZ), $RUNS runs each, interleaved, median; 1 GiB = 1073741824 random bytes"
echo
printf '%-44s %10s\n' "measure" "seconds"
printf '%-44s %10.3f\n' "get --no-fsync 1 GiB (page cache only)" "$nofsync_s"
printf '%-44s %10.3f\n' "dd bs=1M count=1024 conv=fdatasync" "$dd_s"
printf '%-44s %10.3f\n' "get 1 GiB, durable (the default)" "$durable_s"
echo
echo "durable / slower reference: $ratio   (goal <= 1.15)"
echo "final flush (fdatasync of the 1 GiB .part before its rename): $flush_s s"
echo "every run (seconds): $(awk '{printf "%s %.2f; ", $1, $2}' "$dir/times")"
