"""The client against a fake control socket: every reply shape, every error, a daemon that
hangs up mid-reply, a reply over the limit, the fault context manager and events."""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from fake_daemon import CLOSE, FakeDaemon, error, reply, sample_outcome
import finwave
from finwave import Client, FinwaveError, Outcome, WaitTimeout
from finwave.errors import BAD_REPLY, CLIENT_TIMEOUT, CONNECTION_LOST, REPLY_TOO_LONG, UNREACHABLE


def answering(**replies: Any):
    """A handler that answers each cmd with the body given for it (a dict), or with what a
    function of the request returns."""

    def handle(request: dict[str, Any]):
        body = replies[request["cmd"]]
        if callable(body):
            return body(request)
        return [reply(request, **body)]

    return handle


def test_a_request_carries_an_id_and_its_reply_comes_without_id_and_ok():
    with FakeDaemon(answering(status={"version": "0.1.0", "last_outcome_seq": 3})) as fake:
        with Client(fake.path) as client:
            assert client.status() == {"version": "0.1.0", "last_outcome_seq": 3}
            assert client.last_outcome_seq() == 3
        assert [r["cmd"] for r in fake.requests] == ["status", "status"]
        assert fake.requests[0]["id"] != fake.requests[1]["id"]
        assert fake.connections == 1  # one connection for every request


def test_lines_that_are_not_this_requests_reply_are_skipped():
    def status(request):
        return [
            b'{"event":"outcome","seq":1}\n',  # an event line: never a reply
            json.dumps({"id": "other", "ok": True}).encode() + b"\n",
            reply(request, mode="router"),
        ]

    with FakeDaemon(answering(status=status)) as fake, Client(fake.path) as client:
        assert client.status() == {"mode": "router"}


@pytest.mark.parametrize(
    "code", ["unknown_rule", "invalid_rule", "rule_exists", "bad_field", "unknown_field",
             "no_rule_file", "reload_failed", "too_many_waits", "shutting_down", "internal"])
def test_the_daemons_error_code_is_the_exceptions(code):
    def refuse(request):
        return [error(request, code, f"the {code} message")]

    with FakeDaemon(refuse) as fake, Client(fake.path) as client:
        with pytest.raises(FinwaveError) as raised:
            client.enable("x")
        assert raised.value.code == code
        assert raised.value.message == f"the {code} message"
        assert str(raised.value) == f"{code}: the {code} message"
        # A refusal leaves the connection usable.
        with pytest.raises(FinwaveError):
            client.disable("x")
        assert fake.connections == 1


def test_wait_returns_outcomes_mirroring_the_json():
    def wait(request):
        assert request["timeout_ms"] == 2500
        assert request["count"] == 1
        assert request["since"] == "rule_change"
        assert request["rule"] == "lose" and request["flow"] == "7"
        return [reply(request, outcomes=[sample_outcome()])]

    with FakeDaemon(answering(wait=wait)) as fake, Client(fake.path) as client:
        [outcome] = client.wait(rule="lose", flow=7, since="change", timeout=2.5)
    assert isinstance(outcome, Outcome)
    assert outcome.seq == 12 and outcome.id == 7
    assert outcome.flow.client == "198.18.1.2:40000"
    assert outcome.result == "clean" and outcome.kind == "four_way" and outcome.closer == "client"
    assert outcome.fin_retransmits.server == 1 and outcome.final_acks.dropped == 1
    assert outcome.rst is None
    assert outcome.rules() == ["lose"]
    assert [e.role for e in outcome.timeline] == ["fin1", "final_ack", "fin2"]
    assert outcome.timeline[1].verdict == "drop" and outcome.timeline[1].sender == "client"
    assert outcome.timeline[2].hold_ms == 50 and outcome.timeline[2].copies == 2
    assert outcome.timeline[0].hold_ms is None and outcome.timeline[0].copies == 0
    assert outcome.raw["seq"] == 12
    assert "lose: drop final_ack x1" in outcome.summary()


def test_a_reset_outcome_has_its_rst():
    rst = {"from": "server", "stage": "time_wait", "answers_fin_retransmit": True}
    outcome = Outcome.from_json(sample_outcome(result="reset", rst=rst))
    assert outcome.rst is not None
    assert (outcome.rst.sender, outcome.rst.stage) == ("server", "time_wait")
    assert outcome.rst.answers_fin_retransmit


def test_a_wait_timeout_raises_with_the_partial_outcomes():
    def wait(request):
        return [error(request, "timeout", "1 of 2 outcomes in 100 ms",
                      outcomes=[sample_outcome()])]

    with FakeDaemon(wait) as fake, Client(fake.path) as client:
        with pytest.raises(WaitTimeout) as raised:
            client.wait(count=2, timeout=0.1)
    assert raised.value.code == "timeout"
    assert [o.id for o in raised.value.outcomes] == [7]


def test_a_timeout_error_of_another_command_is_not_a_wait_timeout():
    with FakeDaemon(lambda r: [error(r, "timeout", "odd")]) as fake, Client(fake.path) as client:
        with pytest.raises(FinwaveError) as raised:
            client.status()
    assert type(raised.value) is FinwaveError


def test_a_daemon_that_hangs_up_is_connection_lost_and_the_next_request_reconnects():
    with FakeDaemon(lambda r: CLOSE) as fake:
        client = Client(fake.path)
        with pytest.raises(FinwaveError) as raised:
            client.status()
        assert raised.value.code == CONNECTION_LOST
        assert raised.value.message == "the daemon closed the connection"
        fake.handler = answering(status={"mode": "local"})
        assert client.status() == {"mode": "local"}
        assert fake.connections == 2
        client.close()


def test_half_a_reply_and_then_silence_is_a_client_timeout_not_a_hang():
    with FakeDaemon(lambda r: [reply(r, mode="router")[:12]]) as fake:
        with Client(fake.path, timeout=0.3) as client, pytest.raises(FinwaveError) as raised:
            client.status()
    assert raised.value.code == CLIENT_TIMEOUT


def test_eof_in_the_middle_of_a_reply():
    # A daemon that writes half a line and exits: a raw server that closes after writing.
    with tempfile.TemporaryDirectory(prefix="fwpy", dir="/tmp") as directory:
        path = os.path.join(directory, "control.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
        def serve():
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b'{"id":1,"ok":tr')

        thread = threading.Thread(target=serve)
        thread.start()
        with Client(path) as client, pytest.raises(FinwaveError) as raised:
            client.status()
        thread.join()
        listener.close()
    assert raised.value.code == CONNECTION_LOST
    assert "in the middle of a reply" in raised.value.message


def test_a_reply_line_over_the_limit_is_refused():
    def huge(request):
        return [reply(request, blob="x" * 5000)]

    with FakeDaemon(huge) as fake, Client(fake.path, max_reply_bytes=1024) as client:
        with pytest.raises(FinwaveError) as raised:
            client.status()
        assert raised.value.code == REPLY_TOO_LONG
        assert "1024" in raised.value.message


@pytest.mark.parametrize(
    "line, says",
    [(b"not json\n", "not JSON"), (b"[1,2]\n", "not a JSON object"),
     (b'{"id":1,"ok":false}\n', "without an error"), (b"\xff\xfe\n", "not JSON")])
def test_replies_that_are_not_the_protocol_are_bad_reply(line, says):
    with FakeDaemon(lambda r: [line]) as fake, Client(fake.path) as client:
        with pytest.raises(FinwaveError) as raised:
            client.status()
    assert raised.value.code == BAD_REPLY
    assert says in raised.value.message


def test_an_outcome_the_client_cannot_read_is_bad_reply():
    broken = sample_outcome()
    del broken["flow"]
    with FakeDaemon(answering(outcomes={"outcomes": [broken]})) as fake, Client(fake.path) as c:
        with pytest.raises(FinwaveError) as raised:
            c.outcomes()
    assert raised.value.code == BAD_REPLY


def test_no_socket_and_nobody_listening_are_unreachable():
    with tempfile.TemporaryDirectory(prefix="fwpy", dir="/tmp") as directory:
        missing = os.path.join(directory, "missing.sock")
        with pytest.raises(FinwaveError) as raised:
            Client(missing).status()
        assert raised.value.code == UNREACHABLE and "is finwave running" in raised.value.message
        stale = os.path.join(directory, "stale.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(stale)
        listener.close()  # the file stays, nobody listens: a crashed daemon's socket
        with pytest.raises(FinwaveError) as raised:
            Client(stale).status()
        assert raised.value.code == UNREACHABLE and "nobody listens" in raised.value.message


def test_a_daemon_that_never_replies_is_a_client_timeout():
    with FakeDaemon(lambda r: []) as fake, Client(fake.path, timeout=0.2) as client:
        with pytest.raises(FinwaveError) as raised:
            client.status()
    assert raised.value.code == CLIENT_TIMEOUT


def test_the_default_path_comes_from_finwave_control(monkeypatch):
    monkeypatch.setenv("FINWAVE_CONTROL", "/tmp/somewhere.sock")
    assert Client().path == "/tmp/somewhere.sock"
    monkeypatch.delenv("FINWAVE_CONTROL")
    assert Client().path == "/run/finwave/control.sock"


def test_since_and_timeout_are_checked_before_sending():
    with FakeDaemon(lambda r: [reply(r, outcomes=[])]) as fake, Client(fake.path) as client:
        with pytest.raises(ValueError):
            client.wait(since=-1)
        with pytest.raises(ValueError):
            client.wait(since="yesterday")
        with pytest.raises(TypeError):
            client.wait(since=True)
        with pytest.raises(ValueError):
            client.wait(timeout=-1)
        assert client.outcomes(since=0) == []
        assert client.outcomes(since="now") == []
        assert fake.requests[-2]["since"] == 0 and fake.requests[-1]["since"] == "now"


def rule_info(name: str, position: int = 1, origin: str = "control") -> dict[str, Any]:
    return {"position": position, "name": name, "enabled": True, "summary": "drop final_ack",
            "hits": 3, "origin": origin}


def test_rule_changes_and_their_replies():
    def add(request):
        assert ("rule" in request) != ("toml" in request)
        name = request["rule"]["name"] if "rule" in request else "from-toml"
        return [reply(request, change="add", changed=True, outcome_seq=4, rules=1,
                      rule=rule_info(name))]

    def remove(request):
        return [reply(request, change="remove", changed=True, outcome_seq=5, rules=0,
                      rule=request["name"])]

    handler = answering(add=add, remove=remove,
                        rules={"rules": [rule_info("a"), rule_info("b", 2, "file")]},
                        reset={"rules": 1, "removed": ["a"], "restored": ["b"],
                               "outcome_seq": 9})
    with FakeDaemon(handler) as fake, Client(fake.path) as client:
        change = client.add({"name": "a", "role": "final_ack", "action": "drop"}, first=True)
        assert (change.change, change.outcome_seq, change.rules) == ("add", 4, 1)
        assert change.rule is not None and change.rule.name == "a"
        assert fake.requests[-1]["position"] == "first"
        assert "ttl" not in fake.requests[-1] and "max_hits" not in fake.requests[-1]
        client.add({"name": "a"}, ttl=1.5, max_hits=3)
        assert (fake.requests[-1]["ttl"], fake.requests[-1]["max_hits"]) == (1.5, 3)
        client.add('name = "from-toml"\naction = "pass"\n')
        sent = fake.requests[-1]
        assert sent["toml"].startswith("name") and sent["position"] == "last"
        with pytest.raises(TypeError):
            client.add(5)  # type: ignore[arg-type]
        removed = client.remove("a")
        assert removed.rule is None and removed.rules == 0
        assert [(r.name, r.origin, r.position) for r in client.rules()] == [
            ("a", "control", 1), ("b", "file", 2)]
        reset = client.reset()
        assert (reset.rules, reset.removed, reset.restored, reset.outcome_seq) == (
            1, ["a"], ["b"], 9)


def fault_daemon(removed: list[str], remove_error: str | None = None):
    def add(request):
        return [reply(request, change="add", changed=True, outcome_seq=41, rules=1,
                      rule=rule_info(request["rule"]["name"]))]

    def remove(request):
        removed.append(request["name"])
        if remove_error:
            return [error(request, remove_error, "gone")]
        return [reply(request, change="remove", changed=True, outcome_seq=42, rules=0,
                      rule=request["name"])]

    def wait(request):
        return [reply(request, outcomes=[sample_outcome(actions=[
            {"rule": request.get("rule", "?"), "role": "final_ack", "action": "drop",
             "count": 1}])])]

    return answering(add=add, remove=remove, wait=wait,
                     rules={"rules": [rule_info("mine")]})


def test_a_fault_lives_for_its_with_block_and_waits_since_it_was_added():
    removed: list[str] = []
    with FakeDaemon(fault_daemon(removed)) as fake, Client(fake.path) as client:
        with client.fault({"role": "final_ack", "action": "drop", "first": 1}) as fault:
            assert fault.name.startswith(f"fault-{os.getpid()}-")
            assert fake.requests[-1]["position"] == "first"
            assert fake.requests[-1]["rule"]["name"] == fault.name
            assert fault.seq == 41
            [outcome] = fault.wait(result="clean", timeout=1)
            assert fake.requests[-1]["since"] == 41 and fake.requests[-1]["rule"] == fault.name
            assert outcome.rules() == [fault.name]
            fault.wait(rule=None, since=0)
            assert "rule" not in fake.requests[-1] and fake.requests[-1]["since"] == 0
        assert removed == [fault.name]
        with client.fault({"name": "mine", "action": "pass"}, max_hits=1) as named:
            assert fake.requests[-1]["max_hits"] == 1 and "ttl" not in fake.requests[-1]
            assert named.hits == 3
        assert removed[-1] == "mine"


def test_a_fault_is_removed_when_the_block_raises_and_the_blocks_error_wins():
    removed: list[str] = []
    with FakeDaemon(fault_daemon(removed, remove_error="internal")) as fake:
        with Client(fake.path) as client:
            with pytest.raises(AssertionError):
                with client.fault({"name": "f", "action": "drop"}):
                    raise AssertionError("the test failed")
            assert removed == ["f"]
            # Without an error in flight, a failed removal is the error.
            with pytest.raises(FinwaveError):
                with client.fault({"name": "g", "action": "drop"}):
                    pass


def test_a_fault_already_removed_by_a_reset_is_fine():
    removed: list[str] = []
    with FakeDaemon(fault_daemon(removed, remove_error="unknown_rule")) as fake:
        with Client(fake.path) as client, client.fault({"name": "f", "action": "drop"}):
            pass
    assert removed == ["f"]


def test_events_come_from_a_connection_of_their_own_until_shutdown():
    def handle(request):
        if request["cmd"] == "subscribe":
            assert request["events"] == ["outcome", "rule_change"]
            assert request["rule"] == "lose"
            return [
                reply(request, subscribed=True),
                json.dumps(sample_outcome()).encode() + b"\n",
                b'{"event":"rule_change","change":"reset","by":"control","rules":1,"seq":12}\n',
                b'{"event":"lagged","dropped":3,"message":"lagged, 3 events dropped"}\n',
                b'{"event":"shutdown"}\n',
            ]
        return [reply(request)]

    with FakeDaemon(handle) as fake, Client(fake.path) as client:
        client.status()
        stream = client.events(["outcome", "rule_change"], rule="lose", timeout=5)
        # Subscribed at the call, before the first event is asked for: nothing is missed.
        assert fake.connections == 2 and fake.requests[-1]["cmd"] == "subscribe"
        events = list(stream)
        assert list(stream) == []  # ended with the shutdown event
    assert [e.kind for e in events] == ["outcome", "rule_change", "lagged", "shutdown"]
    assert events[0].outcome is not None and events[0].outcome.id == 7
    assert events[1].fields["change"] == "reset" and events[1].outcome is None


def test_the_package_version_is_the_projects():
    root = Path(__file__).resolve().parents[3]
    cmake = (root / "CMakeLists.txt").read_text()
    project = re.search(r"project\(finwave VERSION ([0-9.]+)", cmake)
    assert project is not None
    pyproject = (root / "deploy/python/pyproject.toml").read_text()
    assert f'version = "{project.group(1)}"' in pyproject
    assert finwave.__version__ == project.group(1)


def test_metrics_returns_the_exposition_text():
    text = "# TYPE finwave_build_info gauge\nfinwave_build_info{version=\"0.1.0\"} 1\n"
    with FakeDaemon(answering(metrics={"content_type": "text/plain; version=0.0.4", "text": text})) as fake:
        with Client(fake.path) as client:
            assert client.metrics() == text
        assert [r["cmd"] for r in fake.requests] == ["metrics"]
