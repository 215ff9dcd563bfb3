#!/usr/bin/env python3
"""A stand-in for the original Python tcp-client, for tcpfetch's tests.

It plays the old client's session byte for byte against HOST:PORT:
HELLO -> HELLO BACK, PREPARED -> the file list, the file number -> a size
header and the raw bytes, DIGEST<n> -> a "32" header and the SHA-256. Its
messages are pickled like the original's (protocol 4 as Python 3.8+, or the
one given), and it unpickles the answers with the real pickle module.

It writes the bytes to OUT and prints three lines: the list, the digest the
server sent (hex), and Correcto or Corrupto, as the old client logs.

Usage: old_client.py HOST PORT N OUT [--protocol P]
"""
import hashlib
import pickle
import socket
import sys


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError(f"server closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def main():
    host, port, number, out = sys.argv[1:5]
    protocol = int(sys.argv[6]) if len(sys.argv) > 6 and sys.argv[5] == "--protocol" else 4

    conn = socket.create_connection((host, int(port)), timeout=10)

    def send_message(message):
        message = message.upper()
        payload = pickle.dumps(
            {"messageSize": len(message), "message": message}, protocol=protocol
        )
        conn.sendall(f"{len(payload):<10}".encode() + payload)

    def recv_message():
        size = int(recv_exact(conn, 10).decode())
        return pickle.loads(recv_exact(conn, size))["message"]

    send_message("HELLO")
    assert recv_message() == "HELLO BACK"
    send_message("PREPARED")
    listing = recv_message()
    send_message(number)
    size = int(recv_exact(conn, 10).decode())
    data = recv_exact(conn, size)
    send_message(f"DIGEST{number}")
    assert int(recv_exact(conn, 10).decode()) == 32
    digest = recv_exact(conn, 32)
    conn.close()
    with open(out, "wb") as f:
        f.write(data)
    print(listing.replace("\n", " | "))
    print(digest.hex())
    print("Correcto" if hashlib.sha256(data).digest() == digest else "Corrupto")


if __name__ == "__main__":
    main()
