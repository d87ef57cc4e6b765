"""healthchain: an async-first experiment tracker for clinical AI services.

Everything a script or a notebook uses is importable from here: the sandbox decorators
(``sandbox``, ``api``, ``ehr``, ``feedback``), the trackers and the use-case base class.
"""

from __future__ import annotations

# ``healthchain.sandbox`` is also the subpackage's name: binding the decorator here is
# deliberate (``hc.sandbox`` is the decorator; ``import healthchain.sandbox`` still
# imports the package through sys.modules).
from .sandbox import api, ehr, feedback, sandbox
from .tracking import AsyncExperimentTracker, ExperimentStatus, ExperimentTracker
from .use_cases import BaseUseCase

__all__ = [
    "AsyncExperimentTracker",
    "BaseUseCase",
    "ExperimentStatus",
    "ExperimentTracker",
    "api",
    "ehr",
    "feedback",
    "sandbox",
]
