"""Derived seeds: one documented way to get independent random streams from a run's seed."""
from __future__ import annotations

import hashlib


def derive(seed: int, *purpose: object) -> int:
    """A 63-bit seed for ``purpose`` (e.g. ``derive(seed, "batch order")``, ``derive(seed, "mask", site)``),
    independent of the seeds derived for other purposes and stable across runs, machines and Python versions."""
    h = hashlib.sha256(repr((int(seed),) + tuple(str(p) for p in purpose)).encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1
