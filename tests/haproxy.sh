#!/usr/bin/env bash
# tcpfetch bench through HAProxy (tests/haproxy/haproxy.cfg) with 1, 2 and 3
# `serve` backends on loopback, and straight to one `serve` for comparison:
#   A. 200 clients, each downloading a 1 MiB file once (new connections)
#   B. 100 clients, each downloading a 10 MiB file once
# Every run must verify every transfer. Each cell is the median of RUNS runs
# (default 3). The three backends and HAProxy start once; the 1- and
# 2-backend rows put the others in maintenance through the stats socket
# (`set server tcpfetch/sN state maint`), exactly as an operator would.
#
# Usage: bash tests/haproxy.sh [BIN]      (RUNS=5 bash tests/haproxy.sh)
# Not part of `make test`: a few minutes of full load on every core. On one
# machine all backends share the same cores, disk cache and loopback, so this
# shows HAProxy's overhead and that load spreads, not how far it scales.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/bench-lib.sh
bench_bin "${1:-}"
RUNS=${RUNS:-3}
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
[ -x "$HAPROXY" ] || { echo "haproxy.sh: $HAPROXY not found (apt-get install -y haproxy)" >&2; exit 1; }

hard=$(ulimit -Hn)
want=65536
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want=$hard; fi
ulimit -n "$want" 2>/dev/null || echo "haproxy.sh: cannot raise the descriptor limit above $(ulimit -n)" >&2

dir=$PWD/target/haproxy-bench
mkdir -p "$dir/files"
make_file() { random_file "$dir/files/$1" $(( $2 << 20 )); } # NAME MIB
make_file 1mib.bin 1
make_file 10mib.bin 10

trap stop_pids EXIT

backends=()
for i in 1 2 3; do
    start_serve "$dir/serve$i" "$dir/files"
    backends+=("$addr")
done

# A free loopback port for HAProxy: bind port 0, read it, let it go.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
proxy=127.0.0.1:$port
stats=$dir/haproxy.sock
rm -f "$stats"
TCPFETCH_LISTEN=$proxy TCPFETCH_STATS=$stats \
TCPFETCH_S1=${backends[0]} TCPFETCH_S2=${backends[1]} TCPFETCH_S3=${backends[2]} \
    "$HAPROXY" -db -f tests/haproxy/haproxy.cfg > "$dir/haproxy.out" 2> "$dir/haproxy.err" &
hpid=$!
pids+=("$hpid")

admin() { printf '%s\n' "$1" | python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.stdin.buffer.read())
s.shutdown(socket.SHUT_WR)
sys.stdout.write(s.makefile().read())
' "$stats"; }
up_count() { admin "show stat" | awk -F, '$2 ~ /^s[0-9]/ && $18 == "UP"' | wc -l; }
use_backends() { # N: s1..sN ready, the rest in maintenance
    for i in 1 2 3; do
        if [ "$i" -le "$1" ]; then admin "set server tcpfetch/s$i state ready" > /dev/null
        else admin "set server tcpfetch/s$i state maint" > /dev/null; fi
    done
    for _ in $(seq 100); do
        [ "$(up_count)" = "$1" ] && return 0
        sleep 0.1
    done
    echo "haproxy.sh: $1 backends did not come up" >&2; admin "show stat" >&2; exit 1
}
for _ in $(seq 100); do [ -S "$stats" ] && break; sleep 0.05; done
use_backends 3

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)"
echo "haproxy: $("$HAPROXY" -v | head -1)"
echo "load:    $(cut -d" " -f1-3 /proc/loadavg) (1, 5, 15 min) before the runs"
echo "proxy:   $proxy -> ${backends[*]}  (descriptor limit $(ulimit -n), $RUNS runs per cell, median)"
echo

rm -f "$dir/failed"
# One bench; prints "MB/s p50 p99" from its JSON report.
one() { # ADDR FILE CLIENTS
    local out rc=0
    out=$(timeout 300 "$BIN" bench "$1" "$2" --clients "$3" --json) || rc=$?
    if [ "$rc" != 0 ]; then
        echo "haproxy.sh: bench $1 $2 --clients $3 exited $rc: $out" >&2
        touch "$dir/failed"
        return
    fi
    local ok requests corrupt mbs p50 p99
    read -r ok requests corrupt mbs p50 p99 < <(echo "$out" | jget ok requests corrupt throughput_mb_s latency_ms.p50 latency_ms.p99)
    if [ "$ok" != "$requests" ] || [ "$corrupt" != 0 ]; then
        echo "haproxy.sh: bench $1 $2 --clients $3: $ok of $requests verified, $corrupt corrupt: $out" >&2
        touch "$dir/failed"
        return
    fi
    printf '%.0f %.0f %.0f\n' "$mbs" "$p50" "$p99"
}
# The median over RUNS runs of each column.
cell() { # ADDR FILE CLIENTS
    for _ in $(seq "$RUNS"); do one "$@"; done | python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin]
print("%5.0f MB/s  p50 %4.0f ms  p99 %4.0f ms" % tuple(statistics.median(c) for c in zip(*rows)))
'
}

# CPU seconds (user + system) the HAProxy process has used so far.
haproxy_cpu() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($14 + $15) / hz }' "/proc/$hpid/stat"
}
# HAProxy's CPU time per GiB it forwarded during one cell: unlike MB/s it
# hardly depends on what else the machine is doing.
per_gib() { # CPU_BEFORE CPU_AFTER MIB_PER_RUN
    python3 -c 'import sys; b, a, mib, runs = map(float, sys.argv[1:]); print("%.2f" % ((a - b) / (mib * runs / 1024)))' "$@" "$RUNS"
}

printf '%-26s  %-36s  %-36s  %s\n' "setup" "A: 200 clients x 1 MiB" "B: 100 clients x 10 MiB" "haproxy CPU s/GiB (A, B)"
row() { # LABEL ADDR
    local c0 c1 c2 a b
    c0=$(haproxy_cpu); a=$(cell "$2" 1mib.bin 200)
    c1=$(haproxy_cpu); b=$(cell "$2" 10mib.bin 100)
    c2=$(haproxy_cpu)
    printf '%-26s  %-36s  %-36s  %s, %s\n' "$1" "$a" "$b" "$(per_gib "$c0" "$c1" 200)" "$(per_gib "$c1" "$c2" 1000)"
}
row "direct, 1 serve, no proxy" "${backends[0]}"
for n in 1 2 3; do
    use_backends "$n"
    row "haproxy, $n backend(s)" "$proxy"
done
use_backends 3
kill -0 "$hpid" 2>/dev/null || { echo "haproxy.sh: haproxy died" >&2; exit 1; }
[ ! -e "$dir/failed" ] || { echo "haproxy.sh: some bench run failed (see above)" >&2; exit 1; }
