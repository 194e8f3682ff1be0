#!/usr/bin/python3
"""A stand-in for systemd's notify socket (tests/lab/systemd_notify_test.sh): binds an AF_UNIX
datagram socket at argv[1] and writes each message it receives to stdout as one JSON line,
with the sender's PID from its credentials (what NotifyAccess=main checks)."""

import json
import socket
import struct
import sys

sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
sock.bind(sys.argv[1])
print(json.dumps({"listening": True}), flush=True)
while True:
    data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("3i")))
    pid = None
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid, _, _ = struct.unpack("3i", payload[: struct.calcsize("3i")])
    print(json.dumps({"pid": pid, "message": data.decode(errors="replace")}), flush=True)
