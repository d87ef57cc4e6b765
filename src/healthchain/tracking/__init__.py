"""Experiment tracking: records runs in SQL without blocking the event loop.

``AsyncExperimentTracker`` is awaitable; ``ExperimentTracker`` is its synchronous facade
for scripts and notebooks. Both store experiments, their tags, pipeline components and
per-request records in SQLite (default) or any SQLAlchemy async database.
"""

from __future__ import annotations

from ._config import mask_uri
from ._exceptions import (
    ConfigurationError,
    DriverNotInstalledError,
    ExperimentNotFoundError,
    ExperimentStateError,
    ExtraNotInstalledError,
    InvalidFilterError,
    InvalidInputError,
    StorageError,
    TrackerClosedError,
    TrackerError,
)
from ._migrate import upgrade_database
from ._records import (
    Component,
    Experiment,
    ExperimentStatus,
    MetricPoint,
    RequestRecord,
    RequestStats,
    request_failed,
)
from ._settings import DEFAULT_STORAGE_URI
from ._sync import ExperimentTracker
from ._tracker import AsyncExperimentTracker

__all__ = [
    "DEFAULT_STORAGE_URI",
    "AsyncExperimentTracker",
    "Component",
    "ConfigurationError",
    "DriverNotInstalledError",
    "Experiment",
    "ExperimentNotFoundError",
    "ExperimentStateError",
    "ExperimentStatus",
    "ExperimentTracker",
    "ExtraNotInstalledError",
    "InvalidFilterError",
    "InvalidInputError",
    "MetricPoint",
    "RequestRecord",
    "RequestStats",
    "StorageError",
    "TrackerClosedError",
    "TrackerError",
    "mask_uri",
    "request_failed",
    "upgrade_database",
]
