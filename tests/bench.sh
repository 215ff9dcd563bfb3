#!/usr/bin/env bash
# `make bench`: tcpfetch bench against a local tcpfetch serve on loopback.
#   1. 1000 clients, each downloading a 1 MiB file once (new connections)
#   2. 100 clients, each downloading a 10 MiB file once
#   3. the multi-host recipe on one host: three bench processes of 300
#      clients × 1 MiB at once with one --test-id, merged by bench --merge
#      (report in target/bench/merged.html)
# Every transfer is verified (SHA-256). Prints each report, the server's peak
# RSS (VmHWM) after each run and the bench client's own peak RSS.
# Not part of `make test`: it takes about a minute and loads both cores.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/bench-lib.sh
bench_bin "${1:-}"

# 1000 clients need more than 1024 descriptors on each side.
hard=$(ulimit -Hn)
want=65536
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want=$hard; fi
ulimit -n "$want" 2>/dev/null || echo "bench.sh: cannot raise the descriptor limit above $(ulimit -n)" >&2

dir=target/bench
mkdir -p "$dir/files"
make_file() { random_file "$dir/files/$1" $(( $2 << 20 )); } # NAME MIB
make_file 1mib.bin 1
make_file 10mib.bin 10

trap stop_pids EXIT
start_serve "$dir/serve" "$dir/files"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)"
echo "server:  $BIN serve $dir/files --listen $addr -q   (descriptor limit $(ulimit -n))"
status=0
run() { # LABEL ARGS...
    local label=$1; shift
    echo
    echo "== $label: tcpfetch bench $addr $*"
    local rc=0
    timeout 300 /usr/bin/time -f "client peak RSS: %M KiB, CPU: %U s user + %S s system" \
        "$BIN" bench "$addr" "$@" || rc=$?
    echo "server peak RSS so far: $(awk '/VmHWM/ {print $2, $3}' "/proc/$spid/status")"
    if [ "$rc" != 0 ]; then echo "bench.sh: '$label' exited $rc" >&2; status=$rc; fi
}
run "1000 clients x 1 MiB" 1mib.bin --clients 1000
run "100 clients x 10 MiB" 10mib.bin --clients 100

echo
echo "== 3 x 300 clients x 1 MiB at once, --test-id merged, then bench --merge"
runs=()
for i in 1 2 3; do
    timeout 300 "$BIN" bench "$addr" 1mib.bin --clients 300 --test-id merged --json > "$dir/run$i.json" &
    runs+=($!)
done
for p in "${runs[@]}"; do wait "$p" || { echo "bench.sh: a merged run failed" >&2; status=1; }; done
for i in 1 2 3; do
    read -r requests ok seconds < <(jget requests ok seconds < "$dir/run$i.json")
    echo "run $i: $requests requests, $ok ok, $seconds s"
done
"$BIN" bench --merge "$dir"/run1.json "$dir"/run2.json "$dir"/run3.json --report "$dir/merged.html" || status=$?
echo "server peak RSS so far: $(awk '/VmHWM/ {print $2, $3}' "/proc/$spid/status")"
kill -0 "$spid" 2>/dev/null || { echo "bench.sh: serve died" >&2; exit 1; }
exit "$status"
