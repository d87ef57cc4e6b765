"""``BaseUseCase``: the base every use case derives from."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

if TYPE_CHECKING:
    from types import TracebackType

    from pydantic import BaseModel
    from starlette.types import ASGIApp

    from healthchain.sandbox import SandboxResult
    from healthchain.tracking import ExperimentTracker

    from ._service import Service, TokenVerifier

__all__ = ["BaseUseCase"]


class BaseUseCase:
    """Base of the use cases a sandbox can run; subclass a concrete one such as
    :class:`~healthchain.use_cases.ClinicalDecisionSupport`.

    Decorate the subclass with ``@healthchain.sandbox`` to run it against synthetic EHR
    traffic with :meth:`start_sandbox`. Instances are context managers: leaving the
    ``with`` block (or :meth:`close`) closes the experiment tracker.
    """

    supported_workflows: ClassVar[frozenset[str]] = frozenset()
    """Workflows an ``@ehr`` method of this use case may name."""

    experiment_tracker: ExperimentTracker | None = None
    """The sync tracker ``@sandbox(experiment_config=...)`` opens; None without tracking."""

    __healthchain_tracker__: ClassVar[Callable[[], ExperimentTracker | None] | None] = None
    """Opens each new instance's :attr:`experiment_tracker` (None: no tracker); set by
    ``@healthchain.sandbox``, which also gives the class its ``start_sandbox``."""

    _finalizer: weakref.finalize[Any, Any] | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        """Open the experiment tracker before the subclass's ``__init__`` body runs."""
        self = super().__new__(cls)
        open_tracker = cls.__healthchain_tracker__
        tracker = open_tracker() if open_tracker is not None else None
        self.experiment_tracker = tracker
        if tracker is not None:
            # Closed with the instance, or at interpreter exit when it never was.
            self._finalizer = weakref.finalize(self, tracker.close)
        return self

    # The service: what a concrete use case defines.

    def build_app(
        self,
        service: Service,
        *,
        cors_origins: Sequence[str] = ("*",),
        verifier: TokenVerifier | None = None,
    ) -> ASGIApp:
        """Return the ASGI app serving ``service``: browsers from ``cors_origins`` may call
        it, and with a ``verifier`` every call needs a valid bearer token."""
        raise NotImplementedError(
            f"{type(self).__name__} defines no service; derive it from a concrete use case "
            "such as healthchain.use_cases.ClinicalDecisionSupport"
        )

    def service_path(self, service_id: str) -> str:
        """The URL path the EHR client posts a request for ``service_id`` to."""
        raise NotImplementedError

    def default_prefetch(self, workflow: str) -> Mapping[str, str]:
        """The prefetch templates a service for ``workflow`` advertises."""
        return {}

    def make_request(
        self, data: Any, *, workflow: str, prefetch: Mapping[str, str] | None = None
    ) -> BaseModel:
        """Turn what the ``@ehr`` method returned into the request the client sends,
        answering the service's ``prefetch`` templates from it."""
        raise NotImplementedError

    def parse_response(self, content: bytes) -> BaseModel:
        """Validate a service's response body; raises pydantic's ``ValidationError``."""
        raise NotImplementedError

    # Running it: ``@healthchain.sandbox`` installs the real methods on the class.

    if TYPE_CHECKING:

        def start_sandbox(
            self, service_id: str | None = None, save_data: bool = True, save_dir: str = ...
        ) -> SandboxResult:
            """Run the sandbox, blocking (the method ``@healthchain.sandbox`` installs).

            One call is one experiment: RUNNING before the first request, then
            COMPLETED, FAILED or INTERRUPTED (Ctrl-C, SIGTERM).

            Args:
                service_id: The service's id in its URL; default: the ``@api`` method's name.
                save_data: Save each request and response as JSON. Default True.
                save_dir: Folder that gets the run's own folder, ``<experiment id>/``.
                    Default ``./output/``.

            Raises:
                SandboxDefinitionError: No ``@api`` or ``@ehr`` method.
                SandboxConfigError: ``save_dir`` cannot be written, or a bad ``service_id``.
                ServiceStartError: The service could not listen (e.g. the port is taken).
            """

        async def astart_sandbox(
            self, service_id: str | None = None, save_data: bool = True, save_dir: str = ...
        ) -> SandboxResult:
            """Run the sandbox on the running event loop; as :meth:`start_sandbox`.

            Cancellation interrupts the run (INTERRUPTED). With tracking on, build the
            instance before the loop starts or in a worker thread.
            """

    else:

        def start_sandbox(self, *args: Any, **kwargs: Any) -> Any:
            """Run the sandbox: available once the class is decorated with ``@sandbox``."""
            raise _not_decorated(self)

        async def astart_sandbox(self, *args: Any, **kwargs: Any) -> Any:
            """Run the sandbox: available once the class is decorated with ``@sandbox``."""
            raise _not_decorated(self)

    # Lifecycle.

    def close(self) -> None:
        """Close the experiment tracker, if any; calling it again does nothing."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _not_decorated(use_case: BaseUseCase) -> TypeError:
    name = type(use_case).__name__
    return TypeError(
        f"{name} is not decorated with @sandbox; add @healthchain.sandbox above "
        f"'class {name}' to run it in the sandbox"
    )
