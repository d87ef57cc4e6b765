"""Storage URIs as users write them, tracker options, and what bad ones say."""

from __future__ import annotations

import pytest

from healthchain.tracking import (
    AsyncExperimentTracker,
    ConfigurationError,
    DriverNotInstalledError,
    ExperimentTracker,
    InvalidInputError,
    StorageError,
    mask_uri,
)
from healthchain.tracking._config import resolve_storage_uri

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("written", "driver"),
    [
        ("sqlite:///experiments.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite"),
        ("postgresql://user@localhost/db", "postgresql+asyncpg"),
        ("postgres://user@localhost/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://user@localhost/db", "postgresql+asyncpg"),
    ],
)
def test_uris_map_to_async_drivers(written: str, driver: str) -> None:
    assert resolve_storage_uri(written).url.drivername == driver


@pytest.mark.parametrize(
    ("uri", "error", "says"),
    [
        ("mongodb://localhost/db", ConfigurationError, "unsupported storage_uri scheme 'mongodb'"),
        (
            "postgresql+psycopg2://u@h/db",
            ConfigurationError,
            "'postgresql+psycopg2' names a synchronous",
        ),
        ("mysql+aiomysql://u@h/db", DriverNotInstalledError, "pip install aiomysql"),
        ("experiments.db", ConfigurationError, "'experiments.db' is not a database URL"),
        ("sqlite://", ConfigurationError, "in-memory"),
        ("sqlite:///:memory:", ConfigurationError, "in-memory"),
        (None, ConfigurationError, "got None"),
        (42, ConfigurationError, "got 42"),
    ],
)
def test_bad_uris_are_refused_before_anything_opens(
    uri: object, error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=None) as info:
        AsyncExperimentTracker(uri)  # type: ignore[arg-type]
    assert says in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_driver_is_an_import_error_naming_the_extra() -> None:
    with pytest.raises(ImportError, match=r"'aiomysql' driver, which is not installed"):
        AsyncExperimentTracker("mysql+aiomysql://u@h/db")


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"project_name": ""}, "project_name must be a non-empty string, got ''"),
        ({"project_name": None}, "got None"),
        ({"heartbeat_interval": 0}, "heartbeat_interval must be a number from 0.05 to 86,400 s"),
        ({"heartbeat_interval": 1e-6}, "heartbeat_interval must be a number from 0.05 to"),
        ({"heartbeat_interval": 1e15}, "to 86,400 s, got 1000000000000000.0"),
        ({"heartbeat_interval": float("inf")}, "got inf"),
        ({"heartbeat_interval": float("nan")}, "got nan"),
        ({"outage_timeout": 0}, "outage_timeout must be a number from 0.1 to 604,800 s, got 0"),
        ({"outage_timeout": 1e300}, "outage_timeout must be a number from 0.1 to 604,800 s"),
        ({"max_queued_writes": 0}, "max_queued_writes must be an integer from 1 to 10,000,000"),
        ({"max_queued_writes": 2**70}, "got 1180591620717411303424"),
        ({"max_queued_writes": 5.0}, "max_queued_writes must be an integer"),
        ({"heartbeat_interval": True}, "got True"),
        ({"heartbeat_interval": "10"}, "got '10'"),
    ],
)
def test_bad_options_name_the_value(kwargs: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncExperimentTracker("sqlite:///x.db", **kwargs)  # type: ignore[arg-type]
    assert says in str(info.value)


def test_bad_tracker_tags_are_refused_at_construction() -> None:
    with pytest.raises(InvalidInputError, match=r"tags\['run'\]"):
        AsyncExperimentTracker("sqlite:///x.db", tags={"run": {1, 2}})


def test_passwords_are_masked_everywhere() -> None:
    uri = "postgresql://healthchain:s3cret@127.0.0.1:1/db"
    tracker = AsyncExperimentTracker(uri)
    assert "s3cret" not in repr(tracker)
    assert "***" in tracker.storage_uri
    assert mask_uri(uri) == "postgresql://healthchain:***@127.0.0.1:1/db"
    assert mask_uri("not a url") == "not a url"
    # An unreachable server (nothing listens on loopback port 1): the error is ours,
    # names the masked URL, and never the password.
    with pytest.raises(StorageError) as info:
        ExperimentTracker(uri)
    assert "127.0.0.1:1" in str(info.value)
    assert "***" in str(info.value)
    assert "s3cret" not in str(info.value)
    assert "s3cret" not in repr(info.value.__cause__)
