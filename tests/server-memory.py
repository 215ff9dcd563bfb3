#!/usr/bin/env python3
"""What a waiting connection costs `serve` in memory (#14, C10K).

    python3 tests/server-memory.py BIN [N]

Starts BIN serve on a scratch directory holding one 64 KiB file, opens N
connections (default 5000) that send nothing, then sends a GET of the
file on each and reads the answers, keeping every connection open. After
each step it prints the server's resident memory (VmRSS, VmHWM) and what
it grew by per connection, split by mapping from /proc/PID/smaps: the
connection threads' stacks (anonymous mappings of the pool's 256 KiB)
and everything else (glibc's arenas, the main heap). Needs N + 100 open
files for itself and twice that for serve (both raise their soft limit).
"""
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time

STACK_KIB = 256


def status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                fields[key] = int(value.split()[0])
    return fields


def resident(pid):
    """(stack KiB, other KiB, stack mappings) resident now."""
    stacks = other = count = 0
    is_stack = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = re.match(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(\S*)", line)
            if head:
                size = (int(head[2], 16) - int(head[1], 16)) // 1024
                is_stack = size == STACK_KIB and not head[3]
                count += is_stack
            elif line.startswith("Rss:"):
                kib = int(line.split()[1])
                if is_stack:
                    stacks += kib
                else:
                    other += kib
    return stacks, other, count


def report(pid, step, base, n):
    s = status(pid)
    stacks, other, count = resident(pid)
    line = f"{step:34s} VmRSS {s['VmRSS'] / 1024:6.1f} MiB  VmHWM {s['VmHWM'] / 1024:6.1f} MiB  threads {s['Threads']}"
    if base is not None and n:
        per = (s["VmRSS"] - base[0]) * 1024 / n
        stack_per = (stacks - base[1]) * 1024 / max(count, 1)
        rest_per = (other - base[2]) * 1024 / n
        line += f"\n{'':34s} per connection {per:6.0f} B: stack {stack_per:5.0f} B per thread ({count} threads), the rest {rest_per:5.0f} B"
    print(line, flush=True)
    return s["VmRSS"], stacks, other


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="tcpfetch-mem-") as root:
        with open(os.path.join(root, "64k.bin"), "wb") as f:
            f.write(os.urandom(65536))
        server = subprocess.Popen(
            [binary, "serve", root, "--listen", "127.0.0.1:0", "-q", "--max-clients", str(n + 100)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            host, port = server.stdout.readline().split()[-1].rsplit(":", 1)
            pid = server.pid
            base = report(pid, "started", None, 0)
            conns = [socket.create_connection((host, int(port))) for _ in range(n)]
            time.sleep(2)
            report(pid, f"{n} connections, nothing sent", base, n)
            for c in conns:
                c.sendall(b"GET 0 64k.bin\n")
            for c in conns:
                c.settimeout(30)
                got = b""
                while b"\n" not in got:
                    got += c.recv(65536)
                header, body = got.split(b"\n", 1)
                left = int(header.split()[2]) - len(body)
                while left > 0:
                    chunk = c.recv(min(left, 1 << 20))
                    if not chunk:
                        sys.exit("server-memory.py: short body")
                    left -= len(chunk)
            time.sleep(1)
            report(pid, f"{n} GETs answered, still open", base, n)
            for c in conns:
                c.close()
        finally:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
