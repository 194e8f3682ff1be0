"""A fake finwave control socket for the client's unit tests.

It listens on a Unix socket in a fresh directory and answers each request line with what the
test's handler returns: a list of byte strings to send (each sent as it is, so a test can cut
a reply short), or CLOSE to hang up. It records every request it read.
"""

from __future__ import annotations

import json
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLOSE = object()  # a handler's answer: close the connection without replying

Handler = Callable[[dict[str, Any]], "list[bytes] | object"]


def reply(request: dict[str, Any], **body: Any) -> bytes:
    """An ok reply to `request`, as the daemon writes it: one line."""
    return json.dumps({"id": request.get("id"), "ok": True, **body}).encode() + b"\n"


def error(request: dict[str, Any], code: str, message: str, **extra: Any) -> bytes:
    line = {"id": request.get("id"), "ok": False, "error": {"code": code, "message": message}}
    return json.dumps({**line, **extra}).encode() + b"\n"


class FakeDaemon:
    def __init__(self, handler: Handler) -> None:
        # Short: a Unix socket path has at most 107 bytes.
        self._dir = tempfile.TemporaryDirectory(prefix="fwpy", dir="/tmp")
        self.path = str(Path(self._dir.name) / "control.sock")
        self.handler = handler
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(8)
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            for line in lines:
                request = json.loads(line)
                self.requests.append(request)
                answer = self.handler(request)
                if answer is CLOSE:
                    return
                assert isinstance(answer, list)
                for chunk in answer:
                    conn.sendall(chunk)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        self._dir.cleanup()

    def __enter__(self) -> FakeDaemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sample_outcome(**changes: Any) -> dict[str, Any]:
    """An outcome as the daemon sends it (README, "Output"): a client-first close whose first
    final ACK a rule dropped, the server's FIN retransmitted once, then clean."""
    outcome: dict[str, Any] = {
        "event": "outcome",
        "id": 7,
        "flow": {"client": "198.18.1.2:40000", "server": "198.18.2.2:5000"},
        "sides_known": True,
        "closer": "client",
        "kind": "four_way",
        "result": "clean",
        "ended_by": "settle",
        "fin_retransmits": {"client": 0, "server": 1},
        "final_acks": {"seen": 2, "dropped": 1},
        "rst": None,
        "teardown_ms": 205.123,
        "data_after_fin": {"bytes": 0},
        "dup_acks": 0,
        "segments": 9,
        "actions": [{"rule": "lose", "role": "final_ack", "action": "drop", "count": 1}],
        "actions_dropped": 0,
        "timeline": [
            {"t_ms": 0.0, "from": "client", "role": "fin1", "retx": False, "dup_ack": False,
             "bogus": False, "flags": "FA", "seq": 1001, "ack": 2001, "len": 0,
             "verdict": "accept"},
            {"t_ms": 1.5, "from": "client", "role": "final_ack", "retx": False, "dup_ack": False,
             "bogus": False, "flags": "A", "seq": 1002, "ack": 2002, "len": 0,
             "verdict": "drop"},
            {"t_ms": 2.0, "from": "server", "role": "fin2", "retx": False, "dup_ack": False,
             "bogus": False, "flags": "FA", "seq": 2001, "ack": 1002, "len": 0,
             "verdict": "delay", "hold_ms": 50, "released": True, "copies": 2},
        ],
        "timeline_dropped": 0,
        "seq": 12,
    }
    outcome.update(changes)
    return outcome
