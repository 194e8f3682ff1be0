"""Chaos tests of TCP teardown with finwave's pytest plugin: the README's example, run as it
is by tests/lab/python_plugin_test.sh. connect() stands for your own client; here it runs the
command line in $FINWAVE_EXAMPLE_CLIENT (finwave-peer in the lab's client namespace)."""

import os
import shlex
import subprocess


def connect() -> None:
    subprocess.run(shlex.split(os.environ["FINWAVE_EXAMPLE_CLIENT"]), check=True, timeout=30)


def test_a_lost_final_ack_is_answered_by_a_fin_retransmission(finwave):
    # The client closes first; its first final ACK is lost, so the server sends its FIN
    # again, the client acknowledges it again, and the close still ends clean.
    with finwave.fault({"role": "final_ack", "action": "drop", "first": 1}) as fault:
        connect()
        [outcome] = fault.wait(result="clean", timeout=15)
    assert outcome.fin_retransmits.server == 1
    assert outcome.final_acks.dropped == 1


def test_without_a_fault_the_close_is_clean_at_once(finwave):
    seq = finwave.last_outcome_seq()  # wait from here: no race with a fast connection
    connect()
    [outcome] = finwave.wait(since=seq, timeout=15)
    assert outcome.result == "clean"
    assert outcome.actions == []
    assert outcome.fin_retransmits.server == 0
