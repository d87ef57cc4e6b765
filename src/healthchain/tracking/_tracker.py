"""``AsyncExperimentTracker``: the awaitable tracker every other interface is built on."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from . import _listing, _queries
from ._config import validate_project_name
from ._dataframe import experiments_to_dataframe
from ._exceptions import (
    ExperimentNotFoundError,
    InvalidInputError,
    TrackerError,
    describe,
)
from ._files_dir import FilesDirOp, resolve_files_dir, validate_files_dir
from ._id_calls import IdCalls
from ._ids import new_id
from ._lifecycle import PROCESS_EXITED
from ._metric_calls import MetricCalls
from ._operations import DeleteOp, ReapOp, StartOp
from ._records import Experiment, ExperimentStatus
from ._request_calls import RequestCalls
from ._search import validate_filters, validate_order_by
from ._settings import DEFAULT_SETTINGS, TrackerSettings
from ._update_ops import EndOp
from ._validation import (
    check_storable,
    id_list,
    parse_status,
    printable,
    utcnow,
    validate_components,
    validate_id,
    validate_pipeline_config,
    validate_row_count,
    validate_tags,
)

if TYPE_CHECKING:
    import pandas

__all__ = ["AsyncExperimentTracker"]

logger = logging.getLogger("healthchain.tracking")


class AsyncExperimentTracker(MetricCalls, RequestCalls, IdCalls):
    """Records experiments in a SQL database without blocking the event loop.

    The tracker binds to the event loop it is first used on. Use it as
    ``async with AsyncExperimentTracker(...) as tracker:`` or call :meth:`aclose`.

    Args:
        storage_uri: A SQLAlchemy URL as users write it, mapped to the async driver:
            ``sqlite:///experiments.db`` (default) or ``postgresql://user@host/db``
            (the ``postgres`` extra).
        project_name: Non-empty name new experiments are grouped under. Default
            ``"healthchain"``.
        tags: String keys to JSON values, added to every experiment it starts.
        heartbeat_interval: Seconds between heartbeats of a RUNNING experiment, so
            :meth:`reap_stale` can tell a live run from a dead one; 0.05 to 86,400,
            default 10.
        outage_timeout: Seconds writes are retried while storage is unreachable; 0.1
            to 604,800, default 60. Past it they fail with :class:`StorageError`,
            logged with what was lost.
        max_queued_writes: Writes waiting during an outage; 1 to 10,000,000, default
            100,000. More fail as past ``outage_timeout``.
        read_only: Open for reading only (list, get, stats), as the dashboard does:
            nothing is written or migrated (a schema that is behind is a
            :class:`StorageError` saying to run ``healthchain db upgrade``), and every
            write method raises :class:`StorageError`. Default False.

    Raises:
        ConfigurationError: An option of the wrong type or outside its range, an empty
            ``project_name``, or a storage URI whose scheme is unsupported
            (:class:`DriverNotInstalledError` when its driver is not installed; the
            driver is imported when the tracker opens, and one that is installed but
            fails to import raises :class:`DriverNotInstalledError` then).
        InvalidInputError: Bad ``tags``, the key named.
    """

    def __init__(
        self,
        storage_uri: str = DEFAULT_SETTINGS.storage_uri,
        project_name: str = "healthchain",
        tags: Mapping[str, Any] | None = None,
        heartbeat_interval: float = DEFAULT_SETTINGS.heartbeat_interval,
        *,
        outage_timeout: float = DEFAULT_SETTINGS.outage_timeout,
        max_queued_writes: int = DEFAULT_SETTINGS.max_queued_writes,
        read_only: bool = DEFAULT_SETTINGS.read_only,
    ) -> None:
        super().__init__(
            TrackerSettings(
                storage_uri, heartbeat_interval, outage_timeout, max_queued_writes, read_only
            )
        )
        self._project = validate_project_name(project_name)
        self._tags, self._tag_texts = validate_tags(tags)

    # --- properties -----------------------------------------------------------------

    @property
    def storage_uri(self) -> str:
        """The storage URL with any password masked."""
        return self._storage.display

    @property
    def project_name(self) -> str:
        """The project new experiments are recorded under."""
        return self._project

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between two heartbeats of a running experiment."""
        return self._heartbeat_interval

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._opened else "unopened"
        if self._read_only:
            state += " read-only"
        return (
            f"<{type(self).__name__} {self._storage.display!r} project={self._project!r} {state}>"
        )

    # --- writes ---------------------------------------------------------------------

    async def start_experiment(
        self,
        name: str | None = None,
        *,
        tags: Mapping[str, Any] | None = None,
        pipeline_config: Mapping[str, Any] | None = None,
        components: Iterable[Mapping[str, Any]] | None = None,
    ) -> str:
        """Record a new RUNNING experiment and return its id (a UUIDv7 string).

        Args:
            name: Default: ``"<project>-<last 8 characters of the id>"``.
            tags: String keys to JSON values, merged over the tracker's own; a key plus
                its JSON value take at most 2,048 bytes of UTF-8.
            pipeline_config: JSON-serialisable mapping, stored as given.
            components: The ordered pipeline, each a ``{"name", "type", "stage"}``
                mapping, stored with its 0-based position.

        Raises:
            InvalidInputError: A bad name, tag, config or component (nested over 64
                levels, not JSON, a NUL character), named; nothing is written.
            StorageError: The database could not be written.
            TrackerClosedError: The tracker was closed.
        """
        if name is not None and (not isinstance(name, str) or not name):
            raise InvalidInputError(f"name must be a non-empty string or None, got {name!r}")
        if name is not None:
            check_storable(name, "name")
        user_tags, user_texts = validate_tags(tags)
        config_text = validate_pipeline_config(pipeline_config)
        parts = validate_components(components)
        writer = await self._ready()

        experiment_id, started = new_id()
        op = StartOp.of(
            experiment_id,
            name or f"{self._project}-{experiment_id[-8:]}",
            self._project,
            self._codec.time(started),
            {**self._tags, **user_tags} if self._tags else user_tags,
            {**self._tag_texts, **user_texts} if self._tags else user_texts,
            config_text,
            parts,
            self._heartbeat_interval,
        )
        # Open from now: a close while the start is being written ends it too, after it.
        self._running.add(experiment_id)
        try:
            with self._storage_errors("start_experiment"):
                await writer.submit(op)
        except BaseException:
            self._running.discard(experiment_id)
            raise
        self._steps.started(experiment_id)
        return experiment_id

    async def end_experiment(
        self,
        experiment_id: str,
        status: ExperimentStatus | str = ExperimentStatus.COMPLETED,
        *,
        error: str | BaseException | None = None,
    ) -> None:
        """Set the final status and end time of a RUNNING experiment.

        Args:
            experiment_id: The id :meth:`start_experiment` returned.
            status: COMPLETED (default), FAILED or INTERRUPTED, or its name.
            error: Text or an exception, recorded as the experiment's error.

        Raises:
            ExperimentNotFoundError: No experiment has this id.
            ExperimentStateError: It already ended; it is left as it was.
            InvalidInputError: ``status`` is not a final status.
        """
        final = parse_status(status)
        if not final.is_final:
            raise InvalidInputError(
                f"status {final.value!r} is not a final status; "
                "end an experiment as COMPLETED, FAILED or INTERRUPTED"
            )
        if validate_id(experiment_id) is None:
            raise ExperimentNotFoundError(experiment_id)
        if isinstance(error, BaseException):
            error = describe(error)
        elif error is not None and not isinstance(error, str):
            raise InvalidInputError(f"error must be a string or an exception, got {error!r}")
        error = printable(error)  # an error message must never stop the end being recorded
        writer = await self._ready()
        op = EndOp.of(experiment_id, final, self._codec.time(utcnow()), error)
        try:
            with self._storage_errors("end_experiment"):
                await writer.submit(op)
        finally:
            self._running.discard(experiment_id)

    @asynccontextmanager
    async def track(
        self,
        name: str | None = None,
        *,
        tags: Mapping[str, Any] | None = None,
        pipeline_config: Mapping[str, Any] | None = None,
        components: Iterable[Mapping[str, Any]] | None = None,
    ) -> AsyncIterator[str]:
        """Run the body as one experiment, yielding its id; arguments as for
        :meth:`start_experiment`.

        COMPLETED on normal exit; FAILED with the error text if the body raises;
        INTERRUPTED on cancellation, KeyboardInterrupt, ``sys.exit()`` or a generator
        holding the block being closed. The exception propagates. If the tracker is closed
        while the block is open, the close records it INTERRUPTED.
        """
        experiment_id = await self.start_experiment(
            name, tags=tags, pipeline_config=pipeline_config, components=components
        )
        try:
            yield experiment_id
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit) as exc:
            if experiment_id not in self._closed_over:
                error = describe(exc)
                if isinstance(exc, SystemExit):
                    error = f"{PROCESS_EXITED} ({error})"
                await self._end_quietly(experiment_id, ExperimentStatus.INTERRUPTED, error)
            raise
        except BaseException as exc:
            if experiment_id not in self._closed_over:
                await self._end_quietly(experiment_id, ExperimentStatus.FAILED, describe(exc))
            raise
        else:
            if experiment_id not in self._closed_over:
                await self.end_experiment(experiment_id)

    async def _end_quietly(self, experiment_id: str, status: ExperimentStatus, error: str) -> None:
        # Shielded, so a second cancellation cannot lose the final status; a storage error
        # is logged rather than raised over the user's own exception.
        try:
            await asyncio.shield(self.end_experiment(experiment_id, status, error=error))
        except TrackerError as exc:
            logger.error("could not record %s for experiment %s: %s", status, experiment_id, exc)

    async def set_files_dir(self, experiment_id: str, files_dir: str | os.PathLike[str]) -> None:
        """Record the folder holding the files this run saved (``Experiment.files_dir``).

        Stored absolute with symlinks resolved, so it names the same folder whichever
        directory it is read from; setting it again replaces it. The folder need not exist.
        """
        if validate_id(experiment_id) is None:
            raise ExperimentNotFoundError(experiment_id)
        checked = validate_files_dir(files_dir)
        resolved = await anyio.to_thread.run_sync(resolve_files_dir, checked)
        writer = await self._ready()
        with self._storage_errors("set_files_dir"):
            await writer.submit(FilesDirOp.of(experiment_id, resolved))

    async def reap_stale(self) -> list[str]:
        """Mark RUNNING experiments silent for over 3 heartbeat intervals as FAILED.

        Each row is judged by the interval of the process that wrote it (clamped to 0.05
        to 86,400 s), and never fails because of another row's values. The end time
        recorded is the run's last heartbeat. Returns the ids.
        """
        writer = await self._ready()
        with self._storage_errors("reap_stale"):
            reaped: list[str] = await writer.submit(ReapOp(utcnow(), self._codec))
        return reaped

    async def delete_experiments(self, experiment_ids: Iterable[str]) -> int:
        """Delete experiments with their tags, components and requests; returns how many."""
        checked = [
            validate_id(v, f"experiment_ids[{i}]") for i, v in enumerate(id_list(experiment_ids))
        ]
        ids = [i for i in checked if i is not None]  # the others name no experiment
        writer = await self._ready()
        with self._storage_errors("delete_experiments"):
            deleted: int = await writer.submit(DeleteOp(ids))
        return deleted

    # --- reads ----------------------------------------------------------------------

    async def get_experiment(self, experiment_id: str) -> Experiment:
        """The experiment with its components, metrics and params.

        Raises:
            ExperimentNotFoundError: No experiment has this id.
        """
        if validate_id(experiment_id) is None:
            raise ExperimentNotFoundError(experiment_id)
        return await self._read_experiment(
            experiment_id, "get_experiment", lambda ex: _queries.get_experiment(ex, experiment_id)
        )

    async def list_experiments(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        order_by: str | Sequence[str] | None = None,
    ) -> list[Experiment]:
        """Experiments newest first (or by ``order_by``), across all projects unless filtered.

        Filter keys: ``tags`` and ``params`` (dicts; every pair must match), ``status``
        (one or several), ``name`` and ``project`` (exact), ``metrics`` (``{"acc": (">",
        0.5)}``, with ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` on the latest value; a NaN
        value matches none). An unknown key raises ``InvalidFilterError``, as do more than
        32 tags, metrics or params. ``order_by`` is ``"start_time"``, ``"name"``,
        ``"duration"`` or ``"metrics.<key>"``, each with a leading ``-`` for descending, or
        a list of up to 8 of these; NaN comes after every number and a missing metric (or
        duration, while running) last, in both directions; ties stay newest first.
        ``limit`` and ``offset`` range from 0 to 2**63 - 1.

        Raises:
            InvalidFilterError: An unknown filter key or ``order_by`` key, or a bad value.
            InvalidInputError: ``limit`` or ``offset`` out of range.
        """
        valid = validate_filters(filters)
        order = validate_order_by(order_by)
        limit = validate_row_count(limit, "limit", optional=True)
        offset = validate_row_count(offset, "offset") or 0
        query, params = _listing.build_list_query(valid, limit, offset, order)
        backend = await self._reader()
        with self._storage_errors("list_experiments"):
            return await backend.read(lambda ex: _queries.list_experiments(ex, query, params))

    async def to_dataframe(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        order_by: str | Sequence[str] | None = None,
    ) -> pandas.DataFrame:
        """``list_experiments(...)`` as a pandas DataFrame (``pip install 'healthchain[pandas]'``).

        One row per experiment, one ``metrics.<key>``, ``params.<key>`` and ``tags.<key>``
        column per key; built in a worker thread, so a large frame never stalls the loop.
        """
        experiments = await self.list_experiments(
            filters, limit=limit, offset=offset, order_by=order_by
        )
        return await anyio.to_thread.run_sync(experiments_to_dataframe, experiments)
