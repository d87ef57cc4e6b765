"""healthchain: an async-first experiment tracker for clinical AI services.

Everything a script or a notebook uses is importable from here.
"""

from __future__ import annotations

from .tracking import AsyncExperimentTracker, ExperimentStatus, ExperimentTracker

__all__ = ["AsyncExperimentTracker", "ExperimentStatus", "ExperimentTracker"]
