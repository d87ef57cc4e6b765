"""``start_sandbox`` and ``astart_sandbox``: what ``@sandbox`` gives a use case class.

The use case knows nothing of the sandbox (the sandbox sits above it): ``@sandbox``
installs these methods and the tracker opener on the class it decorates. This module
stays light; the run's machinery (server, client, clinical models) loads on first run.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from healthchain.tracking import ExperimentTracker
from healthchain.use_cases import BaseUseCase

from ._config import ExperimentConfig, ServiceConfig
from ._options import DEFAULT_SAVE_DIR, RunOptions

if TYPE_CHECKING:
    from ._result import SandboxResult

__all__ = ["SandboxSpec", "astart_sandbox", "install", "start_sandbox"]

_SPEC = "__healthchain_sandbox__"


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    """What ``@sandbox`` was given for a class: its validated options."""

    experiment: ExperimentConfig | None
    """Where runs are recorded; None: tracking is off."""
    service: ServiceConfig
    """Where the service listens and how the EHR client calls it."""


def install(cls: type[BaseUseCase], spec: SandboxSpec) -> None:
    """Make ``cls`` runnable: its sandbox options, entry points and tracker opener."""
    setattr(cls, _SPEC, spec)
    cls.__healthchain_tracker__ = functools.partial(_open_tracker, spec.experiment)
    setattr(cls, "start_sandbox", start_sandbox)  # noqa: B010 - replaces the undecorated stub
    setattr(cls, "astart_sandbox", astart_sandbox)  # noqa: B010


def _open_tracker(config: ExperimentConfig | None) -> ExperimentTracker | None:
    # Called as an instance is created, so the run's modules load here, never on the
    # event loop that astart_sandbox runs on.
    from . import _runner  # noqa: F401

    return ExperimentTracker(**config.tracker_options()) if config is not None else None


def _spec(use_case: BaseUseCase) -> SandboxSpec:
    return cast(SandboxSpec, getattr(type(use_case), _SPEC))


def start_sandbox(
    self: BaseUseCase,
    service_id: str | None = None,
    save_data: bool = True,
    save_dir: str = DEFAULT_SAVE_DIR,
) -> SandboxResult:
    """Serve the ``@api`` handler and send it the ``@ehr`` method's requests; blocks.

    One call is one experiment, recorded RUNNING before the first request and then
    COMPLETED, FAILED or INTERRUPTED (Ctrl-C, SIGTERM). Returns a
    ``healthchain.sandbox.SandboxResult`` with the experiment id and the responses.
    Works from scripts and from a thread already running an event loop (a notebook).
    With ``save_data``, each request and response is saved in the run's own folder,
    ``<save_dir>/<experiment id>/``, recorded with the experiment as its ``files_dir``.
    ``save_dir`` must be writable (checked before the run starts); a file that cannot be
    written during the run (a full disk) fails it, and only whole files are left.

    Args:
        service_id: The CDS service id in its URL; default: the ``@api`` handler's name.
        save_data: Save each request and response as JSON. Default True.
        save_dir: Folder that gets the run's own folder of files. Default ``./output/``.

    Raises:
        SandboxDefinitionError: The use case lacks an ``@api`` or ``@ehr`` method (before
            any row is written).
        SandboxConfigError: ``save_dir`` cannot be written, or a bad ``service_id``.
        ServiceStartError: The service could not listen (e.g. the port is taken).
    """
    options = RunOptions(service_id, save_data, save_dir)
    from ._runner import start

    return start(self, _spec(self), options)


async def astart_sandbox(
    self: BaseUseCase,
    service_id: str | None = None,
    save_data: bool = True,
    save_dir: str = DEFAULT_SAVE_DIR,
) -> SandboxResult:
    """Like :meth:`start_sandbox`, on the running event loop (cancellation interrupts it).

    With tracking on, build the instance before the loop starts or in a worker
    thread (``await anyio.to_thread.run_sync(MyUseCase)``): opening its sync tracker
    waits for the tracker's thread.
    """
    options = RunOptions(service_id, save_data, save_dir)
    from ._runner import astart

    return await astart(self, _spec(self), options)
