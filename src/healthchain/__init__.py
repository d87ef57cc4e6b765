"""healthchain: an async-first experiment tracker for clinical AI services.

Everything a script or a notebook uses is importable from here: the sandbox decorators
(``sandbox``, ``api``, ``ehr``, ``feedback``, ``score``), the trackers and the use-case base class.
They are imported on first use, so ``import healthchain.cli`` or ``healthchain.tracking``
loads neither the sandbox nor the use cases. ``healthchain.__version__`` is the installed
distribution's version, from its metadata (a dunder, so not in ``__all__``).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sandbox import api, ehr, feedback, sandbox, score
    from .tracking import AsyncExperimentTracker, ExperimentStatus, ExperimentTracker, MetricPoint
    from .use_cases import BaseUseCase

    __version__: str

__all__ = [
    "AsyncExperimentTracker",
    "BaseUseCase",
    "ExperimentStatus",
    "ExperimentTracker",
    "MetricPoint",
    "api",
    "ehr",
    "feedback",
    "sandbox",
    "score",
]

_HOMES = {
    "AsyncExperimentTracker": ".tracking",
    "ExperimentStatus": ".tracking",
    "ExperimentTracker": ".tracking",
    "MetricPoint": ".tracking",
    "BaseUseCase": ".use_cases",
    "api": ".sandbox",
    "ehr": ".sandbox",
    "feedback": ".sandbox",
    "sandbox": ".sandbox",
    "score": ".sandbox",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from ._version import package_version

        globals()[name] = version = package_version()
        return version
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "__version__"})


class _Package(types.ModuleType):
    # ``healthchain.sandbox`` is also the subpackage's name, and importing a subpackage
    # binds it on its parent: ``hc.sandbox`` stays the decorator whichever is imported
    # first (``import healthchain.sandbox`` still imports the package via sys.modules).
    def __setattr__(self, name: str, value: Any) -> None:
        if name == "sandbox" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
