#!/usr/bin/env bash
# Server CPU per request of two tcpfetch builds and nginx, interleaved in
# one run: what a change to how `serve` accepts connections (serve::pool,
# serve::listener) is measured with (tests/README.md, #14). Not part of
# `make bench`; tests/server-bench.sh measures the same per-connection
# figure for one build, with everything else.
#
#   tests/accept-bench.sh OLD_BIN NEW_BIN [ROUNDS] [SECONDS]
#
# Each round measures OLD, NEW (in alternating order: ABBA...) and nginx,
# each for SECONDS (default 3) with 4 clients, a new connection per request
# (NEW's bench without --keep-alive for both builds, wrk with "Connection:
# close" for nginx); KEEPALIVE=1 keeps one connection per client instead.
# FILE (default 1k.bin, or 1m.bin) is the file asked for. Server CPU is utime + stime of the whole server
# process from /proc/PID/stat (all threads, in 10 ms units) over the round,
# divided by the requests served; the median of ROUNDS (default 9) rounds
# is printed, with the ratio to nginx's, and bench's own CPU per request
# (/usr/bin/time): over loopback the client runs part of the server's TCP
# work in its own context, so work can move between the two columns
# without either side doing less (tests/README.md, #14). PIN=split or
# PIN=one (see below) fix where they run. As root, the servers and the load
# run under `chrt -f 50`, so that other work on a shared box does not
# preempt them (RT=0: not). Then, per build, system calls per connection (strace -c -f
# on 2000 connections) and voluntary context switches per connection.
# nginx-light, wrk and strace must be installed (server-bench.sh installs
# them).
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/bench-lib.sh
[ $# -ge 2 ] || { grep -m1 '^#   tests/accept-bench.sh' "$0" >&2; exit 2; }
OLD=$(realpath "$1")
NEW=$(realpath "$2")
ROUNDS=${3:-9}
SECONDS_EACH=${4:-3}
FILE=${FILE:-1k.bin}
rt=()
[ "$(id -u)" = 0 ] && [ "${RT:-1}" = 1 ] && rt=(chrt -f 50)
# PIN=split: the servers on the second core, the load on the first;
# PIN=one: everything on the second core. Unset: where the kernel puts it.
serving=("${rt[@]}")
load=("${rt[@]}")
case "${PIN:-}" in
    split) serving=(taskset -c 1 "${rt[@]}") load=(taskset -c 0 "${rt[@]}") ;;
    one) serving=(taskset -c 1 "${rt[@]}") load=(taskset -c 1 "${rt[@]}") ;;
    "") ;;
    *) echo "accept-bench.sh: PIN is split or one" >&2; exit 2 ;;
esac

dir=$(realpath -m target/bench/accept)
mkdir -p "$dir/files" "$dir/nginx"
random_file "$dir/files/1k.bin" 1024
random_file "$dir/files/1m.bin" 1048576

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

# start NAME BIN → ${NAME}_pid, ${NAME}_addr
start() {
    local addr
    "${serving[@]}" "$2" serve "$dir/files" --listen 127.0.0.1:0 -q --max-clients 20000 \
        > "$dir/$1.out" 2> "$dir/$1.err" &
    pids+=($!)
    printf -v "$1_pid" %s $!
    # listen_addr waits 5 s; a loaded box can take longer to start it.
    for _ in 1 2 3 4 5 6; do
        addr=$(listen_addr "$dir/$1.out")
        [ -n "$addr" ] && break
    done
    [ -n "$addr" ] || { echo "accept-bench.sh: $2 serve did not start" >&2; exit 1; }
    printf -v "$1_addr" %s "$addr"
    "$NEW" bench "$addr" "$FILE" --clients 1 --requests 4 > /dev/null
}
start old "$OLD"
start new "$NEW"

start_nginx "$FILE" "${serving[@]}"

per_request() { # TICKS REQUESTS → µs
    awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f\n", t / hz / n * 1e6 }'
}
ka=()
wrk_close=(-H "Connection: close")
mode="a new connection per request"
if [ "${KEEPALIVE:-}" = 1 ]; then
    ka=(--keep-alive)
    wrk_close=()
    mode="keep-alive"
fi
serve_us() { # PID ADDR → "server_us bench_us"
    local t0 n b
    t0=$(ticks "$1")
    n=$("${load[@]}" /usr/bin/time -f '%U %S' -o "$dir/bench.time" \
        "$NEW" bench "$2" "$FILE" --clients 4 --duration "$SECONDS_EACH" "${ka[@]}" --json |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["ok"])')
    b=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", ($1 + $2) * hz }' "$dir/bench.time")
    echo "$(per_request $(($(ticks "$1") - t0)) "$n") $(per_request "$b" "$n")"
}
nginx_us() {
    local procs t0 n
    procs="$npid $(pgrep -P "$npid" | tr '\n' ' ')"
    t0=$(ticks $procs)
    n=$("${load[@]}" wrk -t 2 -c 4 -d "${SECONDS_EACH}s" "${wrk_close[@]}" "http://127.0.0.1:$nport/$FILE" |
        sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')
    per_request $(($(ticks $procs) - t0)) "$n"
}

echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$FILE, $mode, 4 clients, $ROUNDS rounds of ${SECONDS_EACH} s${rt[*]:+, under ${rt[*]}}${PIN:+, PIN=$PIN}"
echo "round  old_us (bench)  new_us (bench)  nginx_us"
for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then
        read -r o ob < <(serve_us "$old_pid" "$old_addr")
        read -r n nb < <(serve_us "$new_pid" "$new_addr")
    else
        read -r n nb < <(serve_us "$new_pid" "$new_addr")
        read -r o ob < <(serve_us "$old_pid" "$old_addr")
    fi
    printf '%5d  %6s (%5s)  %6s (%5s)  %8s\n' "$r" "$o" "$ob" "$n" "$nb" "$(nginx_us)"
done | tee "$dir/rounds.txt"
col() { tr -d '()' < "$dir/rounds.txt" | awk -v c="$1" '{ print $c }' | median; }
awk -v o="$(col 2)" -v ob="$(col 3)" -v n="$(col 4)" -v nb="$(col 5)" -v x="$(col 6)" 'BEGIN {
    printf "median: old %s us (%.2f x nginx), new %s us (%.2f x nginx), nginx %s us; new/old %.2f\n", o, o / x, n, n / x, x, n / o
    printf "bench (the load, tcpfetch only): old %s us, new %s us; server + bench: old %.1f us, new %.1f us\n", ob, nb, o + ob, n + nb }'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

# What each build does per request: voluntary context switches of all its
# threads (untraced; a thread that exits during the 2000 requests takes its
# count with it), then its system calls (traced), 2000 requests each.
switches() { cat /proc/"$1"/task/*/status 2> /dev/null | awk '/^voluntary_ctxt_switches/ { v += $2 } END { print v }'; }
for build in old new; do
    pid_var=${build}_pid addr_var=${build}_addr
    v0=$(switches "${!pid_var}")
    "${load[@]}" "$NEW" bench "${!addr_var}" "$FILE" --clients 4 --total 2000 "${ka[@]}" > /dev/null
    v1=$(switches "${!pid_var}")
    strace -c -f -q -p "${!pid_var}" -o "$dir/strace-$build.txt" &
    tracer=$!
    sleep 0.5
    "${load[@]}" "$NEW" bench "${!addr_var}" "$FILE" --clients 4 --total 2000 "${ka[@]}" > /dev/null
    sleep 0.2
    kill -INT "$tracer"
    wait "$tracer" 2> /dev/null || true
    echo "$build: $(awk -v a="$v0" -v b="$v1" 'BEGIN { printf "%.2f", (b - a) / 2000 }') voluntary context switches per request; system calls per request:"
    awk '$4 ~ /^[0-9]+$/ && $NF ~ /^[a-z_0-9]+$/ && $NF != "total" { t += $4; if ($4 >= 10) printf "  %s %.2f", $NF, $4 / 2000 }
        END { printf "  (all %.2f)\n", t / 2000 }' "$dir/strace-$build.txt"
done
