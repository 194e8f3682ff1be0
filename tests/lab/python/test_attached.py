"""Against a finwave the lab test started (FINWAVE_CONTROL set: the plugin attaches), with
rules/examples/lose-first-final-ack.toml loaded: the finwave fixture's reset() between tests
puts the file's rules back, and a marked test gets a finwave of its own."""

import os

import pytest

FILE_RULES = [("lose-first-final-ack", True, "file")]


def test_1_leaves_changes_behind(finwave):
    finwave.add({"name": "left-behind", "role": "fin1", "action": "drop"})
    finwave.disable("lose-first-final-ack")
    assert [r.name for r in finwave.rules()] == ["lose-first-final-ack", "left-behind"]


def test_2_starts_from_the_rule_file_as_loaded(finwave, connect):
    assert [(r.name, r.enabled, r.origin) for r in finwave.rules()] == FILE_RULES
    seq = finwave.last_outcome_seq()
    connect()
    [outcome] = finwave.wait(since=seq, timeout=15)
    assert outcome.rules() == ["lose-first-final-ack"]
    assert outcome.fin_retransmits.server == 1 and outcome.result == "clean"


@pytest.mark.finwave(mode="router", ports=[5001], rules=os.environ["LAB_RULES"],
                     args=["--queue", "7"])
def test_3_a_marked_test_gets_a_finwave_of_its_own(finwave):
    status = finwave.status()
    assert status["queue"] == 7 and status["ports"] == [5001]
    assert status["control"]["path"] != os.environ["FINWAVE_CONTROL"]
    assert [(r.name, r.enabled, r.origin) for r in finwave.rules()] == FILE_RULES


def test_4_events_name_the_reset(finwave):
    events = finwave.events(["rule_change"], timeout=10)
    finwave.add({"name": "short-lived", "role": "rst", "action": "pass"})
    assert next(events).fields["change"] == "add"
    finwave.reset()
    assert next(events).fields["change"] == "reset"
    events.close()
