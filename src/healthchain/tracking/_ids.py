"""Experiment ids: UUIDv7 built from the same clock reading as the start time.

RFC 9562 UUIDv7 puts the Unix time in milliseconds in the top 48 bits; its method 3
(section 6.2) spends the 12 ``rand_a`` bits on the sub-millisecond fraction. Taking
both the id and ``start_time`` from one reading makes id order the same as start
order, so "newest first" reads an index backwards instead of sorting, and inserts
append to the end of the primary-key B-tree.
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime

__all__ = ["id_time", "new_id"]

_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)
_fromtimestamp = datetime.fromtimestamp

# Random bits from a generator seeded by the OS, reseeded in every forked child so two
# processes never share a sequence (os.urandom per id costs a system call).
_random = random.Random(os.urandom(32))
_randbits = _random.getrandbits
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))


def new_id() -> tuple[str, datetime]:
    """A fresh UUIDv7 string with hyphens, and the aware UTC time it encodes (to the µs)."""
    micros = time.time_ns() // 1000
    millis, sub = divmod(micros, 1000)
    value = (millis << 80) | _VERSION_AND_VARIANT | ((sub * 4096 // 1000) << 64) | _randbits(62)
    h = f"{value:032x}"
    # float seconds are exact to well under a microsecond here; fromtimestamp rounds back
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}", _fromtimestamp(micros / 1e6, UTC)


def id_time(experiment_id: str) -> datetime | None:
    """The aware UTC time a UUIDv7 id encodes (to the ms), or None if it is not one."""
    try:
        value = int(experiment_id.replace("-", ""), 16)
    except (AttributeError, ValueError):
        return None
    if len(experiment_id) != 36 or (value >> 76) & 0xF != 7 or (value >> 62) & 0b11 != 0b10:
        return None
    try:
        return _fromtimestamp((value >> 80) / 1000, UTC)
    except (ValueError, OverflowError, OSError):  # past year 9999: not one of ours
        return None
