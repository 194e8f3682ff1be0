"""The exceptions of the finwave client.

Every error carries a code: the daemon's own error code (README, "Protocol": ``unknown_rule``,
``invalid_rule``, ``timeout``, ...) when the daemon refused a request, or one of the client's
codes below when the daemon could not be reached or its reply could not be read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from finwave.outcome import Outcome

# The client's own codes, for what never reached the daemon or never came back from it.
UNREACHABLE = "unreachable"  # no socket, nobody listening, permission denied
CONNECTION_LOST = "connection_lost"  # the daemon closed the connection before replying
BAD_REPLY = "bad_reply"  # a reply that is not the protocol's JSON
REPLY_TOO_LONG = "reply_too_long"  # a reply line over the client's limit
CLIENT_TIMEOUT = "client_timeout"  # no reply within the client's own deadline


class FinwaveError(Exception):
    """A request that did not succeed. ``code`` is stable; scripts may rely on it."""

    def __init__(self, code: str, message: str, reply: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.reply = reply or {}


class WaitTimeout(FinwaveError):
    """``wait`` saw fewer matching outcomes than it asked for before its timeout.

    ``outcomes`` holds the ones that did match (the partial result).
    """

    def __init__(self, message: str, outcomes: list[Outcome], reply: dict[str, Any]) -> None:
        super().__init__("timeout", message, reply)
        self.outcomes = outcomes
