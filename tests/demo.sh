#!/usr/bin/env bash
# `make demo`: serve a small sample directory on a free loopback port, then
# list, ping and fetch a file from it with verification, and stop the server.
set -euo pipefail
bin=${1:-target/release/tcpfetch}
demo=target/demo
rm -rf "$demo"
mkdir -p "$demo/files/docs" "$demo/downloads"
printf 'hello from tcpfetch\n' > "$demo/files/hello.txt"
printf 'nested file with a space in its name\n' > "$demo/files/docs/read me.txt"
head -c 8388608 /dev/urandom > "$demo/files/random-8MiB.bin"

"$bin" serve "$demo/files" --listen 127.0.0.1:0 > "$demo/serve.out" 2> "$demo/serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q '^listening on' "$demo/serve.out" 2>/dev/null && break
  sleep 0.05
done
addr=$(sed -n 's/^listening on //p' "$demo/serve.out")
echo "== tcpfetch serve $demo/files  ->  listening on $addr"
echo
echo "== tcpfetch ping $addr"
"$bin" ping "$addr"
echo
echo "== tcpfetch list $addr"
"$bin" list "$addr"
echo
echo "== tcpfetch get $addr random-8MiB.bin -o $demo/downloads/"
"$bin" get "$addr" random-8MiB.bin -o "$demo/downloads/"
echo
echo "== sha256sum of the original and of the download"
sha256sum "$demo/files/random-8MiB.bin" "$demo/downloads/random-8MiB.bin"
echo
echo "== tcpfetch get $addr hello.txt --sha256 <a digest carried by hand that does not match>"
set +e
"$bin" get "$addr" hello.txt -o "$demo/downloads/" --sha256 "$(printf '0%.0s' $(seq 64))"
echo "exit status $? (3 = integrity failure); nothing was saved:"
set -e
ls "$demo/downloads"
echo
echo "== the server's access log"
cat "$demo/serve.log"
