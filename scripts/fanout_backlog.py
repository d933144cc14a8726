#!/usr/bin/env python3
"""Server memory while every pub/sub subscriber is backlogged.

    scripts/fanout_backlog.py PORT PID [SUBSCRIBERS] [MESSAGES] [BODY_BYTES]

Opens SUBSCRIBERS connections (bound across 127.0.0.2-127.0.0.21, small
receive buffers) that subscribe to one channel and then never read, has one
publisher send MESSAGES publishes of BODY_BYTES, and prints the server's VmRSS
before the subscribers, with them idle, and with every one of them backlogged,
next to what one copy of the backlog per subscriber would have cost. The
server must run `--app pubsub` with a `--max-output` above the backlog.
Bounded: every socket has a timeout and the run stops after 120 s.
"""
import socket, struct, sys, time, zlib

def frame(kind, payload, more=False):
    head = bytes([0xA5, kind | (0x80 if more else 0)]) + struct.pack(">H", len(payload))
    return head + struct.pack(">I", zlib.crc32(head + payload)) + payload

HELLO = frame(1, bytes([1, 0]) + struct.pack(">I", 600000) + bytes([0]))

def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0

def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    subs = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    messages = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    body = int(sys.argv[5]) if len(sys.argv) > 5 else 1024
    deadline = time.time() + 120
    before = rss_kb(pid)
    conns = []
    for i in range(subs):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.bind((f"127.0.0.{2 + i % 20}", 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        s.sendall(HELLO + frame(5, b"Sfan"))
        conns.append(s)
    time.sleep(1.0)
    idle = rss_kb(pid)
    pub = socket.create_connection(("127.0.0.1", port), timeout=10)
    pub.sendall(HELLO)
    payload = b"P" + bytes([3]) + b"fan" + b"x" * body
    for n in range(messages):
        pub.sendall(frame(5, payload))
        if n % 20 == 19:
            time.sleep(0.02)
        if time.time() > deadline:
            break
    time.sleep(2.0)
    backlogged = rss_kb(pid)
    per_sub_backlog = messages * (body + 5 + 8)
    print(f"subscribers={subs} messages={messages} body_bytes={body}")
    print(f"rss_kb_before={before} rss_kb_subscribed_idle={idle} rss_kb_backlogged={backlogged}")
    print(f"backlog_bytes_per_subscriber={per_sub_backlog} (some of it in kernel socket buffers)")
    grown = (backlogged - idle) * 1024
    print(f"rss_growth_bytes={grown} per_subscriber={grown // subs}")
    print(f"one_copy_per_subscriber_would_be_bytes={per_sub_backlog * subs}")
    for s in conns:
        s.close()
    pub.close()

if __name__ == "__main__":
    main()
