"""Ids by prefix: the calls of :class:`~healthchain.tracking.AsyncExperimentTracker` that
turn a short id a person typed into the whole one, and whole ids into the shortest
prefixes that still name them (as git abbreviates commits)."""

from __future__ import annotations

from collections.abc import Iterable

from . import _id_queries
from ._exceptions import ExperimentNotFoundError, InvalidInputError
from ._ids import MIN_PREFIX_LENGTH
from ._lifecycle import TrackerLifecycle
from ._settings import validate_range
from ._validation import id_list, validate_id

__all__ = ["IdCalls"]


class IdCalls(TrackerLifecycle):
    """``resolve_id`` and ``abbreviate_ids``."""

    async def resolve_id(self, prefix: str) -> str:
        """The whole id of the one experiment whose id starts with ``prefix``.

        ``prefix`` is at least 4 hex digits, in any case, with hyphens where the id has
        them or none; a whole id is accepted too. Raises :class:`ExperimentNotFoundError`
        if no id starts with it, :class:`~healthchain.tracking.AmbiguousIdError` if
        several do, and :class:`InvalidInputError` if it is too short.
        """
        if validate_id(prefix, "prefix") is None:
            raise ExperimentNotFoundError(prefix)
        backend = await self._reader()
        with self._storage_errors("resolve_id"):
            return await backend.read(lambda ex: _id_queries.resolve_id(ex, prefix))

    async def abbreviate_ids(
        self, experiment_ids: Iterable[str], min_length: int = 8
    ) -> dict[str, str]:
        """Each id's shortest prefix of at least ``min_length`` (4 to 36) characters that no
        other stored experiment's id starts with, as git abbreviates commits.

        Every prefix returned resolves with :meth:`resolve_id` until an experiment whose id
        shares it is added. An id no experiment can have maps to itself.
        """
        length = int(
            validate_range(
                "min_length",
                min_length,
                (MIN_PREFIX_LENGTH, 36),
                unit="characters",
                integer=True,
                error=InvalidInputError,
            )
        )
        given = id_list(experiment_ids)
        ids = [v for i, v in enumerate(given) if validate_id(v, f"experiment_ids[{i}]")]
        backend = await self._reader()
        with self._storage_errors("abbreviate_ids"):
            short = await backend.read(lambda ex: _id_queries.abbreviate_ids(ex, ids, length))
        return {v: short.get(v, v) for v in given}
