"""``RunOptions``: the options of one ``start_sandbox`` call, checked once at the entry."""

from __future__ import annotations

from dataclasses import dataclass

from ._exceptions import SandboxConfigError

__all__ = ["DEFAULT_SAVE_DIR", "RunOptions"]

DEFAULT_SAVE_DIR = "./output/"
"""Where a run saves its requests and responses unless told otherwise."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What ``start_sandbox``/``astart_sandbox`` were asked for, validated when built."""

    service_id: str | None
    """The service's id in its endpoint path; None: the ``@api`` handler's name."""
    save_data: bool
    """Save each request and response as JSON under :attr:`save_dir`."""
    save_dir: str
    """The folder the run's own folder of saved requests is created in."""

    def __post_init__(self) -> None:
        service_id = self.service_id
        if service_id is not None and (not isinstance(service_id, str) or not service_id):
            raise SandboxConfigError(f"service_id must be a non-empty string, got {service_id!r}")
