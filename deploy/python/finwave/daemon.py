"""Starting and stopping a finwave daemon for a test run (the pytest plugin's finwave_daemon).

finwave gets a control socket and a ready file of its own in `workdir`, its outcomes (JSON
lines) go to workdir/outcomes.jsonl and its log to workdir/finwave.log. With `netns`, it runs in
that network namespace: a name under /run/netns (through ``ip netns exec``) or a path such as
/proc/PID/ns/net (through ``nsenter``).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from finwave.client import Client

# finwave binds its queue and installs its capture in well under a second; a loaded CI machine
# may take longer, and a daemon that cannot start says why at once (it exits).
DEFAULT_READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


class DaemonError(RuntimeError):
    """finwave did not start, or did not stop cleanly; the message carries its log's tail."""


@dataclass
class DaemonConfig:
    """What to start: `binary` (default $FINWAVE_BIN, else "finwave" on PATH), the mode
    ("local" or "router"), ports, a rule file, a network namespace, and any other options."""

    binary: str = ""
    mode: str = "local"
    ports: list[int] = field(default_factory=list)
    rules: str | None = None
    netns: str | None = None
    args: list[str] = field(default_factory=list)
    ready_timeout: float = DEFAULT_READY_TIMEOUT_S

    def command(self, control: Path, ready: Path) -> list[str]:
        binary = self.binary or os.environ.get("FINWAVE_BIN") or "finwave"
        argv = [binary, "--json", "--mode", self.mode, "--control", str(control)]
        argv += ["--ready-file", str(ready)]
        for port in self.ports:
            argv += ["--port", str(port)]
        if self.rules:
            argv += ["--rules", self.rules]
        argv += self.args
        if not self.netns:
            return argv
        if "/" in self.netns:
            return ["nsenter", f"--net={self.netns}", "--", *argv]
        return ["ip", "netns", "exec", self.netns, *argv]


class Daemon:
    """A finwave process started for tests. ``start()`` returns once it is ready (its queue
    bound and capture installed); ``stop()`` ends it with SIGTERM, as a user would."""

    def __init__(self, config: DaemonConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.control_path = workdir / "control.sock"
        self.ready_path = workdir / "ready"
        self.outcomes_path = workdir / "outcomes.jsonl"
        self.log_path = workdir / "finwave.log"
        self.process: subprocess.Popen[bytes] | None = None

    def client(self) -> Client:
        return Client(str(self.control_path))

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def start(self) -> Daemon:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ready_path.unlink(missing_ok=True)
        argv = self.config.command(self.control_path, self.ready_path)
        with open(self.outcomes_path, "wb") as out, open(self.log_path, "wb") as log:
            try:
                self.process = subprocess.Popen(
                    argv, stdout=out, stderr=log, stdin=subprocess.DEVNULL
                )
            except OSError as error:
                raise DaemonError(f"cannot run {shlex.join(argv)}: {error}") from None
        deadline = time.monotonic() + self.config.ready_timeout
        while not (self.ready_path.exists() and self.ready_path.stat().st_size > 0):
            status = self.process.poll()
            if status is not None:
                self.process = None
                raise DaemonError(
                    f"finwave exited with status {status} during start-up"
                    f" ({shlex.join(argv)}):\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop(check=False)
                raise DaemonError(
                    f"finwave was not ready within {self.config.ready_timeout:g} s"
                    f" ({shlex.join(argv)}):\n{self.log_tail()}"
                )
            time.sleep(0.02)
        return self

    def stop(self, *, check: bool = True) -> int | None:
        """Ends finwave (SIGTERM, then SIGKILL after 10 s) and returns its exit status; with
        `check`, a status other than 0 raises DaemonError."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            status = process.wait()
            if check:
                raise DaemonError(f"finwave did not stop within {STOP_TIMEOUT_S:g} s of SIGTERM")
        if check and status != 0:
            raise DaemonError(f"finwave exited with status {status}:\n{self.log_tail()}")
        return status
