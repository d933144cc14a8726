#!/usr/bin/env python3
"""Hold N idle, handshaked tether connections open (helper for rss_per_conn.sh).

usage: rss_clients.py HOST:PORT N [HEARTBEAT_MS] [--tls CA_FILE]

Connects N clients, sources bound round-robin to 127.0.0.2 .. 127.0.0.11 (so
the loopback ephemeral ports of 127.0.0.1 stay free), sends each a HELLO and
checks its WELCOME. Then prints `ready N` and waits for EOF on stdin; then
closes every connection and prints `closed`. Exits 1 on any failure.
With `--tls CA_FILE` every connection first does a TLS handshake, verifying
the server's certificate for `localhost` against CA_FILE.
"""

import resource
import socket
import ssl
import struct
import sys
import zlib

SOURCES = [f"127.0.0.{i}" for i in range(2, 12)]
BATCH = 500
TIMEOUT_S = 10.0
WELCOME_LEN = 8 + 32


def frame(kind: int, payload: bytes) -> bytes:
    head = struct.pack(">BBH", 0xA5, kind, len(payload))
    crc = zlib.crc32(head + payload) & 0xFFFFFFFF
    return head + struct.pack(">I", crc) + payload


def hello(heartbeat_ms: int) -> bytes:
    # version 1, flags 0, heartbeat_ms, token_len 0
    return frame(0x01, struct.pack(">BBIB", 1, 0, heartbeat_ms, 0))


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def main() -> int:
    args = sys.argv[1:]
    tls = None
    if "--tls" in args:
        i = args.index("--tls")
        tls = ssl.create_default_context(cafile=args[i + 1])
        del args[i : i + 2]
    host, port = args[0].rsplit(":", 1)
    n = int(args[1])
    heartbeat_ms = int(args[2]) if len(args) > 2 else 600000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))
    hello_bytes = hello(heartbeat_ms)
    socks = []
    try:
        while len(socks) < n:
            batch = []
            for _ in range(min(BATCH, n - len(socks))):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(TIMEOUT_S)
                s.bind((SOURCES[len(socks) % len(SOURCES)], 0))
                s.connect((host, int(port)))
                if tls is not None:
                    s = tls.wrap_socket(s, server_hostname="localhost")
                s.sendall(hello_bytes)
                socks.append(s)
                batch.append(s)
            # Read this batch's WELCOMEs before the next, so the listen
            # backlog never overflows.
            for s in batch:
                w = recv_exact(s, WELCOME_LEN)
                if w[0] != 0xA5 or w[1] != 0x02:
                    raise RuntimeError(f"expected WELCOME, got header {w[:8].hex()}")
        print(f"ready {len(socks)}", flush=True)
        sys.stdin.read()  # until EOF: the caller is done measuring
    except Exception as e:  # noqa: BLE001 - report and fail
        print(f"error after {len(socks)} connections: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        for s in socks:
            s.close()
    print("closed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
