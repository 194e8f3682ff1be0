"""Outcomes as dataclasses: one for each object of finwave's outcome JSON (README, "Output").

``Outcome.from_json`` reads the object the daemon sends (an outcome line, or an entry of the
``outcomes`` of a reply, which adds ``seq``). Fields the daemon adds in a later version are
ignored; a field this version needs and does not find is a ``KeyError``, which the client turns
into a ``bad_reply`` error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Flow:
    client: str  # "198.18.1.2:40000", "[2001:db8:1::2]:40000"
    server: str


@dataclass(frozen=True)
class FinRetransmits:
    client: int
    server: int


@dataclass(frozen=True)
class FinalAcks:
    seen: int
    dropped: int


@dataclass(frozen=True)
class Rst:
    sender: str  # "client" or "server" ("from" in the JSON, a keyword in Python)
    stage: str
    answers_fin_retransmit: bool


@dataclass(frozen=True)
class Action:
    rule: str
    role: str
    action: str
    count: int


@dataclass(frozen=True)
class TimelineEntry:
    t_ms: float
    sender: str  # "from" in the JSON
    role: str
    retx: bool
    dup_ack: bool
    bogus: bool
    flags: str
    seq: int
    ack: int
    len: int
    verdict: str
    hold_ms: int | None = None
    released: bool | None = None
    copies: int = 0

    @staticmethod
    def from_json(entry: dict[str, Any]) -> TimelineEntry:
        return TimelineEntry(
            t_ms=float(entry["t_ms"]),
            sender=entry["from"],
            role=entry["role"],
            retx=bool(entry["retx"]),
            dup_ack=bool(entry["dup_ack"]),
            bogus=bool(entry["bogus"]),
            flags=entry["flags"],
            seq=int(entry["seq"]),
            ack=int(entry["ack"]),
            len=int(entry["len"]),
            verdict=entry["verdict"],
            hold_ms=entry.get("hold_ms"),
            released=entry.get("released"),
            copies=int(entry.get("copies", 0)),
        )


@dataclass(frozen=True)
class Outcome:
    """How one connection's teardown ended, as finwave saw it."""

    id: int
    flow: Flow
    sides_known: bool
    closer: str
    kind: str
    result: str  # "clean", "reset" or "timeout"
    ended_by: str
    fin_retransmits: FinRetransmits
    final_acks: FinalAcks
    rst: Rst | None
    teardown_ms: float
    data_after_fin_bytes: int
    dup_acks: int
    segments: int
    actions: list[Action]
    actions_dropped: int
    timeline: list[TimelineEntry]
    timeline_dropped: int
    # the log path lost copies while this flow was tracked: counts and timeline may miss segments
    incomplete: bool = False
    seq: int | None = None  # the outcome's sequence number, when it came over the socket
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @staticmethod
    def from_json(obj: dict[str, Any]) -> Outcome:
        rst = obj["rst"]
        return Outcome(
            id=int(obj["id"]),
            flow=Flow(client=obj["flow"]["client"], server=obj["flow"]["server"]),
            sides_known=bool(obj["sides_known"]),
            closer=obj["closer"],
            kind=obj["kind"],
            result=obj["result"],
            ended_by=obj["ended_by"],
            fin_retransmits=FinRetransmits(
                client=int(obj["fin_retransmits"]["client"]),
                server=int(obj["fin_retransmits"]["server"]),
            ),
            final_acks=FinalAcks(
                seen=int(obj["final_acks"]["seen"]), dropped=int(obj["final_acks"]["dropped"])
            ),
            rst=None
            if rst is None
            else Rst(
                sender=rst["from"],
                stage=rst["stage"],
                answers_fin_retransmit=bool(rst["answers_fin_retransmit"]),
            ),
            teardown_ms=float(obj["teardown_ms"]),
            data_after_fin_bytes=int(obj["data_after_fin"]["bytes"]),
            dup_acks=int(obj["dup_acks"]),
            segments=int(obj["segments"]),
            actions=[
                Action(rule=a["rule"], role=a["role"], action=a["action"], count=int(a["count"]))
                for a in obj["actions"]
            ],
            actions_dropped=int(obj["actions_dropped"]),
            timeline=[TimelineEntry.from_json(e) for e in obj["timeline"]],
            timeline_dropped=int(obj["timeline_dropped"]),
            incomplete=bool(obj.get("incomplete", False)),
            seq=None if obj.get("seq") is None else int(obj["seq"]),
            raw=obj,
        )

    def rules(self) -> list[str]:
        """The names of the rules that acted on this connection, in the order they first did."""
        names: list[str] = []
        for action in self.actions:
            if action.rule not in names:
                names.append(action.rule)
        return names

    def summary(self) -> str:
        """One line for people: "#12 198.18.1.2:40000 -> 198.18.2.2:5000 clean (...)"."""
        acted = ", ".join(f"{a.rule}: {a.action} {a.role} x{a.count}" for a in self.actions)
        return (
            f"#{self.id} {self.flow.client} -> {self.flow.server} {self.result}"
            f" ({self.kind}, closer {self.closer}, FIN retransmits client"
            f" {self.fin_retransmits.client} server {self.fin_retransmits.server},"
            f" {self.teardown_ms:.1f} ms)" + (f" [{acted}]" if acted else "")
        )
