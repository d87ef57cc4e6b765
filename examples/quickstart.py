"""The documentation's Quick Start, completed so it runs.

Needs only ``pip install healthchain`` (no extra). Run it from anywhere; it writes
``experiments.db`` in the working directory (no request files: ``save_data=False``) and
prints its path.

``@sandbox(experiment_config=...)`` is exactly the Quick Start's; the class adds the two
methods a sandbox needs (an ``@ehr`` method that makes the EHR's data and an ``@api``
handler that answers it) and listens on a free port. Run it with::

    python examples/quickstart.py

It records one experiment in ``experiments.db`` (project ``my_project``) and prints it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from healthchain import sandbox
from healthchain.data_generators import CdsDataGenerator
from healthchain.models import Card, CdsFhirData, CDSRequest, CDSResponse
from healthchain.sandbox import api, ehr
from healthchain.use_cases import ClinicalDecisionSupport  # a BaseUseCase


@sandbox(
    experiment_config={
        "storage_uri": "sqlite:///experiments.db",  # Where to store experiment data
        "project_name": "my_project",  # Name for grouping experiments
        "tags": {"environment": "production"},  # Optional tags
    },
    service_config={"port": 0},  # any free port
)
class MyExperiment(ClinicalDecisionSupport):
    def __init__(self) -> None:
        # ExperimentTracker is automatically initialized
        # You can access it via self.experiment_tracker
        self.data_generator = CdsDataGenerator()

    @ehr(workflow="patient-view", num=3)
    def load_data(self) -> CdsFhirData:
        return self.data_generator.generate()

    @api
    def my_service(self, request: CDSRequest) -> CDSResponse:
        """Greets the clinician."""
        return CDSResponse(
            cards=[
                Card(
                    summary="Hello from the sandbox",
                    indicator="info",
                    source={"label": "quickstart"},
                )
            ]
        )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with MyExperiment() as experiment:
        result = experiment.start_sandbox(save_data=False)
        tracker = experiment.experiment_tracker
        assert tracker is not None and result.experiment_id is not None
        recorded = tracker.get_experiment(result.experiment_id)
        print(f"Experiment {recorded.id}")
        print(f"Status: {recorded.status}")
        print(f"Duration: {recorded.end_time - recorded.start_time}")
        print(f"Tags: {recorded.tags}")
        print(f"Database: {Path('experiments.db').resolve()}")
