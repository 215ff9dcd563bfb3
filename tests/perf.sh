#!/usr/bin/env bash
# `make bench`, part 2: tcpfetch against its references, measured in one run.
#
#   hash ceiling   tcpfetch sum --jobs 1 of a 1 GiB file from the page cache (one core)
#   get            tcpfetch get --no-fsync of the same file over loopback,
#                  written to disk (not flushed, like the references) and
#                  verified (server digest already cached)
#   nc|tee|sha256  what a user would do instead: nc | tee FILE | sha256sum
#   ratios         get / hash ceiling, get / nc pipeline
#   memory         peak RSS of get (1 GiB, and a 5 GiB sparse file), of serve
#                  sending one 1 GiB file
#   zero copy      strace of serve while it sends 64 MiB: sendfile vs write
#   digest cache   time to first byte of a first and a second GET of 1 GiB
#   concurrency    100 clients x 10 MiB: tcpfetch serve + bench, against the
#                  Python stand-in of the original server (tests/legacy/
#                  old_server.py, its own protocol) + bench --legacy
#
# Each timing is the median of RUNS runs (default 3). Bounded to a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/bench-lib.sh
bench_bin "${1:-}"
RUNS=${RUNS:-3}
dir=target/bench/perf
mkdir -p "$dir/files" "$dir/out" "$dir/sparse"
big="$dir/files/1gib.bin"
random_file "$big" 1073741824
random_file "$dir/files/64mib.bin" 67108864
random_file "$dir/files/10mib.bin" 10485760
truncate -s 5G "$dir/sparse/5gib-sparse.bin"
cat "$big" > /dev/null # into the page cache

trap stop_pids EXIT
gbps() { echo "scale=3; 1.073741824 / $1" | bc -l; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)"
echo "date:    $(date -u +%Y-%m-%dT%H:%MZ), $RUNS runs each, median; 1 GiB = 1073741824 random bytes"
echo

# 1. Hash ceiling.
hash_s=$(for _ in $(seq "$RUNS"); do elapsed "$BIN" sum --jobs 1 "$big"; done | median)

# 2. tcpfetch get, digest already cached by the server.
start_serve "$dir/serve-get" "$dir/files"
"$BIN" bench "$addr" 1gib.bin --clients 1 > /dev/null # warms the digest cache
# Every timed run that writes 1 GiB starts from a clean page cache state
# (old output removed, dirty pages synced), or writeback of the previous
# run's bytes throttles the next one.
settle() { rm -f "$dir/out/1gib.bin" "$dir/out/nc.bin"; sync; }
# --no-fsync: the references (the hash ceiling, the nc pipeline) flush
# nothing either; what the default durable get adds is tests/durable.sh's.
get_once() { "$BIN" get "$addr" 1gib.bin -o "$dir/out/1gib.bin" -q --no-fsync; }
get_s=$(for _ in $(seq "$RUNS"); do settle; elapsed get_once; done | median)
get_rss=$( { /usr/bin/time -f '%M' "$BIN" get "$addr" 1gib.bin -o "$dir/out/1gib.bin" -q --force; } 2>&1 | tail -1)

# 3. nc | tee | sha256sum, served by nc from the page cache.
nc_s=-
if command -v nc > /dev/null; then
    nc_once() {
        local port=$(( 20000 + RANDOM % 20000 ))
        nc -N -l 127.0.0.1 "$port" < "$big" &
        local ncpid=$!
        sleep 0.2
        local t0 t1
        t0=$(date +%s.%N)
        nc -d 127.0.0.1 "$port" | tee "$dir/out/nc.bin" | sha256sum > /dev/null
        t1=$(date +%s.%N)
        wait "$ncpid" 2>/dev/null || true
        echo "$t1 - $t0" | bc -l
    }
    nc_s=$(for _ in $(seq "$RUNS"); do settle; nc_once; done | median)
fi

# 4. Memory: client on a 5 GiB sparse file; server sending one 1 GiB file.
start_serve "$dir/serve-sparse" "$dir/sparse" --precompute
sparse_addr=$addr
sleep 0.5
sparse_rss=$( { /usr/bin/time -f '%M' "$BIN" get "$sparse_addr" 5gib-sparse.bin -o "$dir/out/sparse.bin" -q --force; } 2>&1 | tail -1)
rm -f "$dir/out/sparse.bin"
start_serve "$dir/serve-one" "$dir/files" --precompute
one_addr=$addr
one_pid=$spid
while ! "$BIN" list "$one_addr" --json | grep -q '1gib.bin.*sha256'; do sleep 0.2; done
"$BIN" get "$one_addr" 1gib.bin -o "$dir/out/1gib.bin" -q --force
serve_rss=$(awk '/VmHWM/ {print $2}' "/proc/$one_pid/status")

# 5. Zero copy: which system calls carry 64 MiB out of the server.
zero_copy="strace not installed"
if command -v strace > /dev/null; then
    start_serve "$dir/serve-zero-copy" "$dir/files"
    traced "$spid" sendfile,copy_file_range,splice,write,writev,sendto,sendmsg "$dir/strace.txt" \
        "$BIN" get "$addr" 64mib.bin -o "$dir/out/64mib.bin" -q --force
    zero_copy=$(awk '
        /sendfile\(/ { n = $NF; if (n ~ /^[0-9]+$/) s += n; c++ }
        /(write|writev|sendto|sendmsg)\(/ { n = $NF; if (n ~ /^[0-9]+$/) w += n; wc++ }
        END { printf "sendfile: %d calls, %d bytes; write-family: %d calls, %d bytes", c, s, wc, w }' "$dir/strace.txt")
fi

# 6. Digest cache: ttfb of the first (hashes 1 GiB) and second GET.
start_serve "$dir/serve-cache" "$dir/files"
"$BIN" bench "$addr" 1gib.bin --clients 1 --requests 2 --keep-alive --log "$dir/cache.jsonl" > /dev/null
ttfb1=$(sed -n 1p "$dir/cache.jsonl" | jget ttfb_ms)
ttfb2=$(sed -n 2p "$dir/cache.jsonl" | jget ttfb_ms)

# 7. Concurrency: 100 clients x 10 MiB, tcpfetch vs the Python original.
start_serve "$dir/serve-crowd" "$dir/files" --precompute
sleep 1
bench_s=$(for _ in $(seq "$RUNS"); do "$BIN" bench "$addr" 10mib.bin --clients 100 --json | jget seconds; done | median)
py_s=-
if command -v python3 > /dev/null; then
    python3 tests/legacy/old_server.py "$dir/files/10mib.bin" "$dir/files/10mib.bin" > "$dir/py.out" &
    pids+=($!)
    py_addr=$(listen_addr "$dir/py.out")
    py_s=$(for _ in $(seq "$RUNS"); do "$BIN" bench --legacy "$py_addr" 1 --clients 100 --retries 5 --json | jget seconds; done | median)
fi

ratio() { if [ "$2" = - ]; then echo -; else echo "scale=2; $1 / $2" | bc -l; fi; }
printf '%-44s %10s %10s\n' "measure" "seconds" "GB/s"
printf '%-44s %10.3f %10.3f\n' "hash ceiling: tcpfetch sum 1 GiB (one core)" "$hash_s" "$(gbps "$hash_s")"
printf '%-44s %10.3f %10.3f\n' "tcpfetch get 1 GiB, to disk, verified" "$get_s" "$(gbps "$get_s")"
if [ "$nc_s" != - ]; then
    printf '%-44s %10.3f %10.3f\n' "nc | tee | sha256sum 1 GiB" "$nc_s" "$(gbps "$nc_s")"
fi
echo
echo "get / hash ceiling:        $(ratio "$hash_s" "$get_s")   (goal >= 0.75)"
echo "get / nc|tee|sha256sum:    $(ratio "$nc_s" "$get_s")   (goal >= 5)"
echo "peak RSS, get 1 GiB:       $((get_rss / 1024)) MiB   (goal < 16)"
echo "peak RSS, get 5 GiB sparse: $((sparse_rss / 1024)) MiB   (goal < 16)"
echo "peak RSS, serve one 1 GiB: $((serve_rss / 1024)) MiB   (goal < 16)"
echo "zero copy (serve, 64 MiB): $zero_copy"
echo "digest cache: first GET ttfb ${ttfb1} ms (hashes 1 GiB), second GET ttfb ${ttfb2} ms   (goal < 5)"
echo "100 clients x 10 MiB:      tcpfetch ${bench_s} s, Python original ${py_s} s, ratio $(ratio "$py_s" "$bench_s")   (goal >= 5)"
