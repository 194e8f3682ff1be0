"""finwave from Python: a client of finwave's control socket and a pytest plugin.

    from finwave import Client
    with Client() as fw, fw.fault({"role": "final_ack", "action": "drop", "first": 1}) as fault:
        run_the_client()
        [outcome] = fault.wait(result="clean", timeout=15)
        assert outcome.fin_retransmits.server == 1
"""

from finwave.client import (
    DEFAULT_PATH,
    Client,
    Event,
    EventStream,
    Fault,
    ResetResult,
    RuleChange,
    RuleInfo,
    default_path,
)
from finwave.daemon import Daemon, DaemonConfig, DaemonError
from finwave.errors import FinwaveError, WaitTimeout
from finwave.outcome import (
    Action,
    FinalAcks,
    FinRetransmits,
    Flow,
    Outcome,
    Rst,
    TimelineEntry,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PATH",
    "Action",
    "Client",
    "Daemon",
    "DaemonConfig",
    "DaemonError",
    "Event",
    "EventStream",
    "Fault",
    "FinRetransmits",
    "FinalAcks",
    "FinwaveError",
    "Flow",
    "Outcome",
    "ResetResult",
    "Rst",
    "RuleChange",
    "RuleInfo",
    "TimelineEntry",
    "WaitTimeout",
    "__version__",
    "default_path",
]
