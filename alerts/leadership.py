"""Which process runs the scheduler and delivery when several serve one store: the holder of one lease.

Every replica answers Slack requests; only the lease holder runs jobs and sends messages. The holder renews the lease
with every tick and from a heartbeat between ticks (a long refresh must not let it lapse); when the holder dies, its
lease expires and the next replica to try takes it, within `lease_seconds` plus one heartbeat. A new holder first
recovers what the old one left in flight (`Deliverer.recover_orphans`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from salesintel.alerts.clock import Clock
from salesintel.engine.store import Store

log = logging.getLogger("salesintel.leadership")

SCHEDULER_LEASE = "scheduler"


class Leadership:
    def __init__(self, store: Callable[[], Store], holder: str, lease: timedelta, clock: Clock):
        """`store`: this thread's store (a callable: the heartbeat and the ticks run on different threads)."""
        self._store, self.holder, self.lease, self.clock = store, holder, lease, clock
        self._leading = False
        self._renewed_at = None
        self._new_term = False
        """Set when the lease is gained, by whichever renewal gained it (the tick's or the heartbeat's), until the
        tick takes it: recovery of what the previous leader left in flight must not depend on which one it was."""
        self._lock = threading.Lock()

    @property
    def leading(self) -> bool:
        return self._leading

    def renew(self) -> tuple[bool, bool]:
        """Take or renew the lease: (leading now, just became the leader)."""
        store = self._store()
        with store.transaction():
            leading = store.leases.acquire(SCHEDULER_LEASE, self.holder, self.clock.now(), self.lease)
        with self._lock:
            gained, lost = leading and not self._leading, self._leading and not leading
            self._leading = leading
            self._new_term = (self._new_term or gained) and leading
            self._renewed_at = self.clock.now()
        if gained:
            log.info("leading", extra={"event": "leader_acquired", "holder": self.holder})
        if lost:
            log.warning("lost the lease", extra={"event": "leader_lost", "holder": self.holder})
        return leading, gained

    def take_new_term(self) -> bool:
        """True once after each gain of the lease (then False until the next): the time to recover orphans."""
        with self._lock:
            new, self._new_term = self._new_term, False
            return new

    def keep(self) -> bool:
        """Renew the lease if a third of it has passed since the last renewal (cheap to call between messages);
        whether this process still leads."""
        if self._renewed_at is None or self.clock.now() - self._renewed_at >= self.lease / 3:
            return self.renew()[0]
        return self._leading

    def wait_to_lead(self, give_up_after: timedelta, poll: timedelta = timedelta(seconds=0.5)) -> bool:
        """Try to take the lease until it is ours or `give_up_after` has passed (a crashed holder's lease expires
        within `lease`); whether this process leads."""
        deadline = self.clock.now() + give_up_after
        while not self.renew()[0]:
            if self.clock.now() >= deadline:
                return False
            self.clock.sleep(poll.total_seconds())
        return True

    def release(self) -> None:
        """Give the lease up on a clean stop, so another replica takes over at once."""
        store = self._store()
        with store.transaction():
            store.leases.release(SCHEDULER_LEASE, self.holder)
        self._leading = False

    def current(self) -> str | None:
        """Who leads now (any replica may ask)."""
        held = self._store().leases.holder(SCHEDULER_LEASE, self.clock.now())
        return held[0] if held else None
