"""Rows as records: the lean loop every list runs, and the tolerant one for rows another
writer left with values the tracker never writes (request rows: ``_request_rows``; metric
and param rows: ``_measure_rows``).
Turning rows into records is most of the cost of a large list: keep the fast loops lean.

The fast loops pay only for a ``try`` around them; when a row's timestamp, status or
number cannot be read, the whole batch is read again value by value, each unreadable
value replaced and named in a warning, so one row never breaks a list for everyone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from ._codecs import from_db_time
from ._ids import id_time
from ._records import Component, Experiment, ExperimentStatus
from ._validation import MAX_JSON_DEPTH, check_depth

__all__ = ["experiment_records", "is_number", "iso_records"]

logger = logging.getLogger("healthchain.tracking")

_STATUS = {s.value: s for s in ExperimentStatus}
# The stdlib decoder's C scanner (what ``json.loads`` ends in), without the whitespace
# regex and end check around it (JSON another writer indented falls back to json.loads).
# Measured with timeit on a 2-core Linux box (median of 7, CPython 3.11, short tag and
# config values): 0.30 µs per value, against 0.39 µs for the public ``raw_decode`` and
# 1.0 µs for ``json.loads``; at three values a row, ~0.3 s per million rows listed.
# ``json.JSONDecoder.scan_once`` has been there since Python 2.6.
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]

_READ_DEPTH = MAX_JSON_DEPTH + 1
# JSON this short cannot nest deeper than _READ_DEPTH (see _json): no depth check
_SHALLOW = 2 * _READ_DEPTH


class _TooDeep(Exception):
    """Stored JSON nested deeper than the tracker writes (another writer's row)."""


def _json(value: Any) -> Any:
    if value is None or value.__class__ is not str:
        return value
    try:
        decoded = _scan(value, 0)[0]
    except StopIteration:  # written by someone else, with leading whitespace
        decoded = json.loads(value)
    # JSON nested N deep is at least 2N characters with N brackets: the cheap tests
    # spare the walk to nearly every row. Deeper than the tracker writes (a tags object
    # around values of the maximum depth), it could break whatever renders it (encoders
    # recurse too), so it is not handed out.
    if len(value) > _SHALLOW and value.count("[") + value.count("{") > _READ_DEPTH:
        check_depth(decoded, "stored JSON", _TooDeep, _READ_DEPTH)
    return decoded


def _components(value: Any) -> tuple[Component, ...]:
    parts = _json(value)  # PostgreSQL's json column holds None as JSON 'null'
    if parts is None:
        return ()
    return tuple(
        Component(name, kind, stage, position) for position, (name, kind, stage) in enumerate(parts)
    )


def experiment_records(rows: Sequence[Any]) -> list[Experiment]:
    """Rows of ``_COLUMNS`` as records: the hot loop of every list.

    A row another writer left with a value the loop cannot read (a timestamp that is not
    one, a status outside the four) sends the whole list down :func:`_tolerant_records`,
    which reads each row value by value: the fast loop itself pays only for the ``try``.
    """
    try:
        return _fast_records(rows, from_db_time)
    except _UNREADABLE_ROW:
        return _tolerant_records(rows)


def iso_records(rows: Sequence[Any]) -> list[Experiment] | None:
    """Rows whose times are ISO text in UTC (``_queries``' PostgreSQL list) as records;
    None if a time is not (infinity, a year Python cannot hold): read those again the
    usual way, so they read as from_db_time reads them, warnings and all."""
    try:
        return _fast_records(rows, _from_iso)
    except _UNREADABLE_ROW:
        return None


_from_iso = datetime.fromisoformat


def _fast_records(rows: Sequence[Any], time: Callable[[Any], Any]) -> list[Experiment]:
    # Runs of one project usually share their pipeline: its components (immutable
    # tuples) are built once per distinct value and shared between records, and its
    # config is decoded once and copied (see _Configs).
    pipelines: dict[Any, tuple[Component, ...]] = {None: ()}
    configs = _Configs()
    copiers = configs.copiers
    json, scan, shallow, status_of = _json, _scan, _SHALLOW, _STATUS
    out: list[Experiment] = []
    append = out.append
    # unpacked in Experiment's field order (_queries._COLUMNS'): one name per field
    for (
        id_,
        name,
        project,
        start,
        end,
        status,
        tags,
        config,
        parts,
        error,
        host,
        pid,
        beat,
        interval,
        files_dir,
    ) in rows:
        # Each step's usual case first, with no Python call of ours: about a tenth of a
        # record's instructions (callgrind); the general helpers take the rest.
        try:
            components = pipelines.get(parts) if parts.__class__ is str else None
            if components is None:
                components = _pipeline(pipelines, parts)
            # too short to nest deeper than the tracker writes: the scanner alone
            if tags.__class__ is str and len(tags) <= shallow:
                tags = scan(tags, 0)[0]
            else:
                tags = json(tags)
            copy = copiers.get(config)
            config = configs.get(config) if copy is None else copy()
        except _UNREADABLE_JSON:  # another writer's row: list it all the same
            tags, config, components = _unreadable(id_, tags, config, parts)
        # time: from_db_time (SQLite's text, asyncpg's datetimes and infinities), or
        # datetime.fromisoformat itself for ISO text in UTC (see iso_records)
        start_time = time(start)
        append(
            Experiment(
                id_,
                name,
                project,
                start_time,
                None if end is None else time(end),
                status_of[status],
                tags,
                config,
                components,
                error,
                host,
                pid,
                # a run that has not beaten since it started (datetimes are immutable)
                start_time if beat == start else None if beat is None else time(beat),
                interval,
                files_dir,
            )
        )
    return out


def _pipeline(pipelines: dict[Any, tuple[Component, ...]], parts: Any) -> tuple[Component, ...]:
    """The components of ``parts`` (JSON text, or a driver's own decoding), built once
    per distinct value of one list."""
    key = parts if parts is None or isinstance(parts, str) else repr(parts)
    components = pipelines.get(key)
    if components is None:
        components = pipelines[key] = _components(parts)
    return components


_SCALARS = frozenset((str, int, float, bool, type(None)))


class _Configs:
    """Pipeline configs of one list, each distinct JSON text decoded once.

    A text seen again is handed out as a copy of its first decoding (a shallow one: for
    a dict of scalars, the usual config; anything else is decoded again), so no two
    records share a mutable value. The first record's value is what is copied: nothing
    can change it before the list is returned.
    """

    __slots__ = ("_firsts", "copiers")

    def __init__(self) -> None:
        self._firsts: dict[Any, Any] = {}
        self.copiers: dict[Any, Callable[[], Any]] = {}
        """How to hand out again each text seen twice (the loop looks here first)."""

    def get(self, text: Any) -> Any:
        if text.__class__ is not str:  # NULL, or a driver's own decoding: nothing to share
            return _json(text)
        copy = self.copiers.get(text)
        if copy is not None:
            return copy()
        first = self._firsts.get(text, _UNSEEN)
        if first is _UNSEEN:
            first = self._firsts[text] = _json(text)
            return first
        copy = self.copiers[text] = _copier(text, first)
        return copy()


_UNSEEN = object()


def _copier(text: Any, decoded: Any) -> Callable[[], Any]:
    """How to hand out ``decoded`` again, unshared: copied, as is (immutable) or decoded."""
    if decoded.__class__ is dict and all(v.__class__ in _SCALARS for v in decoded.values()):
        return decoded.copy
    if decoded.__class__ in _SCALARS:
        return lambda: decoded
    return lambda: _json(text)


# What a timestamp or status another writer stored can raise in the fast loop: text
# that is no ISO time, a number where a time belongs, a year out of range, a status
# outside the four.
_UNREADABLE_ROW = (ValueError, TypeError, AttributeError, OverflowError, KeyError)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _time_or_none(experiment_id: str, column: str, value: Any) -> datetime | None:
    try:
        return from_db_time(value)
    except _UNREADABLE_ROW:
        logger.warning(
            "experiment %s: its %s %s is not a time; shown as empty",
            experiment_id,
            column,
            _short(value),
        )
        return None


def _start_time(experiment_id: str, value: Any) -> datetime:
    """The stored start time; else the time in a UUIDv7 id; else the Unix epoch."""
    try:
        start = from_db_time(value)
        if start is not None:
            return start
    except _UNREADABLE_ROW:
        pass
    fallback = id_time(experiment_id)
    logger.warning(
        "experiment %s: its start_time %s is not a time; shown as %s",
        experiment_id,
        _short(value),
        "the time in its id" if fallback is not None else "the Unix epoch",
    )
    return _EPOCH if fallback is None else fallback


def _status(experiment_id: str, value: Any) -> ExperimentStatus:
    status = _STATUS.get(value) if isinstance(value, str) else None
    if status is None:
        logger.warning(
            "experiment %s: its status %s is not one of %s; shown as FAILED",
            experiment_id,
            _short(value),
            ", ".join(_STATUS),
        )
        return ExperimentStatus.FAILED
    return status


def _tolerant_records(rows: Sequence[Any]) -> list[Experiment]:
    """Rows as records, each value read on its own: what cannot be read is replaced.

    An unreadable ``end_time`` or ``heartbeat_at`` reads as None, an unreadable
    ``start_time`` as the time in the id (a UUIDv7) or else the Unix epoch, a status
    outside the four as FAILED, unreadable JSON as empty; each with a warning that names
    the experiment, the column and the value.
    """
    out: list[Experiment] = []
    for (
        id_,
        name,
        project,
        start,
        end,
        status,
        tags,
        config,
        parts,
        error,
        host,
        pid,
        beat,
        interval,
        files_dir,
    ) in rows:
        try:
            components = _components(parts)
            tags, config = _json(tags), _json(config)
        except _UNREADABLE:
            tags, config, components = _unreadable(id_, tags, config, parts)
        out.append(
            Experiment(
                id_,
                name,
                project,
                _start_time(id_, start),
                _time_or_none(id_, "end_time", end),
                _status(id_, status),
                tags,
                config,
                components,
                error,
                host,
                pid,
                _time_or_none(id_, "heartbeat_at", beat),
                interval if is_number(interval) else None,
                files_dir if isinstance(files_dir, str) else None,
            )
        )
    return out


# What another writer's JSON can raise: too deep to decode or to render, not JSON, or
# components that are not [name, type, stage] triples.
_UNREADABLE = (RecursionError, _TooDeep, ValueError, TypeError)
# ... and what the scanner called alone raises on JSON after whitespace (_json reads it)
_UNREADABLE_JSON = (*_UNREADABLE, StopIteration)


def _unreadable(experiment_id: str, tags: Any, config: Any, parts: Any) -> tuple[Any, Any, Any]:
    """Decode what can be; a column that cannot be read is empty, with a warning."""
    out: list[Any] = []
    for column, value, empty, decode in (
        ("tags", tags, {}, _json),
        ("pipeline_config", config, None, _json),
        ("components", parts, (), _components),
    ):
        try:
            out.append(decode(value))
        except _UNREADABLE as exc:
            logger.warning(
                "experiment %s: its %s JSON cannot be read (%s); shown as empty",
                experiment_id,
                column,
                "nested too deep" if isinstance(exc, RecursionError | _TooDeep) else exc,
            )
            out.append(empty)
    return out[0], out[1], out[2]


def is_number(value: Any) -> bool:
    """True for an int or a float (not a bool): what a latency must be."""
    return isinstance(value, int | float) and not isinstance(value, bool)
