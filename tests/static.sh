#!/usr/bin/env bash
# Checks of the static binaries that `make static TARGET=...` leaves at
# target/static/<target>/tcpfetch, for each target given (default: x86_64
# and aarch64 musl). A binary for another architecture runs under Debian's
# qemu-user-static (`qemu-aarch64-static BIN`), which .ci/run installs.
# For each binary: it is statically linked and within the size budget, and
# under an empty environment (`env -i`) it prints its version, serves and
# fetches a file over loopback, makes a manifest with `sum` and checks it
# with `verify -c`, and fails clearly on a host name it cannot resolve (and,
# as root, within --timeout when resolv.conf names a silent DNS server).
# Then every pair of binaries talks across architectures: each serves while
# every other one downloads. As root, each also runs in an empty chroot: no
# /etc/hosts, no resolv.conf, no NSS libraries, nothing but the binary (and
# the emulator for a foreign one).
#
# Usage: bash tests/static.sh [TARGET...]
#        e.g. bash tests/static.sh x86_64-unknown-linux-musl
# A target whose binary is missing fails, saying which `make static` to run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -eq 0 ]; then
    set -- x86_64-unknown-linux-musl aarch64-unknown-linux-musl
fi
TARGETS=("$@")
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
HOST_ARCH=$(uname -m)

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "static.sh: FAIL: $*" >&2
    exit 1
}
pass() {
    echo "static.sh: ok: $*"
}

# The architecture a target triple is for (its first field).
arch_of() { echo "${1%%-*}"; }

# The command that runs TARGET's binary: the binary itself on its own
# architecture, otherwise through qemu-ARCH-static.
declare -A RUN
for target in "${TARGETS[@]}"; do
    bin=$(realpath -m "target/static/$target/tcpfetch")
    [ -x "$bin" ] || fail "$bin is missing (run 'make static TARGET=$target' first)"
    arch=$(arch_of "$target")
    if [ "$arch" = "$HOST_ARCH" ]; then
        RUN[$target]=$bin
    else
        qemu=$(command -v "qemu-$arch-static") ||
            fail "qemu-$arch-static is missing to run the $arch binary (apt-get install qemu-user-static)"
        RUN[$target]="$qemu $bin"
    fi
done

# Start `RUNNER... serve $srv_dir` on 127.0.0.1:0 (RUNNER being e.g.
# `env -i BIN`), logging to LOG.out/.err, and set $addr from its first line.
start_server() {
    local log=$1
    shift
    : >"$log.out"
    "$@" serve "$srv_dir" --listen 127.0.0.1:0 >"$log.out" 2>"$log.err" &
    server_pid=$!
    addr=
    # Under emulation the server takes longer to start.
    for _ in $(seq 400); do
        addr=$(sed -n 's/^listening on //p' "$log.out")
        [ -n "$addr" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    cat "$log.err" >&2
    fail "serve did not start: $*"
}
stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

mkdir -p "$work/srv"
srv_dir=$work/srv
head -c 3000000 /dev/urandom >"$work/srv/data.bin"

# The checks of one binary on its own.
check_one() {
    local target=$1 bin
    local -a run
    read -r -a run <<<"${RUN[$target]}"
    bin=${run[-1]}
    echo "static.sh: --- $target (${run[*]})"

    # A static executable has no program interpreter (ld-linux.so).
    command -v readelf >/dev/null || fail "readelf is missing (apt-get install binutils)"
    if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
        fail "$bin is dynamically linked"
    fi
    pass "statically linked (no program interpreter)"

    # The budget is 1.5 MiB stripped; over it is reported, not fatal, so
    # that a merge that grows the binary does not turn CI red on its own.
    local size budget
    size=$(stat -c %s "$bin")
    budget=$((3 * 1024 * 1024 / 2))
    if [ "$size" -gt "$budget" ]; then
        echo "static.sh: WARNING: $target: $size bytes is over the budget of $budget bytes"
    else
        pass "size $size bytes (budget $budget)"
    fi

    local out
    out=$(env -i "${run[@]}" --version) || fail "--version under env -i exited $?"
    [ "$out" = "tcpfetch $VERSION" ] || fail "--version under env -i printed '$out'"
    pass "env -i --version: $out"

    local dl=$work/dl-$target
    mkdir -p "$dl"
    start_server "$work/serve-$target" env -i "${run[@]}"
    (cd "$dl" && env -i "${run[@]}" get "$addr" data.bin -q) || fail "get under env -i exited $?"
    cmp -s "$work/srv/data.bin" "$dl/data.bin" || fail "downloaded bytes differ"
    stop_server
    pass "env -i serve + get over loopback ($addr)"

    # Two hashing threads each: sum reads beside its hasher, verify checks
    # two files at once.
    cp "$dl/data.bin" "$dl/copy.bin"
    (cd "$dl" && env -i "${run[@]}" sum data.bin --jobs 2 >SHA256SUMS &&
        env -i "${run[@]}" sum copy.bin >>SHA256SUMS &&
        env -i "${run[@]}" verify -c SHA256SUMS --jobs 2 >verify.out) ||
        fail "sum + verify -c under env -i"
    [ "$(cat "$dl/verify.out")" = "$(printf 'data.bin: OK\ncopy.bin: OK')" ] ||
        fail "verify -c printed '$(cat "$dl/verify.out")'"
    (cd "$dl" && sha256sum -c --quiet SHA256SUMS) || fail "sha256sum -c rejects the manifest sum made"
    pass "env -i sum + verify -c --jobs 2 (and sha256sum -c agrees)"

    # A name that no resolver knows: exit 1 and say what could not be resolved.
    local err code
    set +e
    err=$(env -i timeout 60 "${run[@]}" ping host.invalid 2>&1 >/dev/null)
    code=$?
    set -e
    [ "$code" = 1 ] || fail "ping host.invalid exited $code: $err"
    case $err in
    *"cannot resolve 'host.invalid'"*) pass "unresolvable name: $err" ;;
    *) fail "unclear message for an unresolvable name: $err" ;;
    esac

    check_chroot "$target"
}

# The air-gapped box: nothing but the binary (and, for a foreign one, the
# emulator, itself a static binary). Needs root for chroot.
check_chroot() {
    local target=$1 root
    local -a run inside
    if [ "$(id -u)" != 0 ] || ! chroot / true 2>/dev/null; then
        echo "static.sh: skipped: empty-chroot checks (need root)"
        return 0
    fi
    read -r -a run <<<"${RUN[$target]}"
    root=$work/root-$target
    mkdir -p "$root/srv" "$root/dl"
    cp "${run[-1]}" "$root/tcpfetch"
    inside=(/tcpfetch)
    if [ ${#run[@]} -gt 1 ]; then
        cp "${run[0]}" "$root/qemu"
        inside=(/qemu /tcpfetch)
    fi
    cp "$work/srv/data.bin" "$root/srv/"
    local saved_srv=$srv_dir
    srv_dir=/srv
    start_server "$work/chroot-$target" chroot "$root" "${inside[@]}"
    srv_dir=$saved_srv
    chroot "$root" "${inside[@]}" get "$addr" data.bin -o /dl/data.bin -q || fail "get in an empty chroot"
    cmp -s "$root/srv/data.bin" "$root/dl/data.bin" || fail "downloaded bytes differ (chroot)"
    # localhost needs no /etc/hosts in the static build.
    chroot "$root" "${inside[@]}" ping "localhost:${addr##*:}" >/dev/null || fail "ping localhost in an empty chroot"
    stop_server
    pass "empty chroot: serve + get over loopback by IP address, ping by localhost"

    local err code
    set +e
    err=$(timeout 60 chroot "$root" "${inside[@]}" ping fileserver.lan 2>&1 >/dev/null)
    code=$?
    set -e
    [ "$code" = 1 ] || fail "ping fileserver.lan in an empty chroot exited $code: $err"
    case $err in
    *"cannot resolve 'fileserver.lan'"*) pass "empty chroot, no /etc/hosts: $err" ;;
    *) fail "unclear message for a name in an empty chroot: $err" ;;
    esac
    check_silent_resolver "$root" "${inside[@]}"
}

# An air-gapped box whose resolv.conf still names a DNS server that never
# answers (here a UDP socket on 127.0.0.9:53 that reads nothing):
# `--timeout 1` bounds the name lookup too, where it waited for the
# resolver's own timeouts (5 s for musl, and more).
check_silent_resolver() {
    local root=$1 err code silent line
    shift
    mkdir -p "$root/etc"
    echo "nameserver 127.0.0.9" >"$root/etc/resolv.conf"
    exec {silent}< <(exec python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.9", 53))
print("ready", flush=True)
time.sleep(120)')
    local listener=$!
    read -r -t 10 -u "$silent" line || true
    [ "$line" = ready ] || fail "could not start a silent DNS server on 127.0.0.9:53"
    set +e
    err=$(timeout 60 chroot "$root" "$@" ping fileserver.lan --timeout 1 2>&1 >/dev/null)
    code=$?
    set -e
    kill "$listener" 2>/dev/null || true
    exec {silent}<&-
    rm -f "$root/etc/resolv.conf"
    [ "$code" = 1 ] || fail "ping fileserver.lan with a silent DNS server exited $code: $err"
    case $err in
    *"cannot resolve 'fileserver.lan': no answer from the resolver within 1s"*)
        pass "silent DNS server, --timeout 1: $err" ;;
    *) fail "a silent DNS server was waited for past --timeout 1: $err" ;;
    esac
}

# SERVER's binary serves, CLIENT's downloads: across architectures.
check_pair() {
    local server=$1 client=$2 dl
    local -a srun crun
    read -r -a srun <<<"${RUN[$server]}"
    read -r -a crun <<<"${RUN[$client]}"
    dl=$work/pair-$server-$client
    mkdir -p "$dl"
    start_server "$work/pair-$server-$client" env -i "${srun[@]}"
    (cd "$dl" && env -i "${crun[@]}" get "$addr" data.bin -q) ||
        fail "$client get from a $server serve exited $?"
    cmp -s "$work/srv/data.bin" "$dl/data.bin" || fail "$server -> $client: downloaded bytes differ"
    stop_server
    pass "$(arch_of "$server") serve -> $(arch_of "$client") get: 3 MB verified"
}

for target in "${TARGETS[@]}"; do
    check_one "$target"
done
for server in "${TARGETS[@]}"; do
    for client in "${TARGETS[@]}"; do
        [ "$server" = "$client" ] || check_pair "$server" "$client"
    done
done
echo "static.sh: all checks passed for: ${TARGETS[*]}"
