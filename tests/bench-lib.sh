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

# ticks PIDS...: the clock ticks (utime + stime, all threads) the processes
# PIDS have used so far.
ticks() {
    local t=0 p
    for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    echo "$t"
}

# start_nginx FILE [PREFIX...]: nginx-light serving $dir/files on a free
# port below the ephemeral range, one worker, sendfile on, no access log
# (config and logs in $dir/nginx), started under PREFIX (chrt, taskset)
# and ready once it serves FILE → $nport, $npid (the master, in $pids).
start_nginx() {
    local file=$1 try
    shift
    mkdir -p "$dir/nginx"
    for try in 1 2 3 4 5; do
        nport=$((20000 + RANDOM % 12000))
        try_nginx "$file" "$@" && return
    done
    echo "$(basename "$0"): nginx did not start" >&2
    cat "$dir/nginx/stderr" >&2
    exit 1
}
try_nginx() {
    local file=$1
    shift
    cat > "$dir/nginx/nginx.conf" << EOF
worker_processes 1;
$([ "$(id -u)" = 0 ] && echo "user root;")
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log;
worker_rlimit_nofile 65536;
events { worker_connections 20000; }
http {
    sendfile on;
    tcp_nopush on;
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path $dir/nginx/body;
    proxy_temp_path $dir/nginx/proxy;
    fastcgi_temp_path $dir/nginx/fastcgi;
    uwsgi_temp_path $dir/nginx/uwsgi;
    scgi_temp_path $dir/nginx/scgi;
    server { listen 127.0.0.1:$nport backlog=4096; root $dir/files; }
}
EOF
    "$@" "$(command -v nginx || echo /usr/sbin/nginx)" -c "$dir/nginx/nginx.conf" \
        -p "$dir/nginx" -g 'daemon off;' 2> "$dir/nginx/stderr" &
    npid=$!
    pids+=("$npid")
    for _ in $(seq 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$nport/$file" && return 0
        kill -0 "$npid" 2> /dev/null || return 1
        sleep 0.05
    done
    return 1
}
