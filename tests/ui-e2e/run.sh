#!/usr/bin/env bash
# The browser test of `tcpfetch ui`: npm ci here, build the binary, drive
# /usr/bin/chromium headless through playwright-core, screenshots into
# target/ui-screenshots/.
#
# Usage: tests/ui-e2e/run.sh [BINARY]
#   BINARY is target/debug/tcpfetch (the default) or target/release/tcpfetch
#   (either is built first), or any other path to an already built binary.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-target/debug/tcpfetch}"

cd "$root"
case "$bin" in
  target/release/tcpfetch | "$root/target/release/tcpfetch") cargo build --release --quiet ;;
  target/debug/tcpfetch | "$root/target/debug/tcpfetch") cargo build --quiet ;;
esac
[[ -x "$bin" ]] || { echo "run.sh: no binary at $bin" >&2; exit 2; }
[[ -x "${CHROMIUM:-/usr/bin/chromium}" ]] || { echo "run.sh: /usr/bin/chromium is missing (apt-get install -y chromium)" >&2; exit 2; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
node "$here/e2e.js" "$bin" "$root/target/ui-screenshots"
