"""A test that fails on purpose, after a connection through a fault: its report must carry
the outcomes finwave saw during it, with their ladder diagrams."""


def test_expects_the_wrong_thing(finwave, connect):
    with finwave.fault({"name": "lose-final-ack-once", "role": "final_ack", "action": "drop",
                        "first": 1}) as fault:
        connect()
        [outcome] = fault.wait(timeout=15)
    assert outcome.fin_retransmits.server == 0, "wrong on purpose: the server did retransmit"
