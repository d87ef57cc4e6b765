"""Experiment ids: UUIDv7 built from the same clock reading as the start time.

RFC 9562 UUIDv7 puts the Unix time in milliseconds in the top 48 bits; its method 3
(section 6.2) spends the 12 ``rand_a`` bits on the sub-millisecond fraction. Taking
both the id and ``start_time`` from one reading makes id order the same as start
order, so "newest first" reads an index backwards instead of sorting, and inserts
append to the end of the primary-key B-tree.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from datetime import UTC, datetime

from ._exceptions import InvalidInputError

__all__ = ["MIN_PREFIX_LENGTH", "id_prefix_range", "id_time", "new_id", "unique_prefix"]

MIN_PREFIX_LENGTH = 4
"""The fewest hex digits of an id that name it by prefix."""

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


_DIGITS = "0123456789abcdef"
_HEX = frozenset(_DIGITS)
_HYPHENS_AFTER = (8, 12, 16, 20)  # hex digits before each hyphen of a stored id


def _hyphenated(digits: str) -> str:
    """Hex digits with hyphens where a stored id has them (``8-4-4-4-12``)."""
    bounds = [0, *(n for n in _HYPHENS_AFTER if n < len(digits)), len(digits)]
    return "-".join(digits[a:b] for a, b in itertools.pairwise(bounds))


def _successor(prefix: str) -> str:
    """The least string above every id of hex digits starting with ``prefix``.

    Carrying (``…bf`` to ``…c0``) keeps the bound to hex digits and hyphens, which sort
    as in byte order under PostgreSQL's usual collations too (``…9`` + 1 would be ``:``,
    which a collation may skip).
    """
    chars = list(prefix)
    for i in range(len(chars) - 1, -1, -1):
        if chars[i] == "-":
            continue
        if chars[i] != "f":
            chars[i] = _DIGITS[int(chars[i], 16) + 1]
            return "".join(chars)
        chars[i] = "0"
    return "g"  # past every id of hex digits: above "ffff…", below nothing that matters


def id_prefix_range(text: str) -> tuple[str, str] | None:
    """The stored ids starting with ``text`` as a range ``[low, high)``; None if not hex.

    ``text`` is case-insensitive hex with hyphens where the stored id has them, or none
    at all; a prefix of fewer than :data:`MIN_PREFIX_LENGTH` digits, or hyphens elsewhere,
    raises :class:`InvalidInputError`. ``low`` is the prefix as stored.
    """
    lowered = text.lower()
    digits = lowered.replace("-", "")
    if not digits or not _HEX.issuperset(digits) or len(digits) > 32:
        return None
    low = _hyphenated(digits)
    if "-" in lowered and lowered.rstrip("-") != low:
        raise InvalidInputError(
            f"id prefix {text!r} has hyphens where ids have none; ids are written "
            "8-4-4-4-12 (e.g. '0190b5c8-4f7e'), or give the hex digits alone"
        )
    if len(digits) < MIN_PREFIX_LENGTH:
        raise InvalidInputError(
            f"id prefix {text!r} is too short: give at least {MIN_PREFIX_LENGTH} characters "
            "of the id"
        )
    return low, _successor(low)


def _common_length(a: str, b: str | None) -> int:
    if b is None:
        return 0
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def unique_prefix(
    experiment_id: str, before: str | None, after: str | None, min_length: int
) -> str:
    """The shortest prefix of ``experiment_id``, at least ``min_length`` long, that its
    stored neighbours in id order (``before``, ``after``) do not share, as git abbreviates.

    UUIDv7 ids of runs started within a minute share their first 8 characters, so the
    prefix grows past them as needed; it never ends at a hyphen.
    """
    length = max(
        min_length,
        1 + _common_length(experiment_id, before),
        1 + _common_length(experiment_id, after),
    )
    if experiment_id[length - 1 : length] == "-":
        length += 1
    return experiment_id[:length]
