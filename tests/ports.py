"""A free TCP port for a server a test starts in another process (which binds it itself, a moment later)."""

from __future__ import annotations

import random
import socket

BELOW_EPHEMERAL = (20000, 32767)
"""Linux hands out ports from 32768 up for `bind(port 0)` (every stand-in, every client socket): a port taken from
below that range is not given to anyone else between this check and the server binding it. Chosen at random, so two
test workers asking at once do not get the same one either (the kernel's choice of a just-released port could)."""


def free_port(rng: random.Random | None = None) -> int:
    rng = rng or random.SystemRandom()  # not a seeded generator: test workers must not draw the same ports
    low, high = BELOW_EPHEMERAL
    for _ in range(200):
        port = rng.randint(low, high)
        with socket.socket() as probe:
            try:
                probe.bind(("", port))  # every address: the service binds 0.0.0.0
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {low} and {high}")
