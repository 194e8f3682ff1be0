# The lab's pytest suites run the client command line the lab test gives them.
import os
import shlex
import subprocess

import pytest


@pytest.fixture
def connect():
    def run() -> None:
        subprocess.run(shlex.split(os.environ["FINWAVE_EXAMPLE_CLIENT"]), check=True, timeout=30)

    return run
