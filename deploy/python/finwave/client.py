"""A client of finwave's control socket: JSON lines over a Unix socket (README, "Protocol").

One request per line, exactly one reply per request carrying the request's id. The client
keeps one connection, opened on first use and again after the daemon closed it; ``events()``
opens a connection of its own, since a subscribed connection also carries event lines.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from typing import Any

from finwave.errors import (
    BAD_REPLY,
    CLIENT_TIMEOUT,
    CONNECTION_LOST,
    REPLY_TOO_LONG,
    UNREACHABLE,
    FinwaveError,
    WaitTimeout,
)
from finwave.outcome import Outcome

DEFAULT_PATH = "/run/finwave/control.sock"
# The daemon disconnects a client once 32 MiB of replies wait for it, so no good reply is longer.
MAX_REPLY_BYTES = 32 << 20
# How long a request other than wait may take before the client gives up on the daemon.
DEFAULT_TIMEOUT_S = 10.0
# What `since` accepts besides a sequence number.
_SINCE_WORDS = {"now": "now", "change": "rule_change", "rule_change": "rule_change"}


def default_path() -> str:
    """``$FINWAVE_CONTROL`` if set, else finwave's default socket path (as finwavectl)."""
    return os.environ.get("FINWAVE_CONTROL") or DEFAULT_PATH


@dataclass(frozen=True)
class RuleInfo:
    """A rule as ``rules`` lists it."""

    position: int
    name: str
    enabled: bool
    summary: str
    hits: int
    origin: str  # "file" or "control"

    @staticmethod
    def from_json(obj: dict[str, Any]) -> RuleInfo:
        return RuleInfo(
            position=int(obj["position"]),
            name=obj["name"],
            enabled=bool(obj["enabled"]),
            summary=obj["summary"],
            hits=int(obj["hits"]),
            origin=obj["origin"],
        )


@dataclass(frozen=True)
class RuleChange:
    """The reply to enable, disable, add and remove."""

    change: str
    changed: bool
    outcome_seq: int  # wait with since= this to see what the change did
    rules: int  # how many rules there are now
    rule: RuleInfo | None  # the rule as it is now (None after remove)


@dataclass(frozen=True)
class ResetResult:
    """The reply to reset: the rule file's rules are back as loaded."""

    rules: int
    removed: list[str]  # the rules added over the socket that went
    restored: list[str]  # the file's rules put back, or back to their loaded state
    outcome_seq: int


@dataclass(frozen=True)
class Event:
    """An event line of a subscription: ``kind`` is "outcome", "rule_hit", "rule_change",
    "lagged" or "shutdown"; ``outcome`` is set for outcome events."""

    kind: str
    fields: dict[str, Any]
    outcome: Outcome | None = None


class _LineReader:
    """Reads newline-terminated lines from a socket, at most `max_bytes` each."""

    def __init__(self, sock: socket.socket, max_bytes: int) -> None:
        self._sock = sock
        self._max = max_bytes
        self._buffer = bytearray()
        self._searched = 0  # bytes of the buffer known to hold no newline

    def read_line(self) -> bytes:
        while True:
            end = self._buffer.find(b"\n", self._searched)
            if 0 <= end <= self._max:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                self._searched = 0
                return line
            self._searched = len(self._buffer)
            if end > self._max or len(self._buffer) > self._max:
                raise FinwaveError(
                    REPLY_TOO_LONG,
                    f"a reply line is longer than {self._max} bytes (the client's limit)",
                )
            try:
                chunk = self._sock.recv(1 << 16)
            except TimeoutError:
                raise FinwaveError(CLIENT_TIMEOUT, "the daemon did not reply in time") from None
            except OSError as error:
                raise FinwaveError(CONNECTION_LOST, f"reading from the daemon: {error}") from None
            if not chunk:
                where = " in the middle of a reply" if self._buffer else ""
                raise FinwaveError(CONNECTION_LOST, f"the daemon closed the connection{where}")
            self._buffer += chunk


def _since_field(since: int | str) -> int | str:
    if isinstance(since, bool) or not isinstance(since, (int, str)):
        raise TypeError(f"since must be an outcome seq or 'now'/'change', not {since!r}")
    if isinstance(since, int):
        if since < 0:
            raise ValueError(f"since must be an outcome seq from 0, not {since}")
        return since
    if since not in _SINCE_WORDS:
        raise ValueError(f"since must be an outcome seq, 'now' or 'change', not {since!r}")
    return _SINCE_WORDS[since]


def _filter_fields(
    result: str | None,
    kind: str | None,
    closer: str | None,
    rule: str | None,
    flow: int | str | None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in (("result", result), ("kind", kind), ("closer", closer), ("rule", rule)):
        if value is not None:
            fields[key] = value
    if flow is not None:
        fields["flow"] = str(flow)
    return fields


def _outcomes(reply: dict[str, Any]) -> list[Outcome]:
    try:
        return [Outcome.from_json(o) for o in reply.get("outcomes", [])]
    except (KeyError, TypeError, ValueError) as error:
        raise FinwaveError(BAD_REPLY, f"an outcome the client cannot read: {error!r}", reply)


class Client:
    """finwave's control socket. ``path``: the socket (default: ``default_path()``).

    Every method raises FinwaveError: with the daemon's error code when it refused, with one of
    the client's codes (finwave.errors) when it could not be reached or its reply read.
    """

    def __init__(
        self,
        path: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        self.path = path or default_path()
        self.timeout = timeout
        self._max_reply_bytes = max_reply_bytes
        self._sock: socket.socket | None = None
        self._reader: _LineReader | None = None
        self._next_id = 1

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._reader = None

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
        except FileNotFoundError:
            sock.close()
            raise FinwaveError(
                UNREACHABLE, f"no control socket at {self.path} (is finwave running?)"
            ) from None
        except ConnectionRefusedError:
            sock.close()
            raise FinwaveError(
                UNREACHABLE, f"nobody listens on {self.path} (finwave is not running)"
            ) from None
        except PermissionError:
            sock.close()
            raise FinwaveError(
                UNREACHABLE,
                f"permission denied on {self.path} (root, or finwave's --control-group)",
            ) from None
        except OSError as error:
            sock.close()
            raise FinwaveError(UNREACHABLE, f"cannot connect to {self.path}: {error}") from None
        return sock

    def request(self, cmd: str, *, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """Sends one request and returns its reply (without "id" and "ok"); raises FinwaveError
        with the daemon's code when the reply is an error."""
        if self._sock is None:
            self._sock = self._connect()
            self._reader = _LineReader(self._sock, self._max_reply_bytes)
        assert self._reader is not None
        request_id = self._next_id
        self._next_id += 1
        line = json.dumps({"id": request_id, "cmd": cmd, **fields}, separators=(",", ":"))
        try:
            self._sock.settimeout(self.timeout if timeout is None else timeout)
            self._sock.sendall(line.encode() + b"\n")
            while True:
                reply = self._parse(self._reader.read_line())
                if reply.get("id") == request_id and "ok" in reply:
                    break
        except FinwaveError:
            self.close()  # the stream is in an unknown state: a later request reconnects
            raise
        except OSError as error:
            self.close()
            raise FinwaveError(CONNECTION_LOST, f"writing to the daemon: {error}") from None
        if reply["ok"] is not True:
            error = reply.get("error")
            if not isinstance(error, dict):
                raise FinwaveError(BAD_REPLY, f"an error reply without an error: {reply}", reply)
            code = str(error.get("code", BAD_REPLY))
            message = str(error.get("message", ""))
            if code == "timeout" and cmd == "wait":
                raise WaitTimeout(message, _outcomes(reply), reply)
            raise FinwaveError(code, message, reply)
        return {k: v for k, v in reply.items() if k not in ("id", "ok")}

    @staticmethod
    def _parse(line: bytes) -> dict[str, Any]:
        try:
            value = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise FinwaveError(BAD_REPLY, f"a reply that is not JSON ({error}): {line[:80]!r}")
        if not isinstance(value, dict):
            raise FinwaveError(BAD_REPLY, f"a reply that is not a JSON object: {line[:80]!r}")
        return value

    # --- Reading ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return self.request("status")

    def stats(self) -> dict[str, Any]:
        return self.request("stats")

    def metrics(self) -> str:
        """The Prometheus exposition text that `finwave --metrics` serves."""
        return str(self.request("metrics")["text"])

    def flows(self, limit: int | None = None) -> list[dict[str, Any]]:
        fields = {} if limit is None else {"limit": limit}
        return list(self.request("flows", **fields)["flows"])

    def rules(self) -> list[RuleInfo]:
        reply = self.request("rules")
        try:
            return [RuleInfo.from_json(r) for r in reply["rules"]]
        except (KeyError, TypeError, ValueError) as error:
            raise FinwaveError(BAD_REPLY, f"a rule the client cannot read: {error!r}", reply)

    def last_outcome_seq(self) -> int:
        """The sequence number of the last outcome reported: wait(since=) from here on."""
        return int(self.status()["last_outcome_seq"])

    def outcomes(
        self,
        *,
        limit: int | None = None,
        since: int | str | None = None,
        result: str | None = None,
        kind: str | None = None,
        closer: str | None = None,
        rule: str | None = None,
        flow: int | str | None = None,
    ) -> list[Outcome]:
        """The most recent outcomes that match (oldest first), or the first `limit` after
        `since`. The daemon keeps the last 1000."""
        fields = _filter_fields(result, kind, closer, rule, flow)
        if limit is not None:
            fields["limit"] = limit
        if since is not None:
            fields["since"] = _since_field(since)
        return _outcomes(self.request("outcomes", **fields))

    def wait(
        self,
        *,
        result: str | None = None,
        kind: str | None = None,
        closer: str | None = None,
        rule: str | None = None,
        flow: int | str | None = None,
        since: int | str | None = None,
        count: int = 1,
        timeout: float = 5.0,
    ) -> list[Outcome]:
        """Blocks until `count` outcomes match, and returns them. With `since` (an outcome seq
        or "change"), outcomes already reported after it count too: no race with a connection
        that ended before the call. Raises WaitTimeout, holding the partial outcomes."""
        if timeout < 0:
            raise ValueError(f"timeout must be at least 0 seconds, not {timeout}")
        fields = _filter_fields(result, kind, closer, rule, flow)
        fields["count"] = count
        fields["timeout_ms"] = round(timeout * 1000)
        if since is not None:
            fields["since"] = _since_field(since)
        # The daemon answers at its deadline: the client's own comes later.
        return _outcomes(self.request("wait", timeout=timeout + self.timeout, **fields))

    def events(
        self,
        events: list[str] | None = None,
        *,
        result: str | None = None,
        kind: str | None = None,
        closer: str | None = None,
        rule: str | None = None,
        flow: int | str | None = None,
        timeout: float | None = None,
    ) -> EventStream:
        """Subscribes now, on a connection of its own, and returns the events as an iterator:
        what happens after this call is in it. It ends when the daemon shuts down (after the
        "shutdown" event) or when closed (it is a context manager). `timeout`: how long to wait
        for the next event (default: for ever)."""
        fields = _filter_fields(result, kind, closer, rule, flow)
        if events is not None:
            fields["events"] = list(events)
        return EventStream(self, fields, timeout)

    # --- Changing the rules ----------------------------------------------------------------

    def _rule_change(self, reply: dict[str, Any]) -> RuleChange:
        rule = reply.get("rule")
        try:
            return RuleChange(
                change=reply["change"],
                changed=bool(reply.get("changed", True)),
                outcome_seq=int(reply["outcome_seq"]),
                rules=int(reply["rules"]),
                rule=RuleInfo.from_json(rule) if isinstance(rule, dict) else None,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise FinwaveError(BAD_REPLY, f"a rule change the client cannot read: {error!r}")

    def enable(self, name: str) -> RuleChange:
        return self._rule_change(self.request("enable", name=name))

    def disable(self, name: str) -> RuleChange:
        return self._rule_change(self.request("disable", name=name))

    def add(
        self,
        rule: dict[str, Any] | str,
        *,
        first: bool = False,
        ttl: float | None = None,
        max_hits: int | None = None,
    ) -> RuleChange:
        """Adds one rule: a dict (the rule file's keys) or TOML text. Validated exactly like
        the rule file (error invalid_rule, rule_exists). `ttl` (seconds) and `max_hits` (its
        decisions over every connection) make it go away by itself, whichever comes first;
        the daemon checks them (error bad_field)."""
        fields: dict[str, Any] = {"position": "first" if first else "last"}
        if ttl is not None:
            fields["ttl"] = ttl
        if max_hits is not None:
            fields["max_hits"] = max_hits
        if isinstance(rule, str):
            fields["toml"] = rule
        elif isinstance(rule, dict):
            fields["rule"] = rule
        else:
            raise TypeError(f"a rule is a dict or TOML text, not {type(rule).__name__}")
        return self._rule_change(self.request("add", **fields))

    def remove(self, name: str) -> RuleChange:
        return self._rule_change(self.request("remove", name=name))

    def reload(self) -> dict[str, Any]:
        return self.request("reload")

    def reset(self) -> ResetResult:
        """The rule file's rules as loaded; the rules added over the socket go. What a test
        calls between tests."""
        reply = self.request("reset")
        try:
            return ResetResult(
                rules=int(reply["rules"]),
                removed=[str(n) for n in reply["removed"]],
                restored=[str(n) for n in reply["restored"]],
                outcome_seq=int(reply["outcome_seq"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise FinwaveError(BAD_REPLY, f"a reset reply the client cannot read: {error!r}")

    def fault(
        self,
        rule: dict[str, Any],
        *,
        first: bool = True,
        ttl: float | None = None,
        max_hits: int | None = None,
    ) -> Fault:
        """A rule for the length of a ``with`` block (see Fault)."""
        return Fault(self, rule, first=first, ttl=ttl, max_hits=max_hits)


class EventStream:
    """A subscription's events, in the order the daemon sent them (see Client.events)."""

    def __init__(self, client: Client, fields: dict[str, Any], timeout: float | None) -> None:
        self._client = Client(client.path, timeout=client.timeout,
                              max_reply_bytes=client._max_reply_bytes)
        self._client.request("subscribe", **fields)
        assert self._client._sock is not None
        self._client._sock.settimeout(timeout)
        self._ended = False

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> Event:
        reader = self._client._reader
        if self._ended or reader is None:
            raise StopIteration
        while True:
            event = Client._parse(reader.read_line())
            name = event.get("event")
            if isinstance(name, str):
                break  # anything else would be a reply, and none is expected here
        outcome = None
        if name == "outcome":
            try:
                outcome = Outcome.from_json(event)
            except (KeyError, TypeError, ValueError) as error:
                raise FinwaveError(BAD_REPLY, f"an outcome event: {error!r}", event)
        if name == "shutdown":
            self.close()
        return Event(kind=name, fields=event, outcome=outcome)

    def close(self) -> None:
        self._ended = True
        self._client.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_ANY_RULE = object()  # Fault.wait's default: the fault's own rule


class Fault:
    """A rule that lives for a ``with`` block: added on entry (first in priority unless
    first=False), removed on exit, even when the block raises.

        with client.fault({"role": "final_ack", "action": "drop", "first": 1}) as fault:
            run_the_client()
            [outcome] = fault.wait(result="clean")

    A rule without a name gets one ("fault-PID-N"). With `ttl` or `max_hits` it may go away
    earlier by itself (exit then finds it gone, which is fine). ``wait`` and ``outcomes`` look at the
    outcomes since the rule was added that the rule acted on; pass rule=None for any.
    """

    _count = 0

    def __init__(
        self,
        client: Client,
        rule: dict[str, Any],
        *,
        first: bool = True,
        ttl: float | None = None,
        max_hits: int | None = None,
    ) -> None:
        if not isinstance(rule, dict):
            raise TypeError(f"a fault's rule is a dict, not {type(rule).__name__}")
        self._client = client
        self._first = first
        self._lifetime = {"ttl": ttl, "max_hits": max_hits}
        self.rule = dict(rule)
        if "name" not in self.rule:
            Fault._count += 1
            self.rule["name"] = f"fault-{os.getpid()}-{Fault._count}"
        self.name: str = str(self.rule["name"])
        self.seq = 0  # the last outcome seq when the rule was added

    def __enter__(self) -> Fault:
        self.seq = self._client.add(self.rule, first=self._first, **self._lifetime).outcome_seq
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        try:
            self._client.remove(self.name)
        except FinwaveError as error:
            # Gone already (a reset, a reload): nothing to undo. Otherwise say so, unless the
            # block's own exception is on its way: that one says more.
            if error.code != "unknown_rule" and exc_type is None:
                raise

    def _rule(self, rule: object) -> str | None:
        return self.name if rule is _ANY_RULE else rule  # type: ignore[return-value]

    def wait(self, *, rule: object = _ANY_RULE, since: int | str | None = None,
             **filters: Any) -> list[Outcome]:
        return self._client.wait(
            rule=self._rule(rule), since=self.seq if since is None else since, **filters
        )

    def outcomes(self, *, rule: object = _ANY_RULE, since: int | str | None = None,
                 **filters: Any) -> list[Outcome]:
        return self._client.outcomes(
            rule=self._rule(rule), since=self.seq if since is None else since, **filters
        )

    @property
    def hits(self) -> int:
        """Segments the rule has acted on so far."""
        for info in self._client.rules():
            if info.name == self.name:
                return info.hits
        raise FinwaveError("unknown_rule", f"the fault's rule '{self.name}' is gone")
