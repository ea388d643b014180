"""Run a pure step of a refresh in a forked child process while the parent goes on with the next ones.

A refresh of a million deals spends seconds on steps that need neither the model nor the scores (half the field
audit, segments and evidence, the 12-month trend and the anomalies), while the parent keeps one core busy with
training, per-deal Python and SQLite; the machine has two. A thread would share the interpreter lock with that
Python work, so the step runs in a child forked from this process: it sees the same frames without copying or
pickling them (copy-on-write pages) and sends back only its small result.

The step must be pure (no store, no clock, no Slack): the child touches nothing the parent owns. It runs with
OpenMP held to one thread: scikit-learn's trees use OpenMP (GNU libgomp), whose thread pool does not survive a
fork — a child that predicted with a tree model after the parent had trained one hung for good (seen on this
machine; tests/test_background.py keeps it from coming back). Where `fork` is not available (or not wanted, e.g.
for small data, where starting a process costs more than it saves) the step runs inline when its result is asked
for, so the result is the same either way.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Callable
from typing import Any

NICENESS = 19
"""A child yields the CPU to its parent: it is never on the critical path while the parent has work, and it gets a
whole core when the parent waits for it. Without this, a child beside the trees' training (two OpenMP threads)
slowed the training by 70%: OpenMP's threads wait for each other at every step, and a descheduled one stalls all."""


class BackgroundStepError(RuntimeError):
    """The background step raised, or its process died before answering."""


class Pending:
    """A step started with `start`; `result()` waits for it (and raises what it raised)."""

    def __init__(self, step: Callable[..., Any], args: tuple, process=None, reader=None):
        self._step, self._args, self._process, self._reader = step, args, process, reader

    def result(self) -> Any:
        if self._process is None:
            return self._step(*self._args)
        try:
            status, value, trace = self._reader.recv()
        except EOFError:
            self._process.join()
            raise BackgroundStepError(
                f"{self._step.__name__} died in its process (exit code {self._process.exitcode})"
            ) from None
        finally:
            self._reader.close()
        self._process.join()
        if status == "error":
            raise BackgroundStepError(f"{self._step.__name__} failed:\n{trace}") from value
        return value

    def discard(self) -> None:
        """The result is not wanted after all: stop the child (a step left running would wait forever to send a
        result nobody reads, one more process per refresh in a long-running service). After `result()`, a no-op."""
        if self._process is not None:
            self._process.terminate()
            self._process.join()
            self._reader.close()
            self._process = None
        self._step = None


class StepGroup:
    """Steps started together: leaving the group, normally or by an error, stops any child still running."""

    def __init__(self):
        self._started: list[Pending] = []

    def start(self, step: Callable[..., Any], *args: Any, fork: bool) -> Pending:
        pending = start(step, *args, fork=fork)
        self._started.append(pending)
        return pending

    def __enter__(self) -> StepGroup:
        return self

    def __exit__(self, *exc_info) -> None:
        for pending in self._started:
            pending.discard()


def start(step: Callable[..., Any], *args: Any, fork: bool) -> Pending:
    """Start `step(*args)` in a forked child when `fork` is true and the platform can fork; else later, inline."""
    if not fork or "fork" not in multiprocessing.get_all_start_methods():
        return Pending(step, args)
    context = multiprocessing.get_context("fork")
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(target=_run_in_child, args=(step, args, writer), daemon=True)
    process.start()
    writer.close()  # the child holds the only writing end: its exit ends the pipe
    return Pending(step, args, process, reader)


def _run_in_child(step: Callable[..., Any], args: tuple, writer) -> None:
    from threadpoolctl import threadpool_limits

    try:
        os.nice(NICENESS)
        with threadpool_limits(1, user_api="openmp"):  # the parent's OpenMP pool is not usable here (see above)
            value = step(*args)
        writer.send(("ok", value, None))
    except BaseException as error:  # noqa: BLE001 — everything goes back to the parent, which raises it
        try:
            writer.send(("error", error, traceback.format_exc()))
        except Exception:  # the error itself cannot be pickled: send its text
            writer.send(("error", None, traceback.format_exc()))
    finally:
        writer.close()
