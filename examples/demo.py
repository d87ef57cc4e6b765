"""The README's main job: run a tracked sandbox offline and print what was recorded.

Needs only ``pip install healthchain`` (no extra). Run it from anywhere; it writes
``experiments.db`` and ``output/`` in the working directory and prints both paths.

A CDS service for ``encounter-discharge`` whose pipeline turns the synthetic discharge
data into a card; one run sends 20 requests and is recorded as one experiment in the
default ``experiments.db``, with its pipeline components and per-request latencies::

    python examples/demo.py
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.medicationrequest import MedicationRequest

import healthchain as hc
from healthchain.data_generators import CdsDataGenerator
from healthchain.models import Card, CdsFhirData, CDSRequest, CDSResponse, iter_resources
from healthchain.pipeline import Pipeline
from healthchain.use_cases import ClinicalDecisionSupport


def build_pipeline() -> Pipeline[CDSRequest, CDSResponse]:
    pipeline: Pipeline[CDSRequest, CDSResponse] = Pipeline()

    @pipeline.add_node(stage="preprocessing")
    def count_findings(request: CDSRequest) -> dict[str, Any]:
        # The searchset Bundles the service's default prefetch templates ask for.
        prefetch = request.prefetch or {}
        conditions, medications = prefetch.get("conditions"), prefetch.get("medications")
        return {
            "conditions": len(list(iter_resources(conditions, Condition))) if conditions else 0,
            "medications": (
                len(list(iter_resources(medications, MedicationRequest))) if medications else 0
            ),
        }

    @pipeline.add_node(stage="card-creation")
    def make_card(findings: dict[str, Any]) -> CDSResponse:
        summary = (
            f"Discharge check: {findings['conditions']} conditions, "
            f"{findings['medications']} medication requests to reconcile"
        )
        indicator = "warning" if findings["medications"] > 2 else "info"
        card = Card(summary=summary, indicator=indicator, source={"label": "healthchain demo"})
        return CDSResponse(cards=[card])

    return pipeline


@hc.sandbox(
    experiment_config={"project_name": "demo", "tags": {"example": "demo"}},
    service_config={"port": 0},
)
class DischargeCheck(ClinicalDecisionSupport):
    def __init__(self) -> None:
        self.pipeline = build_pipeline()
        self.data_generator = CdsDataGenerator()

    @hc.ehr(workflow="encounter-discharge", num=20)
    def load_data_in_client(self) -> CdsFhirData:
        return self.data_generator.generate()

    @hc.api
    def discharge_check(self, request: CDSRequest) -> CDSResponse:
        """Flags discharges with medications to reconcile."""
        return self.pipeline(request)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    with DischargeCheck() as demo:
        result = demo.start_sandbox(save_dir="./output/")
        tracker = demo.experiment_tracker
        assert tracker is not None and result.experiment_id is not None
        experiment = tracker.get_experiment(result.experiment_id)
        stats = tracker.request_stats(experiment.id)

    print(f"Experiment   {experiment.id}")
    print(f"Name         {experiment.name} (project {experiment.project})")
    print(f"Status       {experiment.status}")
    print(f"Duration     {experiment.duration}")
    print(f"Tags         {experiment.tags}")
    print(
        f"Requests     {stats.count} sent, {stats.failures} failed, "
        f"latency p50 {stats.p50_ms:.1f} ms, p95 {stats.p95_ms:.1f} ms"
    )
    print(
        "Components   "
        + ", ".join(f"{c.position}:{c.name} [{c.stage}]" for c in experiment.components)
    )
    print(f"First card   {result.responses[0].cards[0].summary}")
    print(f"Saved        {result.save_dir}")
    print(f"Database     {Path('experiments.db').resolve()}")


if __name__ == "__main__":
    main()
