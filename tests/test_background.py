"""A refresh step run in a forked child: its result, its errors and its death reach the parent."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from salesintel.engine import background

ROOT = Path(__file__).resolve().parents[1]


def _square_sum(values, offset):
    return sum(v * v for v in values) + offset


def _fails(text):
    raise ValueError(text)


def _dies():
    os._exit(3)


@pytest.mark.parametrize("fork", [True, False])
def test_the_result_is_the_same_forked_or_inline(fork):
    assert background.start(_square_sum, [1, 2, 3], 10, fork=fork).result() == 24


def test_an_error_in_the_child_is_raised_in_the_parent_with_its_traceback():
    with pytest.raises(background.BackgroundStepError, match="ValueError: no findings today") as raised:
        background.start(_fails, "no findings today", fork=True).result()
    assert "_fails" in str(raised.value)


def test_a_child_that_dies_is_an_error_not_a_hang():
    with pytest.raises(background.BackgroundStepError, match="exit code 3"):
        background.start(_dies, fork=True).result()


_TREES_IN_A_CHILD = """
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from salesintel.engine import background

rng = np.random.default_rng(0)
X = rng.random((5000, 4))
y = rng.random(5000) < X[:, 0]
model = HistGradientBoostingClassifier(max_iter=20).fit(X, y)  # the parent's OpenMP pool is now in use


def predict():
    return float(model.predict_proba(X)[:, 1].mean())


print(round(background.start(predict, fork=True).result(), 6) == round(predict(), 6))
"""


def test_a_child_can_predict_with_trees_after_the_parent_trained_them():
    """Without OpenMP held to one thread in the child, this hangs (GNU libgomp's pool does not survive fork): the
    drift step does exactly this with a reused tree model. Run in its own interpreter, so a hang is a timeout."""
    done = subprocess.run(
        [sys.executable, "-c", _TREES_IN_A_CHILD], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def _sleeps():
    import time

    time.sleep(60)


def test_a_discarded_step_stops_its_process():
    pending = background.start(_sleeps, fork=True)
    process = pending._process
    assert process.is_alive()
    pending.discard()
    assert not process.is_alive()


def test_leaving_a_step_group_by_an_error_stops_its_children():
    with pytest.raises(RuntimeError), background.StepGroup() as group:
        pending = group.start(_sleeps, fork=True)
        process = pending._process
        raise RuntimeError("scoring failed")
    assert not process.is_alive()
