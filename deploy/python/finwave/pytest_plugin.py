"""The pytest plugin (entry point pytest11: installing the package loads it).

Fixtures:
- ``finwave_daemon`` (session): a finwave started with the ini/command-line options below and
  ready, or, when FINWAVE_CONTROL is set, the finwave already listening there (attach).
- ``finwave`` (function): a Client of that daemon; after the test it calls reset(), so that no
  rule a test added leaks into the next. A test marked ``@pytest.mark.finwave(...)`` (mode,
  ports, rules, netns, args) gets a finwave of its own, started with those options.

When a test that used ``finwave`` fails, the outcomes reported during it are added to its
report (section "finwave outcomes"), each with its ladder diagram from finwave-ladder.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from finwave.client import Client, default_path
from finwave.daemon import DEFAULT_READY_TIMEOUT_S, Daemon, DaemonConfig
from finwave.errors import FinwaveError

# (name, help, default): each is an ini option "finwave_NAME" and a command-line option
# "--finwave-NAME", which wins.
_OPTIONS = [
    ("bin", "the finwave binary (default: $FINWAVE_BIN, else finwave on PATH)", ""),
    ("ladder", "the finwave-ladder binary (default: next to finwave, else on PATH)", ""),
    ("mode", "local or router", "local"),
    ("ports", "ports to capture, separated by spaces or commas (default: all)", ""),
    ("rules", "a rule file", ""),
    ("netns", "a network namespace for finwave: a name under /run/netns or a path", ""),
    ("args", "more finwave options, as a shell would split them", ""),
    ("ready_timeout", "seconds finwave may take to be ready", str(DEFAULT_READY_TIMEOUT_S)),
]
_MARKER_KEYS = {"mode", "ports", "rules", "netns", "args"}
# The most outcomes a failing test's report shows (the daemon keeps 1000).
_REPORT_OUTCOMES = 50


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("finwave", "finwave: chaos tests of TCP teardown")
    for name, text, default in _OPTIONS:
        group.addoption(f"--finwave-{name.replace('_', '-')}", dest=f"finwave_{name}", help=text)
        parser.addini(f"finwave_{name}", text, default=default)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "finwave(mode=, ports=, rules=, netns=, args=): run this test against a finwave "
        "of its own, started with these options",
    )


def _option(config: pytest.Config, name: str) -> str:
    value = config.getoption(f"finwave_{name}")
    return str(value if value is not None else config.getini(f"finwave_{name}"))


def _ports(text: str) -> list[int]:
    ports = []
    for word in text.replace(",", " ").split():
        if not word.isdigit() or not 1 <= int(word) <= 65535:
            raise pytest.UsageError(f"finwave ports: {word!r} is not a port (1-65535)")
        ports.append(int(word))
    return ports


def _config_from_options(config: pytest.Config) -> DaemonConfig:
    try:
        ready_timeout = float(_option(config, "ready_timeout"))
    except ValueError:
        raise pytest.UsageError("finwave_ready_timeout must be a number of seconds") from None
    return DaemonConfig(
        binary=_option(config, "bin"),
        mode=_option(config, "mode"),
        ports=_ports(_option(config, "ports")),
        rules=_option(config, "rules") or None,
        netns=_option(config, "netns") or None,
        args=shlex.split(_option(config, "args")),
        ready_timeout=ready_timeout,
    )


def _config_from_marker(base: DaemonConfig, marker: pytest.Mark) -> DaemonConfig:
    unknown = set(marker.kwargs) - _MARKER_KEYS
    if unknown or marker.args:
        raise pytest.UsageError(
            f"@pytest.mark.finwave takes only {', '.join(sorted(_MARKER_KEYS))} as keywords"
            f" (got {', '.join(sorted(unknown)) or 'positional arguments'})"
        )
    kw = marker.kwargs
    ports = kw.get("ports", base.ports)
    return DaemonConfig(
        binary=base.binary,
        mode=kw.get("mode", base.mode),
        ports=[ports] if isinstance(ports, int) else list(ports),
        rules=kw.get("rules", base.rules),
        netns=kw.get("netns", base.netns),
        args=list(kw.get("args", base.args)),
        ready_timeout=base.ready_timeout,
    )


@dataclass
class FinwaveTarget:
    """The daemon the fixtures talk to: its control socket, and the Daemon when the plugin
    started it (None when it attached to a running one)."""

    control_path: str
    daemon: Daemon | None = None

    def client(self) -> Client:
        return Client(self.control_path)


@pytest.fixture(scope="session")
def finwave_daemon(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FinwaveTarget]:
    if os.environ.get("FINWAVE_CONTROL"):
        yield FinwaveTarget(default_path())
        return
    daemon = Daemon(_config_from_options(request.config), tmp_path_factory.mktemp("finwave"))
    daemon.start()
    try:
        yield FinwaveTarget(str(daemon.control_path), daemon)
    finally:
        daemon.stop()


@dataclass
class _TestContext:
    client: Client
    start_seq: int
    ladder: str | None


_CONTEXT = pytest.StashKey[_TestContext]()


def _ladder_binary(config: pytest.Config, daemon: Daemon | None) -> str | None:
    if explicit := _option(config, "ladder"):
        return explicit
    if daemon is not None:
        sibling = Path(daemon.config.binary or os.environ.get("FINWAVE_BIN") or "finwave")
        if sibling.parent != Path(".") and (sibling.parent / "finwave-ladder").exists():
            return str(sibling.parent / "finwave-ladder")
    return shutil.which("finwave-ladder")


@pytest.fixture
def finwave(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Client]:
    marker = request.node.get_closest_marker("finwave")
    own: Daemon | None = None
    if marker is not None:
        own = Daemon(_config_from_marker(_config_from_options(request.config), marker),
                     tmp_path / "finwave")
        own.start()
        target = FinwaveTarget(str(own.control_path), own)
    else:
        target = request.getfixturevalue("finwave_daemon")
    client = target.client()
    try:
        context = _TestContext(client, client.last_outcome_seq(),
                               _ladder_binary(request.config, target.daemon))
        request.node.stash[_CONTEXT] = context
        yield client
        client.reset()
    finally:
        client.close()
        if own is not None:
            own.stop()


def _ladders(ladder: str | None, outcomes: list[dict[str, Any]]) -> str:
    if not outcomes:
        return ""
    if ladder is None:
        return "(no finwave-ladder found: set finwave_ladder to draw the ladders)"
    lines = "".join(_json_line(o) + "\n" for o in outcomes)
    try:
        done = subprocess.run([ladder, "--width", "100"], input=lines.encode(),
                              capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"(finwave-ladder failed: {error})"
    text = done.stdout.decode(errors="replace")
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace")
        text += f"\n(finwave-ladder exited {done.returncode}: {why})"
    return text


def _json_line(outcome: dict[str, Any]) -> str:
    return json.dumps(outcome, separators=(",", ":"))


def _report_text(context: _TestContext) -> str:
    try:
        outcomes = context.client.outcomes(since=context.start_seq, limit=_REPORT_OUTCOMES + 1)
    except FinwaveError as error:
        return f"(the outcomes could not be read: {error})"
    if not outcomes:
        return f"no outcome was reported during the test (since outcome seq {context.start_seq})"
    shown = outcomes[:_REPORT_OUTCOMES]
    head = [f"{len(shown)} outcome(s) reported during the test (since outcome seq"
            f" {context.start_seq}):"]
    if len(outcomes) > len(shown):
        head[0] = f"the first {len(shown)} outcomes reported during the test:"
    head += [o.summary() for o in shown]
    return "\n".join(head) + "\n\n" + _ladders(context.ladder, [o.raw for o in shown])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    context = item.stash.get(_CONTEXT, None)
    if report.when == "call" and report.failed and context is not None:
        report.sections.append(("finwave outcomes", _report_text(context)))
