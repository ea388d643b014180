"""Remembering what an answer is built from, where it cannot change: a deal's facts within one refresh.

A refresh is never changed once written, so everything `/deal-risk` derives from a refresh and a deal (the lookup,
the content, the rendered message for a given alert state) can be built once and served again until a newer refresh
lands. Under load, building it for every request cost twice what Bolt and the HTTP server cost together (see
docs/performance.md). What can change between two requests (who the viewer is and what they may see, the deal's
alert and its state, how old the data is) is read for every request and is part of the key, never remembered.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Protocol, TypeVar

T = TypeVar("T")
ENTRIES = 4096
"""About the deals people look at in a day; a deal's remembered answer is a few kilobytes."""
ONE_EACH = ("scores",)
"""Kinds of entry kept for one key at a time (see `AnswerMemo`): `BotContext.scores`, a refresh's every score."""


class Memo(Protocol):
    def __call__(self, key: Hashable, build: Callable[[], T]) -> T: ...


def no_memo(key: Hashable, build: Callable[[], T]) -> T:
    """Build every time (one-off commands, tests that compare a fresh build)."""
    return build()


class AnswerMemo:
    """A bounded, thread-safe memo (least recently used out first), one per process.

    A key must name everything the value depends on; a build that raises is not remembered.
    """

    def __init__(self, entries: int = ENTRIES, one_each: tuple[str, ...] = ONE_EACH):
        """`one_each`: kinds of entry (a key's first item) held once only, the latest replacing the one before, as
        they are large (a refresh's every score) and an older refresh's is not asked for again."""
        self._entries: OrderedDict[Hashable, object] = OrderedDict()
        self._limit = entries
        self._one_each = one_each
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __call__(self, key: Hashable, build: Callable[[], T]) -> T:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key]  # type: ignore[return-value]
            self.misses += 1
        value = build()  # outside the lock: two threads may build the same value once each, never a wrong one
        with self._lock:
            if isinstance(key, tuple) and key and key[0] in self._one_each:
                for older in [k for k in self._entries if isinstance(k, tuple) and k and k[0] == key[0]]:
                    del self._entries[older]
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._limit:
                self._entries.popitem(last=False)
        return value
