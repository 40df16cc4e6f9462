#!/usr/bin/env python3
"""Holds many connections to a server from one source address: plain idle TCP connections and
TLS handshakes left half-finished (a ClientHello cut short), to check that they cannot stop other
clients. Bounded: every socket has a timeout and the script ends after HOLD seconds.

usage: connection_flood.py HOST PORT SOURCE_ADDRESS IDLE HALF HOLD_SECONDS READY_FILE
Prints {"idle_opened", "half_opened", "idle_closed_by_server", "half_closed_by_server", "seconds"} as JSON.
"""
import json
import resource
import select
import socket
import sys
import time

host, port, source, idle_count, half_count, hold, ready_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, idle_count + half_count + 256)), hard))

# The first bytes of a TLS 1.2 ClientHello record announcing 512 bytes, of which only a few come.
PARTIAL_HELLO = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03])


def open_connections(count, first_bytes):
    opened = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.bind((source, 0))
            s.connect((host, port))
            if first_bytes:
                s.sendall(first_bytes)
            s.setblocking(False)
            opened.append(s)
        except OSError:
            s.close()
    return opened


started = time.time()
idle = open_connections(idle_count, b"")
half = open_connections(half_count, PARTIAL_HELLO)
open(ready_file, "w").write("ready\n")


def closed_by_server(sockets):
    closed = 0
    for s in sockets:
        try:
            readable, _, _ = select.select([s], [], [], 0)
            if readable and s.recv(4096) == b"":
                closed += 1
        except OSError:
            closed += 1
    return closed


deadline = started + hold
while time.time() < deadline:
    time.sleep(0.5)
result = {"idle_opened": len(idle), "half_opened": len(half), "idle_closed_by_server": closed_by_server(idle),
          "half_closed_by_server": closed_by_server(half), "seconds": round(time.time() - started, 1)}
for s in idle + half:
    s.close()
print(json.dumps(result))
