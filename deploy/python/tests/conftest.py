# The package from the source tree, and the fake daemon beside the tests, without installing.
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path[:0] = [str(here.parent), str(here)]
