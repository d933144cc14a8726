#!/usr/bin/env bash
# Runs the C example (examples/c/echo_upper.c, linked with libtether.a) under
# valgrind memcheck through a scripted session, and fails on any memory
# error or definite/indirect leak.
#
# The session (a python3 client speaking the wire protocol from docs/protocol.md):
#   1. handshake, a few messages (one split across frames), each answered
#      uppercased, then a polite GOAWAY NORMAL close;
#   2. a client that goes quiet after its handshake and is evicted with
#      GOAWAY IDLE_TIMEOUT;
#   3. a client that sends garbage and gets GOAWAY PROTOCOL_ERROR;
#   4. SIGTERM with a client connected: it gets GOAWAY SHUTTING_DOWN, and the
#      program must exit 0.
#
# Usage: scripts/valgrind.sh            (CARGO_TARGET_DIR is honoured)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind.sh: installing valgrind" >&2
    apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
fi
command -v python3 >/dev/null || { echo "valgrind.sh: python3 is required" >&2; exit 1; }

target="${CARGO_TARGET_DIR:-$root/target}"
work="$(mktemp -d)"
vg_pid=""
cleanup() {
    if [[ -n "$vg_pid" ]] && kill -0 "$vg_pid" 2>/dev/null; then kill -KILL "$vg_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "== building libtether.a (debug) and examples/c/echo_upper.c"
cargo build --lib --quiet
cc -std=c11 -O0 -g -Wall -Wextra -Werror -I include -o "$work/echo_upper" \
    examples/c/echo_upper.c "$target/debug/libtether.a" \
    -lpthread -ldl -lm -lgcc_s -lrt -lutil

echo "== starting echo_upper under valgrind"
valgrind --tool=memcheck --leak-check=full --error-exitcode=1 \
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
    --log-file="$work/valgrind.log" \
    "$work/echo_upper" --listen 127.0.0.1:0 --tick-ms 10 --min-heartbeat-ms 50 \
    --heartbeat-ms 100 --miss 3 --handshake-timeout-ms 5000 --linger-ms 2000 \
    >"$work/stdout" 2>"$work/stderr" &
vg_pid=$!

addr=""
for _ in $(seq 1 600); do
    addr="$(sed -n 's/^listening on //p' "$work/stdout" | head -n 1)"
    [[ -n "$addr" ]] && break
    kill -0 "$vg_pid" 2>/dev/null || break
    sleep 0.1
done
if [[ -z "$addr" ]]; then
    echo "valgrind.sh: echo_upper did not start" >&2
    cat "$work/stderr" "$work/valgrind.log" >&2 || true
    exit 1
fi
echo "   listening on $addr (pid $vg_pid)"

echo "== scripted session"
session_ok=1
python3 - "$addr" "$vg_pid" <<'PY' || session_ok=0
import os, signal, socket, struct, sys, zlib

host, port = sys.argv[1].rsplit(":", 1)
addr, pid = (host, int(port)), int(sys.argv[2])
HELLO, WELCOME, PING, PONG, DATA, GOAWAY = 1, 2, 3, 4, 5, 6
MORE = 0x80

def frame(kind, payload=b"", more=False):
    k = kind | (MORE if more else 0)
    head = bytes([0xA5, k]) + struct.pack(">H", len(payload))
    return head + struct.pack(">I", zlib.crc32(head + payload) & 0xFFFFFFFF) + payload

def message(data, max_frame=65535):
    chunks = [data[i:i + max_frame] for i in range(0, len(data), max_frame)] or [b""]
    return b"".join(frame(DATA, c, i + 1 < len(chunks)) for i, c in enumerate(chunks))

class Conn:
    def __init__(self):
        self.s = socket.create_connection(addr, timeout=30)
        self.buf = b""
    def send(self, b):
        self.s.sendall(b)
    def read_frame(self):
        while True:
            if len(self.buf) >= 8:
                n = struct.unpack(">H", self.buf[2:4])[0]
                if len(self.buf) >= 8 + n:
                    kind, payload = self.buf[1], self.buf[8:8 + n]
                    assert self.buf[0] == 0xA5, "bad magic from server"
                    crc = struct.unpack(">I", self.buf[4:8])[0]
                    assert crc == zlib.crc32(self.buf[:4] + payload) & 0xFFFFFFFF, "bad crc"
                    self.buf = self.buf[8 + n:]
                    return kind & 0x7F, bool(kind & MORE), payload
            chunk = self.s.recv(65536)
            if not chunk:
                assert not self.buf, "EOF inside a frame"
                return None
            self.buf += chunk
    def handshake(self, heartbeat_ms):
        self.send(frame(HELLO, bytes([1, 0]) + struct.pack(">I", heartbeat_ms) + bytes([0])))
        kind, _, payload = self.read_frame()
        assert kind == WELCOME, f"expected WELCOME, got {kind}"
        return struct.unpack(">I", payload[6:10])[0]  # idle_timeout_ms
    def recv_message(self):
        out = b""
        while True:
            kind, more, payload = self.read_frame()
            if kind == PONG:
                continue
            assert kind == DATA, f"expected DATA, got {kind}"
            out += payload
            if not more:
                return out
    def expect_goaway(self, code):
        f = self.read_frame()
        assert f is not None and f[0] == GOAWAY, f"expected GOAWAY {code}, got {f}"
        got = struct.unpack(">H", f[2][:2])[0]
        assert got == code, f"expected GOAWAY {code}, got {got} ({f[2][2:]!r})"
        assert self.read_frame() is None, "expected EOF after GOAWAY"
        self.s.close()

# 1. echo-uppercase, then a polite close
c = Conn()
c.handshake(5000)
for text in [b"hello", b"tether under valgrind", b"", bytes(range(32, 127)), b"x" * 100_000]:
    c.send(message(text))
    got = c.recv_message()
    assert got == text.upper(), f"reply to {text[:20]!r}... was {got[:20]!r}"
c.send(frame(PING, b"p"))
c.send(frame(GOAWAY, struct.pack(">H", 0) + b"bye"))
while c.read_frame() is not None:
    pass
c.s.close()
print("   echo: 5 messages uppercased, polite close")

# 2. idle eviction
idle = Conn()
timeout_ms = idle.handshake(100)
idle.expect_goaway(8)
print(f"   idle: evicted with IDLE_TIMEOUT after {timeout_ms} ms of silence")

# 3. garbage
bad = Conn()
bad.send(b"\x00not a frame at all")
bad.expect_goaway(1)
print("   garbage: PROTOCOL_ERROR")

# 4. SIGTERM with a client connected
last = Conn()
last.handshake(5000)
last.send(message(b"last words"))
assert last.recv_message() == b"LAST WORDS"
os.kill(pid, signal.SIGTERM)
last.expect_goaway(11)
print("   SIGTERM: SHUTTING_DOWN")
PY

status=0
wait "$vg_pid" || status=$?
vg_pid=""

echo "== valgrind summary (exit status $status)"
sed -n '/HEAP SUMMARY/,$p' "$work/valgrind.log" | sed 's/^==[0-9]*== //'
echo "== program log (last lines)"
tail -n 5 "$work/stderr"

if [[ "$session_ok" != 1 ]]; then
    echo "valgrind.sh: FAILED: the scripted session failed" >&2
    exit 1
fi
if [[ "$status" != 0 ]]; then
    echo "valgrind.sh: FAILED: echo_upper exited $status under valgrind (1 = memory errors or leaks)" >&2
    grep -E "Invalid|uninitialised|definitely|indirectly" "$work/valgrind.log" | head -n 20 >&2 || true
    exit 1
fi
echo "valgrind.sh: OK: no memory errors, no definite or indirect leaks"
