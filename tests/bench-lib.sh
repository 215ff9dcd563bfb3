# Sourced by the bench scripts (tests/bench.sh, perf.sh, durable.sh,
# server-bench.sh, haproxy.sh), from the repository root: the setup, server
# and timing helpers they all repeated.

# bench_bin [BINARY] → $BIN, absolute (the scripts cd around it); the
# release build is made when the binary is not there.
bench_bin() {
    BIN=${1:-target/release/tcpfetch}
    [ -x "$BIN" ] || cargo build --release
    BIN=$(realpath "$BIN")
}

# random_file PATH BYTES: PATH holds BYTES random bytes, made only when it
# does not have that size already (kept between runs: 1 GiB takes seconds).
random_file() {
    [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" = "$2" ] || head -c "$2" /dev/urandom > "$1"
}

# listen_addr OUT: the address a server started with --listen 127.0.0.1:0
# prints on its "listening on ADDR" line in the file OUT, waited for up to
# 5 s; empty when it never came.
listen_addr() {
    for _ in $(seq 250); do grep -q '^listening on ' "$1" 2>/dev/null && break; sleep 0.02; done
    sed -n 's/^listening on //p' "$1" | head -1
}

# The processes a script started in the background, for stop_pids.
pids=()

# stop_pids: kill every process in $pids (the scripts' EXIT trap).
stop_pids() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}

# start_serve NAME DIR [OPTION...]: `$BIN serve DIR --listen 127.0.0.1:0 -q
# OPTION...` in the background, its stdout in NAME.out and its stderr in
# NAME.err; sets $spid and $addr, and adds the server to $pids. Exits,
# showing NAME.err, when no address came within 5 s.
start_serve() {
    local name=$1 root=$2
    shift 2
    # The > below truncates in the child, maybe after listen_addr has read
    # the address an earlier run left in the file: start from no file.
    rm -f "$name.out"
    "$BIN" serve "$root" --listen 127.0.0.1:0 -q "$@" > "$name.out" 2> "$name.err" &
    spid=$!
    pids+=("$spid")
    addr=$(listen_addr "$name.out")
    [ -n "$addr" ] || { echo "$(basename "$0"): serve did not start" >&2; cat "$name.err" >&2; exit 1; }
}

# jget PATH...: the values at PATH (keys joined by dots: latency_ms.p99)
# in the JSON object on stdin (bench --json's report, a --log line), on
# one line, separated by spaces; numbers exactly as written.
jget() {
    python3 -c 'import json, sys
d = json.load(sys.stdin, parse_float=str, parse_int=str)
out = []
for p in sys.argv[1:]:
    v = d
    for k in p.split("."): v = v[k]
    out.append(v if isinstance(v, str) else json.dumps(v))
print(" ".join(out))' "$@"
}

# traced PID CALLS LOG COMMAND...: COMMAND run while strace records the
# system calls CALLS of process PID (and its threads) into LOG.
traced() {
    local pid=$1 calls=$2 log=$3 tracer
    shift 3
    strace -f -q -p "$pid" -e trace="$calls" -o "$log" &
    tracer=$!
    sleep 0.5 # strace attached
    "$@"
    sleep 0.2 # the last calls logged
    kill "$tracer" 2>/dev/null || true
    wait "$tracer" 2>/dev/null || true
}

# median: the middle of the numbers on stdin, one a line (the lower middle
# of an even count).
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# elapsed COMMAND...: the seconds COMMAND took, on stdout (its own output
# discarded).
elapsed() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > /dev/null 2>&1
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}
