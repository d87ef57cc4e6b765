"""``experiment_config`` and ``service_config``, validated when ``@sandbox`` is applied."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Self

from healthchain.tracking import InvalidInputError
from healthchain.tracking._settings import DEFAULT_SETTINGS, TrackerSettings, validate_range
from healthchain.tracking._validation import validate_tags

from ._exceptions import SandboxConfigError

__all__ = ["MAX_CONCURRENCY", "ExperimentConfig", "ServiceConfig"]


def _check_keys(kind: str, given: object, cls: type[Any]) -> Mapping[str, Any]:
    if not isinstance(given, Mapping):
        raise SandboxConfigError(f"{kind} must be a dict, got {type(given).__name__}")
    valid = [f.name for f in fields(cls)]
    for key in given:
        if key in valid:
            continue
        near = difflib.get_close_matches(str(key), valid, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise SandboxConfigError(
            f"{kind} has no key {key!r}{hint} (valid keys: {', '.join(map(repr, valid))})"
        )
    return given


TIMEOUT_RANGE = (0.001, 86_400.0)
"""Seconds the client waits for one response: a millisecond to a day."""


MAX_CONCURRENCY = 256
"""Most requests the EHR client keeps in flight. Each one holds two sockets in this one
process (the client's end and the server's), so 256 take 512 file descriptors: half of
the usual 1,024 open-file limit on Linux, the rest left for the database and the saved
files. Server, client and tracker share one event loop, so more in flight only makes
every request wait longer."""


def _in_range(kind: str, key: str, value: object, bounds: tuple[float, float]) -> float:
    return validate_range(f"{kind}[{key!r}]", value, bounds, error=SandboxConfigError)


_TRACKER_KEYS = ("storage_uri", "heartbeat_interval", "outage_timeout", "max_queued_writes")


@dataclass(frozen=True, slots=True)
class ExperimentConfig:
    """Where and how the sandbox records its experiments (``experiment_config``)."""

    storage_uri: str = DEFAULT_SETTINGS.storage_uri
    """Database URL, as users write it, e.g. ``sqlite:///experiments.db``."""
    project_name: str = "healthchain"
    """Name grouping related experiments."""
    tags: dict[str, Any] | None = None
    """Tags recorded on every experiment, exactly as given."""
    heartbeat_interval: float = DEFAULT_SETTINGS.heartbeat_interval
    """Seconds between the tracker's liveness heartbeats, from 0.05 to 86,400."""
    outage_timeout: float = DEFAULT_SETTINGS.outage_timeout
    """Seconds writes are retried while storage is unavailable before they are given up
    on, loudly; the end of a run waits for its records at most this long (plus a grace).
    From 0.1 to 604,800 (a week)."""
    max_queued_writes: int = DEFAULT_SETTINGS.max_queued_writes
    """Writes buffered in memory during an outage; more are refused, loudly. At most
    10,000,000."""

    @classmethod
    def from_mapping(cls, config: object) -> Self:
        """Validate ``config``: an unknown key or a bad value names the key."""
        kind = "experiment_config"
        values = dict(_check_keys(kind, config, cls))
        if "project_name" in values and (
            not isinstance(values["project_name"], str) or not values["project_name"].strip()
        ):
            raise SandboxConfigError(
                f"{kind}['project_name'] must be a non-empty string, got {values['project_name']!r}"
            )
        tags = values.get("tags")
        if tags is not None:
            if not isinstance(tags, Mapping):
                raise SandboxConfigError(
                    f"{kind}['tags'] must be a dict of string keys, got {type(tags).__name__}"
                )
            for key in tags:
                if not isinstance(key, str):
                    raise SandboxConfigError(f"{kind}['tags'] keys must be strings, got {key!r}")
            try:  # the tracker's own rules (JSON, depth, size), checked when decorating
                validate_tags(tags, what=f"{kind}['tags']")
            except InvalidInputError as exc:
                raise SandboxConfigError(str(exc)) from None
            values["tags"] = dict(tags)
        # The tracker's own names, defaults and ranges, named as the user wrote them.
        settings = TrackerSettings.validated(
            {k: v for k, v in values.items() if k in _TRACKER_KEYS},
            label=lambda key: f"{kind}[{key!r}]",
            error=SandboxConfigError,
        )
        values.update({key: getattr(settings, key) for key in _TRACKER_KEYS if key in values})
        return cls(**values)

    def __repr__(self) -> str:
        from healthchain.tracking import mask_uri  # not at import: the sandbox starts lean

        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["storage_uri"] = mask_uri(self.storage_uri)
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    @property
    def settings(self) -> TrackerSettings:
        """The tracker settings this config holds."""
        return TrackerSettings(
            self.storage_uri, self.heartbeat_interval, self.outage_timeout, self.max_queued_writes
        )

    def tracker_options(self) -> dict[str, Any]:
        """Keyword arguments for ``ExperimentTracker``/``AsyncExperimentTracker``."""
        return {
            "storage_uri": self.storage_uri,
            "project_name": self.project_name,
            "tags": self.tags,
            "heartbeat_interval": self.heartbeat_interval,
            "outage_timeout": self.outage_timeout,
            "max_queued_writes": self.max_queued_writes,
        }


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """Where the service listens and how the EHR client calls it (``service_config``)."""

    host: str = "127.0.0.1"
    """Interface the service listens on."""
    port: int = 8000
    """TCP port; 0 picks a free one."""
    timeout: float = 30.0
    """Seconds the client waits for each call of the ``@ehr`` method and for each whole
    response before the request fails. A response that comes later (a blocking call held
    up the event loop) is a timeout too; a sync method still running is abandoned.
    From 0.001 to 86,400."""
    max_concurrency: int = 1
    """Requests the client keeps in flight at once, from 1 to 256. One keeps the event
    loop's steps short (the server, the client and the tracker share it); raise it for
    handlers that mostly wait, such as calls to a remote model. Each request in flight
    holds two sockets in this process, hence the bound."""
    cors_origins: tuple[str, ...] = ("*",)
    """Browser origins allowed to call the service (CORS), e.g.
    ``["https://sandbox.cds-hooks.org"]``; ``*`` allows any."""
    jwt: bool = False
    """Require a signed JWT bearer token on every service call (CDS Hooks "Trusting CDS
    Clients"): the sandbox generates a key pair, its EHR client signs, the service verifies."""

    @classmethod
    def from_mapping(cls, config: object) -> Self:
        """Validate ``config``: an unknown key or a bad value names the key."""
        kind = "service_config"
        values = dict(_check_keys(kind, config, cls))
        if "host" in values and (not isinstance(values["host"], str) or not values["host"]):
            raise SandboxConfigError(
                f"{kind}['host'] must be a host name or address, got {values['host']!r}"
            )
        port = values.get("port", 0)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise SandboxConfigError(
                f"{kind}['port'] must be an integer from 0 to 65535 (0 picks a free port), "
                f"got {port!r}"
            )
        if "timeout" in values:
            values["timeout"] = _in_range(kind, "timeout", values["timeout"], TIMEOUT_RANGE)
        if "max_concurrency" in values:
            values["max_concurrency"] = int(
                validate_range(
                    f"{kind}['max_concurrency']",
                    values["max_concurrency"],
                    (1, MAX_CONCURRENCY),
                    unit="requests",
                    integer=True,
                    error=SandboxConfigError,
                )
            )
        if "cors_origins" in values:
            origins = values["cors_origins"]
            if (
                isinstance(origins, str)
                or not isinstance(origins, list | tuple)
                or not origins
                or not all(isinstance(origin, str) and origin for origin in origins)
            ):
                raise SandboxConfigError(
                    f"{kind}['cors_origins'] must be a list of origins such as "
                    f"['https://sandbox.cds-hooks.org'] (or ['*'] for any), got {origins!r}"
                )
            values["cors_origins"] = tuple(origins)
        if "jwt" in values and not isinstance(values["jwt"], bool):
            raise SandboxConfigError(f"{kind}['jwt'] must be True or False, got {values['jwt']!r}")
        return cls(**values)
