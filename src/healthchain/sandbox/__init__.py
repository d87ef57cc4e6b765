"""The sandbox: run a use case's service against synthetic EHR traffic, one run = one experiment.

::

    import healthchain as hc
    from healthchain.use_cases import ClinicalDecisionSupport

    @hc.sandbox(experiment_config={"project_name": "demo"}, service_config={"port": 0})
    class MyCDS(ClinicalDecisionSupport):
        @hc.ehr(workflow="patient-view", num=10)
        def load_data(self) -> CdsFhirData: ...

        @hc.api
        async def my_service(self, request: CDSRequest) -> CDSResponse: ...

        @hc.feedback  # optional: the EHR's outcome for each card
        async def on_feedback(self, feedback: CDSFeedback) -> None: ...

        @hc.score  # optional, any number: scores each valid response
        def has_cards(self, request: CDSRequest, response: CDSResponse) -> float: ...

    result = MyCDS().start_sandbox()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._config import ExperimentConfig, ServiceConfig
from ._decorators import api, ehr, feedback, sandbox, score
from ._exceptions import (
    SandboxConfigError,
    SandboxDefinitionError,
    SandboxError,
    SandboxRunError,
    ServiceStartError,
)

if TYPE_CHECKING:
    from ._client import RequestOutcome
    from ._result import SandboxResult

__all__ = [
    "ExperimentConfig",
    "RequestOutcome",
    "SandboxConfigError",
    "SandboxDefinitionError",
    "SandboxError",
    "SandboxResult",
    "SandboxRunError",
    "ServiceConfig",
    "ServiceStartError",
    "api",
    "ehr",
    "feedback",
    "sandbox",
    "score",
]


def __getattr__(name: str) -> Any:
    # The run's modules (server, client, clinical models) load on first use, so that
    # ``import healthchain`` stays light for code that only tracks experiments.
    if name == "SandboxResult":
        from ._result import SandboxResult

        return SandboxResult
    if name == "RequestOutcome":
        from ._client import RequestOutcome

        return RequestOutcome
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
