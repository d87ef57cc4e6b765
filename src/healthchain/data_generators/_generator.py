"""``CdsDataGenerator``: synthetic, valid FHIR R4B data for one CDS Hooks workflow.

What each workflow gets (all in a ``collection`` Bundle, plus a Practitioner as the user):

- ``patient-view``: the Patient, one to three finished encounters and their conditions.
- ``encounter-discharge``: the Patient, the inpatient Encounter being ended, its conditions,
  procedures and discharge medication requests.
- ``order-select`` / ``order-sign``: the Patient, the current Encounter and its conditions;
  the draft MedicationRequests and ServiceRequests go in the context's ``draftOrders``
  (``order-select`` also names the newly selected ones in ``selections``).

Free text read from a CSV column becomes a DocumentReference (a discharge summary for
``encounter-discharge``, a progress note otherwise) with the text as a UTF-8 attachment.
Everything, ids and dates included, comes from one ``random.Random(random_seed)``, so the
same seed and the same CSV give the same data.
"""

from __future__ import annotations

import base64
import os
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from healthchain.models import CdsFhirData, Workflow

from ._exceptions import FreeTextError, WorkflowError
from ._free_text import read_free_text
from ._vocabulary import (
    CONDITIONS,
    DISCHARGE_SUMMARY,
    FAMILY_NAMES,
    GIVEN_NAMES,
    LOINC,
    MEDICATIONS,
    PROCEDURES,
    PROGRESS_NOTE,
    RXNORM,
    SERVICE_REQUESTS,
    SNOMED,
    Code,
)

__all__ = ["CdsDataGenerator"]

_ANCHOR = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
"""Generated dates lie before this instant, so they do not depend on today's date."""

_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_CLINICAL_STATUS = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
_DISCHARGE_DISPOSITION = "http://terminology.hl7.org/CodeSystem/discharge-disposition"

Json = dict[str, Any]


def _concept(system: str, code: Code | tuple[str, str], text: str | None = None) -> Json:
    concept: Json = {"coding": [{"system": system, "code": code[0], "display": code[1]}]}
    if text is not None:
        concept["text"] = text
    return concept


def _ref(resource: Json) -> Json:
    return {"reference": f"{resource['resourceType']}/{resource['id']}"}


class _Builder:
    """Builds FHIR resources as JSON, drawing every choice from one ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def instant(self, *, max_days_ago: int, min_days_ago: int = 0) -> datetime:
        minutes = self.rng.randint(min_days_ago * 24 * 60, max_days_ago * 24 * 60)
        return _ANCHOR - timedelta(minutes=minutes)

    def practitioner(self) -> Json:
        return {
            "resourceType": "Practitioner",
            "id": self.new_id(),
            "name": [{"family": self.rng.choice(FAMILY_NAMES), "prefix": ["Dr"]}],
        }

    def patient(self) -> Json:
        birth = date(1940, 1, 1) + timedelta(days=self.rng.randint(0, 65 * 365))
        return {
            "resourceType": "Patient",
            "id": self.new_id(),
            "active": True,
            "name": [
                {
                    "use": "official",
                    "family": self.rng.choice(FAMILY_NAMES),
                    "given": [self.rng.choice(GIVEN_NAMES)],
                }
            ],
            "gender": self.rng.choice(("female", "male")),
            "birthDate": birth.isoformat(),
        }

    def encounter(self, patient: Json, *, status: str, inpatient: bool) -> Json:
        start = self.instant(min_days_ago=1, max_days_ago=30 if inpatient else 400)
        period: Json = {"start": start.isoformat()}
        encounter: Json = {
            "resourceType": "Encounter",
            "id": self.new_id(),
            "status": status,
            "class": (
                {"system": _ACT_CODE, "code": "IMP", "display": "inpatient encounter"}
                if inpatient
                else {"system": _ACT_CODE, "code": "AMB", "display": "ambulatory"}
            ),
            "subject": _ref(patient),
            "period": period,
        }
        if status == "finished":
            period["end"] = (start + timedelta(hours=self.rng.randint(1, 6))).isoformat()
        if inpatient:
            encounter["hospitalization"] = {
                "dischargeDisposition": _concept(_DISCHARGE_DISPOSITION, ("home", "Home"))
            }
        return encounter

    def conditions(self, patient: Json, encounter: Json, *, most: int = 3) -> list[Json]:
        codes = self.rng.sample(CONDITIONS, self.rng.randint(1, most))
        return [
            {
                "resourceType": "Condition",
                "id": self.new_id(),
                "clinicalStatus": _concept(_CLINICAL_STATUS, ("active", "Active")),
                "verificationStatus": _concept(_VERIFICATION_STATUS, ("confirmed", "Confirmed")),
                "category": [
                    _concept(_CONDITION_CATEGORY, ("encounter-diagnosis", "Encounter Diagnosis"))
                ],
                "code": _concept(SNOMED, code),
                "subject": _ref(patient),
                "encounter": _ref(encounter),
                "onsetDateTime": self.instant(min_days_ago=30, max_days_ago=3000).isoformat(),
            }
            for code in codes
        ]

    def procedures(self, patient: Json, encounter: Json) -> list[Json]:
        codes = self.rng.sample(PROCEDURES, self.rng.randint(1, 2))
        return [
            {
                "resourceType": "Procedure",
                "id": self.new_id(),
                "status": "completed",
                "code": _concept(SNOMED, code),
                "subject": _ref(patient),
                "encounter": _ref(encounter),
                "performedDateTime": self.instant(max_days_ago=1).isoformat(),
            }
            for code in codes
        ]

    def medication_requests(
        self, patient: Json, encounter: Json, requester: Json, *, status: str
    ) -> list[Json]:
        medications = self.rng.sample(MEDICATIONS, self.rng.randint(1, 3))
        return [
            {
                "resourceType": "MedicationRequest",
                "id": self.new_id(),
                "status": status,
                "intent": "order",
                "medicationCodeableConcept": _concept(RXNORM, (med.code, med.display)),
                "subject": _ref(patient),
                "encounter": _ref(encounter),
                "authoredOn": _ANCHOR.isoformat(),
                "requester": _ref(requester),
                "dosageInstruction": [{"text": med.dosage}],
            }
            for med in medications
        ]

    def service_requests(self, patient: Json, encounter: Json, requester: Json) -> list[Json]:
        codes = self.rng.sample(SERVICE_REQUESTS, self.rng.randint(1, 2))
        return [
            {
                "resourceType": "ServiceRequest",
                "id": self.new_id(),
                "status": "draft",
                "intent": "order",
                "code": _concept(SNOMED, code),
                "subject": _ref(patient),
                "encounter": _ref(encounter),
                "requester": _ref(requester),
            }
            for code in codes
        ]

    def document(self, patient: Json, encounter: Json | None, text: str, kind: Code) -> Json:
        document: Json = {
            "resourceType": "DocumentReference",
            "id": self.new_id(),
            "status": "current",
            "docStatus": "final",
            "type": _concept(LOINC, kind),
            "subject": _ref(patient),
            "date": _ANCHOR.isoformat(),
            "content": [
                {
                    "attachment": {
                        "contentType": "text/plain; charset=utf-8",
                        "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
                    }
                }
            ],
        }
        if encounter is not None:
            document["context"] = {"encounter": [_ref(encounter)]}
        return document


def _bundle(resources: list[Json]) -> Json:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": resource} for resource in resources],
    }


class CdsDataGenerator:
    """Generates synthetic FHIR data (:class:`CdsFhirData`) for the workflow set on it.

    The sandbox sets :attr:`workflow` to the ``@ehr(workflow=...)`` on the generator a use
    case keeps as ``self.data_generator`` (and on no other); set it yourself (or pass it
    here) to use a generator otherwise.
    """

    def __init__(self, workflow: Workflow | str | None = None) -> None:
        self._workflow: Workflow | None = None
        if workflow is not None:
            self.workflow = workflow

    @property
    def workflow(self) -> Workflow | None:
        """The CDS Hooks workflow to generate data for, e.g. ``"encounter-discharge"``."""
        return self._workflow

    @workflow.setter
    def workflow(self, value: Workflow | str | None) -> None:
        if value is None:
            self._workflow = None
            return
        try:
            self._workflow = Workflow(value)
        except ValueError:
            supported = ", ".join(repr(str(w)) for w in Workflow)
            raise WorkflowError(
                f"workflow {value!r} is not supported by CdsDataGenerator; use one of {supported}"
            ) from None

    def generate(
        self,
        free_text_path: str | os.PathLike[str] | None = None,
        column_name: str | None = None,
        random_seed: int | None = None,
    ) -> CdsFhirData:
        """Generate one patient's data for :attr:`workflow`.

        ``free_text_path`` and ``column_name`` name a CSV file and the column whose text (one
        row, chosen at random) becomes a DocumentReference; give both or neither. The same
        ``random_seed`` gives the same data; ``None`` gives fresh data each call. Reading the
        CSV is blocking file I/O, done in the calling thread.
        """
        workflow = self._workflow
        if workflow is None:
            raise WorkflowError(
                "CdsDataGenerator has no workflow: set generator.workflow (the sandbox's "
                "@ehr(workflow=...) does this) before calling generate()"
            )
        if (free_text_path is None) != (column_name is None):
            raise FreeTextError(
                f"free_text_path={free_text_path!r} and column_name={column_name!r}: "
                "pass both (the CSV file and its text column) or neither"
            )
        texts = (
            read_free_text(free_text_path, column_name)
            if free_text_path is not None and column_name is not None
            else None
        )
        build = _Builder(random.Random(random_seed))
        user = build.practitioner()
        patient = build.patient()
        context: Json = {"userId": f"Practitioner/{user['id']}", "patientId": patient["id"]}
        resources: list[Json] = [patient, user]
        current: Json | None = None

        if workflow is Workflow.PATIENT_VIEW:
            for _ in range(build.rng.randint(1, 3)):
                encounter = build.encounter(patient, status="finished", inpatient=False)
                resources += [encounter, *build.conditions(patient, encounter, most=2)]
        elif workflow is Workflow.ENCOUNTER_DISCHARGE:
            current = build.encounter(patient, status="in-progress", inpatient=True)
            context["encounterId"] = current["id"]
            resources += [
                current,
                *build.conditions(patient, current),
                *build.procedures(patient, current),
                *build.medication_requests(patient, current, user, status="active"),
            ]
        else:
            current = build.encounter(patient, status="in-progress", inpatient=False)
            context["encounterId"] = current["id"]
            resources += [current, *build.conditions(patient, current)]
            medications = build.medication_requests(patient, current, user, status="draft")
            draft_orders = [*medications, *build.service_requests(patient, current, user)]
            if workflow is Workflow.ORDER_SELECT:
                context["selections"] = [f"MedicationRequest/{medications[0]['id']}"]
            context["draftOrders"] = _bundle(draft_orders)

        if texts is not None:
            kind = DISCHARGE_SUMMARY if workflow is Workflow.ENCOUNTER_DISCHARGE else PROGRESS_NOTE
            resources.append(build.document(patient, current, build.rng.choice(texts), kind))
        return CdsFhirData.model_validate({"context": context, "prefetch": _bundle(resources)})
