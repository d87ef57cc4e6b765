"""Validation and encoding of what users hand the tracker: tags, components, configs, times.

Everything here runs before a write is queued, so bad input is rejected with nothing
written. It is on the hot path of ``start_experiment``: keep it lean.
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

from ._exceptions import InvalidFilterError, InvalidInputError
from ._records import ExperimentStatus, RequestRecord

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_ROWS",
    "MAX_TAG_BYTES",
    "dump_json",
    "parse_status",
    "check_depth",
    "check_storable",
    "id_list",
    "joined_tags_json",
    "printable",
    "utcnow",
    "validate_components",
    "validate_id",
    "validate_pipeline_config",
    "validate_row_count",
    "validate_tags",
]

MAX_JSON_DEPTH = 64
"""Lists and dicts nest at most this deep in a tag value or a pipeline_config."""
MAX_TAG_BYTES = 2048
"""A tag's key plus its canonical JSON value, in bytes of UTF-8. PostgreSQL indexes the
pair (a B-tree entry holds at most ~2,700 bytes of incompressible text), and SQLite keeps
the same limit so data moves between them."""
MAX_ROWS = 2**63 - 1
"""Largest ``limit`` and ``offset``: a signed 64-bit integer, SQL's BIGINT."""

# Values echoed in messages: shortened, and safe for deeply nested containers.
_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxstring, _repr.maxother = 3, 80, 80
show = _repr.repr

_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_dumps_sorted = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True
).encode

# PostgreSQL cannot store NUL in a text column; SQLite can. The tracker refuses it in
# names and keys on both, so data moves between them and a filter means the same on
# each. Inside JSON values it is written as the escape \u0000, which both store.
_NUL = "\x00"
# ``isinstance`` with a tuple: ``dict | list | tuple`` builds a union object on every call.
_CONTAINERS = (dict, list, tuple)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def dump_json(value: object) -> str:
    """Compact JSON text; NaN and infinities are rejected, since SQLite's JSON functions are."""
    return _dumps(value)


_key_json = json.encoder.encode_basestring  # what _dumps writes for a str (no ensure_ascii)


def joined_tags_json(tags: dict[str, Any], texts: dict[str, str]) -> str | None:
    """``dump_json(tags)``, from validated tags and their texts (:func:`validate_tags`),
    joined from the texts without encoding again, whose members'
    values are then each tag's canonical text; None where a value's sorted text is not
    its text as given: a list or dict (whose keys the stored column keeps in order)."""
    for value in tags.values():
        if isinstance(value, _CONTAINERS):
            return None
    return "{" + ",".join([f"{_key_json(k)}:{t}" for k, t in texts.items()]) + "}"


def check_storable(value: str, what: str, error: type[Exception] = InvalidInputError) -> None:
    """Refuse text no backend can store alike: NUL, and lone surrogates (not UTF-8).

    JSON text passes the NUL test by construction (NUL is escaped in it).
    """
    if _NUL in value:
        raise error(
            f"{what} contains a NUL character ('\\x00'), which PostgreSQL cannot store; "
            "remove it (healthchain refuses it on every backend)"
        )
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            raise error(
                f"{what} contains {value[exc.start]!r} at position {exc.start}, a lone "
                "surrogate that is not valid Unicode text and cannot be stored as UTF-8; "
                "decode the source bytes correctly or drop it"
            ) from None


def printable(text: str | None) -> str | None:
    """Free text (an error message) made storable: NUL and lone surrogates as escapes."""
    if text is None or (text.isascii() and _NUL not in text):
        return text
    return text.replace(_NUL, "\\x00").encode("utf-8", "backslashreplace").decode()


def check_depth(
    value: object, what: str, error: type[Exception], limit: int = MAX_JSON_DEPTH
) -> None:
    """Refuse lists and dicts nested deeper than ``limit`` (or containing themselves),
    which JSON encoders and decoders handle by recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise error(
                f"{what} nests lists or dicts more than {limit} levels deep (or contains "
                f"itself); healthchain stores JSON at most {limit} levels deep: flatten it"
            )
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, _CONTAINERS):
                stack.append((child, depth + 1))


def validate_tags(
    tags: object, *, what: str = "tags", error: type[InvalidInputError] = InvalidInputError
) -> tuple[dict[str, Any], dict[str, str]]:
    """Return ``(tags, {key: canonical value text})`` or raise naming the bad key or value.

    A value may nest at most :data:`MAX_JSON_DEPTH` levels, and a key plus its value's JSON
    text may take at most :data:`MAX_TAG_BYTES` bytes of UTF-8.
    """
    if tags is None:
        return {}, {}
    if type(tags) is not dict and not isinstance(tags, Mapping):
        raise error(
            f"{what} must be a dict of string keys to JSON values, got {type(tags).__name__} "
            f"{show(tags)}"
        )
    texts: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not key:
            raise error(
                f"{what} keys must be non-empty strings; {show(key)} is not. "
                f"Use e.g. {{{show(str(key))}: ...}}"
            )
        if isinstance(value, _CONTAINERS):
            check_depth(value, f"{what}[{show(key)}]", error)
        try:
            texts[key] = _dumps_sorted(value)
        except (TypeError, ValueError) as exc:
            raise error(
                f"{what}[{show(key)}] = {show(value)} is not JSON-serialisable ({exc}); "
                "use strings, finite numbers, booleans, None, lists or dicts of those"
            ) from exc
    # Cheap tests first (this is the hot path of every start): the full check only for
    # text that is not plain ASCII or may hold a NUL.
    for key, text in texts.items():
        size = len(key) + len(text)
        if _NUL in key or not (key.isascii() and text.isascii()):
            check_storable(key, f"{what} key {show(key)}", error)
            check_storable(text, f"{what}[{show(key)}]", error)
            size = len(key.encode()) + len(text.encode())
        if size > MAX_TAG_BYTES:
            raise error(
                f"{what}[{show(key)}] takes {size:,} bytes (its key plus the value's JSON text, "
                f"in UTF-8); a tag may take at most {MAX_TAG_BYTES:,}, since its key and value "
                "are indexed: store large values in pipeline_config instead"
            )
    return dict(tags), texts


def validate_pipeline_config(config: object) -> str | None:
    """Return the JSON text of ``config`` (None for None), a JSON-serialisable dict.

    Lists and dicts in it nest at most :data:`MAX_JSON_DEPTH` levels (the config itself
    being the first).
    """
    if config is None:
        return None
    if type(config) is not dict and not isinstance(config, Mapping):
        raise InvalidInputError(
            f"pipeline_config must be a dict or None, got {type(config).__name__} {show(config)}"
        )
    check_depth(
        config if isinstance(config, dict) else dict(config), "pipeline_config", InvalidInputError
    )
    try:
        text = _dumps(config)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"pipeline_config is not JSON-serialisable ({exc}); "
            "keep it to strings, finite numbers, booleans, None, lists and dicts"
        ) from exc
    check_storable(text, "pipeline_config")
    return text


_COMPONENT_KEYS = frozenset({"name", "type", "stage"})


def validate_components(components: object) -> list[tuple[str, str | None, str | None]]:
    """Return ``[(name, type, stage), ...]`` in order; position is the index."""
    if components is None:
        return []
    if type(components) not in (list, tuple) and (
        isinstance(components, str | bytes | Mapping) or not isinstance(components, Iterable)
    ):
        raise InvalidInputError(
            "components must be a sequence of {'name', 'type', 'stage'} mappings, "
            f"got {components!r}"
        )
    out: list[tuple[str, str | None, str | None]] = []
    for position, item in enumerate(cast("Iterable[Any]", components)):
        if type(item) is not dict and not isinstance(item, Mapping):
            raise InvalidInputError(
                f"components[{position}] must be a mapping with 'name', 'type' and 'stage', "
                f"got {item!r}"
            )
        if not item.keys() <= _COMPONENT_KEYS:
            unknown = sorted(set(item) - _COMPONENT_KEYS)
            raise InvalidInputError(
                f"components[{position}] has unknown key(s) {unknown!r}; "
                "allowed: 'name', 'type', 'stage'"
            )
        name, kind, stage = item.get("name"), item.get("type"), item.get("stage")
        if type(name) is not str or not name:
            raise InvalidInputError(
                f"components[{position}]['name'] must be a non-empty string, got {name!r}"
            )
        # Plain ASCII without NUL (nearly every name) needs no check, nor its message built.
        if _NUL in name or not name.isascii():
            check_storable(name, f"components[{position}]['name']")
        if kind is not None:
            _check_component_field(position, "type", kind)
        if stage is not None:
            _check_component_field(position, "stage", stage)
        out.append((name, kind, stage))
    return out


def _check_component_field(position: int, field: str, value: object) -> None:
    if type(value) is not str:
        raise InvalidInputError(
            f"components[{position}][{field!r}] must be a string or None, got {value!r}"
        )
    if _NUL in value or not value.isascii():
        check_storable(value, f"components[{position}][{field!r}]")


def parse_status(value: object, *, what: str = "status") -> ExperimentStatus:
    """Accept an :class:`ExperimentStatus` or its name in any case."""
    if isinstance(value, ExperimentStatus):
        return value
    if isinstance(value, str):
        try:
            return ExperimentStatus(value.upper())
        except ValueError:
            pass
    allowed = ", ".join(s.value for s in ExperimentStatus)
    error = InvalidFilterError if what.startswith("filters") else InvalidInputError
    raise error(f"unknown {what} {value!r}; expected one of {allowed}")


def validate_row_count(value: object, what: str, *, optional: bool = False) -> int | None:
    """``limit`` or ``offset``: an int from 0 to :data:`MAX_ROWS` (None if ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ROWS:
        raise InvalidInputError(
            f"{what} must be an integer from 0 to {MAX_ROWS:,} (2**63 - 1), got {show(value)}"
        )
    return value


_ID_LENGTH = 36


def validate_id(value: object, what: str = "experiment_id") -> str | None:
    """An experiment id argument: it must be a str; None if no experiment can have it.

    Ids are UUID text of 36 characters. A longer string, or one no backend can store
    (NUL, lone surrogates), names no experiment: callers treat it as unknown rather than
    send it to the database (PostgreSQL's ``varchar(36)`` would refuse it on a write).
    """
    if type(value) is not str and not isinstance(value, str):
        raise InvalidInputError(
            f"{what} must be a string (an experiment id such as "
            f"'0190b5c8-4f7e-7d2a-9c1e-2f3a4b5c6d7e'), got {type(value).__name__} {show(value)}"
        )
    if len(value) > _ID_LENGTH or _NUL in value or not (value.isascii() or _is_utf8(value)):
        return None
    return value


def id_list(experiment_ids: object) -> list[Any]:
    """An id, or an iterable of them, as a list; anything else is refused."""
    if isinstance(experiment_ids, str):
        return [experiment_ids]
    if not isinstance(experiment_ids, Iterable) or isinstance(experiment_ids, bytes | Mapping):
        raise InvalidInputError(
            "experiment_ids must be an id or an iterable of ids, "
            f"got {type(experiment_ids).__name__} {show(experiment_ids)}"
        )
    return list(experiment_ids)


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def validate_request_records(records: object) -> list[RequestRecord]:
    """Check request records before they are queued."""
    if isinstance(records, str | bytes) or not isinstance(records, Iterable):
        raise InvalidInputError(f"records must be a sequence of RequestRecord, got {records!r}")
    out: list[RequestRecord] = []
    for i, record in enumerate(records):
        if not isinstance(record, RequestRecord):
            raise InvalidInputError(f"records[{i}] must be a RequestRecord, got {record!r}")
        if not isinstance(record.start_time, datetime) or record.start_time.tzinfo is None:
            raise InvalidInputError(
                f"records[{i}].start_time must be a timezone-aware datetime, "
                f"got {record.start_time!r}"
            )
        for field in ("index", "status_code"):
            number = getattr(record, field)
            if number is None and field == "status_code":
                continue
            if (
                isinstance(number, bool)
                or not isinstance(number, int)
                or not (_INT_MIN <= number <= _INT_MAX)
            ):
                raise InvalidInputError(
                    f"records[{i}].{field} must be an integer from {_INT_MIN:,} to "
                    f"{_INT_MAX:,} (SQL's INTEGER), got {show(number)}"
                )
        if not _finite(record.latency_ms):
            raise InvalidInputError(
                f"records[{i}].latency_ms must be a finite number of milliseconds, "
                f"got {show(record.latency_ms)}"
            )
        error = printable(record.error)
        if error is not record.error:
            record = replace(record, error=error)
        if record.scores is not None:
            # Scores are checked as metrics are (their means are logged as metrics);
            # imported here because _metric_input builds on this module.
            from ._metric_input import validate_scores

            scores = validate_scores(record.scores, f"records[{i}].scores")
            if scores != record.scores:  # ints made floats (or NaN, never equal to itself)
                record = replace(record, scores=scores)
        out.append(record)
    return out


_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def _finite(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False
