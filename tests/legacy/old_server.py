#!/usr/bin/env python3
"""A stand-in for the original Python tcp-server, for tcpfetch's tests.

It follows the old protocol byte for byte (see src/legacy/mod.rs): every
control message is a 10-byte length header (f"{n:<10}") and a pickle of
{"messageSize": n, "message": MESSAGE} with the message upper-cased; it lists
one name but serves files 1 and 2; a file goes as a size header and the raw
bytes; DIGEST<n> gets a "32" header and the raw SHA-256, then the connection
closes; TEST gets OK and the connection closes.

Unlike the original it reads exactly and serves each client on a thread, so
the tests can rely on it. Loopback only; it prints "listening on IP:PORT".

Usage: old_server.py FILE1 FILE2 [--protocol N] [--corrupt] [--truncate]
                                 [--huge-message]
  --protocol N     pickle protocol of its messages (3 = Python 3.7, 4 = 3.8+)
  --corrupt        send a wrong digest
  --truncate       announce 1000 bytes more than it sends, then close
  --huge-message   answer HELLO with a header claiming a 1 GB message
"""
import hashlib
import os
import pickle
import socket
import sys
import threading


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError("peer closed")
        data += chunk
    return data


def main():
    args = sys.argv[1:]
    protocol = 4
    if "--protocol" in args:
        i = args.index("--protocol")
        protocol = int(args[i + 1])
        del args[i : i + 2]
    corrupt = "--corrupt" in args
    truncate = "--truncate" in args
    huge = "--huge-message" in args
    files = [a for a in args if not a.startswith("--")]

    def send_message(conn, message):
        message = message.upper()
        payload = pickle.dumps(
            {"messageSize": len(message), "message": message}, protocol=protocol
        )
        conn.sendall(f"{len(payload):<10}".encode() + payload)

    def recv_message(conn):
        size = int(recv_exact(conn, 10).decode())
        return pickle.loads(recv_exact(conn, size))["message"]

    def session(conn):
        with conn:
            try:
                while True:
                    message = recv_message(conn)
                    if message == "TEST":
                        send_message(conn, "OK")
                        return
                    if message == "HELLO":
                        if huge:
                            conn.sendall(f"{10**9:<10}".encode() + b"x" * 100)
                            return
                        send_message(conn, "HELLO BACK")
                    elif message == "PREPARED":
                        send_message(conn, "ARCHIVOS: 1. " + os.path.basename(files[0]))
                    elif message.startswith("DIGEST"):
                        n = int(message[len("DIGEST") :])
                        with open(files[n - 1], "rb") as f:
                            digest = hashlib.sha256(f.read()).digest()
                        if corrupt:
                            digest = bytes(32)
                        conn.sendall(f"{32:<10}".encode() + digest)
                        return
                    else:
                        with open(files[int(message) - 1], "rb") as f:
                            data = f.read()
                        if truncate:
                            conn.sendall(f"{len(data) + 1000:<10}".encode() + data)
                            return
                        conn.sendall(f"{len(data):<10}".encode() + data)
            except (EOFError, ValueError, OSError):
                return

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    host, port = server.getsockname()
    print(f"listening on {host}:{port}", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=session, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
