"""One home for the trackers' options: ``TrackerSettings``, and trackers that cannot drift."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from healthchain.sandbox import ExperimentConfig, SandboxConfigError
from healthchain.tracking import AsyncExperimentTracker, ConfigurationError, ExperimentTracker
from healthchain.tracking._settings import DEFAULT_SETTINGS, TrackerSettings

# What only one of the two has: how it is closed, and the facade's way into its loop.
_LIFECYCLE = {"aclose", "close", "portal", "async_tracker"}


def _signature(member: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(member).parameters.values()]


def test_both_trackers_have_the_same_public_members_and_signatures() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")} - _LIFECYCLE

    assert public(AsyncExperimentTracker) == public(ExperimentTracker)
    for name in sorted(public(AsyncExperimentTracker) | {"__init__"}):
        ours, theirs = getattr(AsyncExperimentTracker, name), getattr(ExperimentTracker, name)
        assert isinstance(ours, property) == isinstance(theirs, property), name
        if callable(ours):
            assert _signature(ours) == _signature(theirs), name


def test_the_trackers_defaults_are_the_settings_defaults() -> None:
    parameters = inspect.signature(AsyncExperimentTracker).parameters
    for field in dataclasses.fields(TrackerSettings):
        assert parameters[field.name].default == getattr(DEFAULT_SETTINGS, field.name)


def test_the_sandbox_experiment_config_takes_the_settings_defaults() -> None:
    config = ExperimentConfig()
    assert config.settings == DEFAULT_SETTINGS
    assert ExperimentConfig.from_mapping({"heartbeat_interval": 2}).settings == (
        dataclasses.replace(DEFAULT_SETTINGS, heartbeat_interval=2.0)
    )


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("heartbeat_interval", 0.01, "from 0.05 to 86,400 s, got 0.01"),
        ("outage_timeout", float("nan"), "from 0.1 to 604,800 s, got nan"),
        ("max_queued_writes", 2.5, "an integer from 1 to 10,000,000, got 2.5"),
        ("read_only", "yes", "must be True or False, got 'yes'"),
        ("storage_uri", b"sqlite:///x.db", "must be a database URL such as"),
    ],
)
def test_a_bad_setting_is_named_alike_by_the_tracker_and_the_sandbox(
    option: str, value: object, says: str
) -> None:
    with pytest.raises(ConfigurationError, match=f"^{option} must be") as info:
        TrackerSettings(**{option: value})
    assert says in str(info.value)
    if option != "read_only":  # not a sandbox option
        with pytest.raises(SandboxConfigError) as raised:
            ExperimentConfig.from_mapping({option: value})
        assert (
            str(raised.value) == f"experiment_config[{option!r}]" + str(info.value)[len(option) :]
        )


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_SETTINGS.outage_timeout = 1.0  # type: ignore[misc]
