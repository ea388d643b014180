"""One command run as its own process, timed from start to exit, with its peak memory: what every bench compares.

Each measurement runs in a fresh helper interpreter, so RUSAGE_CHILDREN holds that one command's peak resident set
and nothing else's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def measure(command: list[str], env: dict) -> dict:
    """{"seconds": wall time, "peak_mib": peak RSS} of one run of `command`."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command], check=True, capture_output=True, text=True, cwd=ROOT, env=env
    )
    return json.loads(done.stdout)


def salesintel(*args: str) -> list[str]:
    """The `salesintel` command line, run from this checkout with its config.yaml."""
    return [sys.executable, "-m", "salesintel.bot", "--config", str(ROOT / "config.yaml"), *args]
