"""CdsDataGenerator: valid FHIR for every workflow, determinism, free text from CSV, errors."""

from __future__ import annotations

import base64
import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest

import healthchain.data_generators
from healthchain.data_generators import (
    CdsDataGenerator,
    DataGeneratorError,
    EmptyFreeTextError,
    FreeTextColumnError,
    FreeTextError,
    FreeTextFileNotFoundError,
    WorkflowError,
    read_free_text,
)
from healthchain.models import (
    CONTEXT_MODELS,
    CdsFhirData,
    CDSRequest,
    OrderSelectContext,
    OrderSignContext,
    Workflow,
    iter_resources,
)

EXAMPLE_CSV = Path(__file__).parent.parent / "examples" / "data" / "discharge_notes.csv"
NOTES = ["Discharged home; GP review in 1 week.", 'Said "stop warfarin", then, restarted.']


def wire(data: CdsFhirData | CDSRequest) -> str:
    return json.dumps(data.model_dump(mode="json", by_alias=True, exclude_none=True))


@pytest.fixture
def notes_csv(tmp_path: Path) -> Path:
    path = tmp_path / "notes.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows([[str(i), note] for i, note in enumerate(NOTES)])
    return path


def generator(workflow: str) -> CdsDataGenerator:
    gen = CdsDataGenerator()
    gen.workflow = workflow
    return gen


def resource_types(bundle: Bundle) -> Counter[str]:
    return Counter(type(entry.resource).__name__ for entry in bundle.entry or ())


def document_text(bundle: Bundle) -> str:
    (document,) = iter_resources(bundle, DocumentReference)
    data = document.content[0].attachment.data
    return bytes(data).decode("utf-8")


def test_exports_are_pinned() -> None:
    assert sorted(healthchain.data_generators.__all__) == [
        "CdsDataGenerator",
        "DataGeneratorError",
        "EmptyFreeTextError",
        "FreeTextColumnError",
        "FreeTextError",
        "FreeTextFileNotFoundError",
        "WorkflowError",
        "read_free_text",
    ]
    for name in healthchain.data_generators.__all__:
        member = getattr(healthchain.data_generators, name)
        assert member.__doc__, f"healthchain.data_generators.{name} has no docstring"


@pytest.mark.parametrize("workflow", list(Workflow))
@pytest.mark.parametrize("seed", range(5))
def test_every_workflow_generates_a_valid_fhir_request(workflow: Workflow, seed: int) -> None:
    data = generator(workflow).generate(random_seed=seed)

    # Valid as FHIR: the JSON re-validates through fhir.resources' own Bundle.
    bundle_json = data.prefetch.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert Bundle.model_validate(bundle_json) == data.prefetch
    # Valid as a CDS Hooks request for that hook, including the hook's context.
    request = data.to_request(workflow)
    assert type(request.context) is CONTEXT_MODELS[workflow]
    assert CDSRequest.model_validate_json(wire(request)) == request
    # References point at resources in the bundle (or the draft orders).
    types = resource_types(data.prefetch)
    assert types["Patient"] == 1
    (patient,) = iter_resources(data.prefetch, Patient)
    assert data.context["patientId"] == patient.id
    assert data.context["userId"].startswith("Practitioner/")


def test_patient_view_has_encounters_and_conditions() -> None:
    data = generator("patient-view").generate(random_seed=1)
    types = resource_types(data.prefetch)

    assert types["Encounter"] >= 1
    assert types["Condition"] >= 1
    assert "encounterId" not in data.context


def test_encounter_discharge_has_the_encounter_conditions_procedures_and_medications() -> None:
    data = generator("encounter-discharge").generate(random_seed=2)
    types = resource_types(data.prefetch)

    assert types["Encounter"] == 1
    assert types["Condition"] >= 1
    assert types["Procedure"] >= 1
    assert types["MedicationRequest"] >= 1
    (encounter,) = iter_resources(data.prefetch, Encounter)
    assert data.context["encounterId"] == encounter.id
    assert encounter.class_fhir.code == "IMP"


@pytest.mark.parametrize("workflow", ["order-select", "order-sign"])
def test_order_hooks_carry_draft_orders(workflow: str) -> None:
    request = generator(workflow).generate(random_seed=3).to_request(workflow)
    context = request.context
    assert isinstance(context, OrderSelectContext | OrderSignContext)

    orders = [*iter_resources(context.draftOrders, MedicationRequest)]
    services = [*iter_resources(context.draftOrders, ServiceRequest)]
    assert orders
    assert services
    assert {order.status for order in [*orders, *services]} == {"draft"}
    if isinstance(context, OrderSelectContext):
        assert context.selections == [f"MedicationRequest/{orders[0].id}"]


@pytest.mark.parametrize("workflow", list(Workflow))
def test_same_seed_same_data(workflow: Workflow, notes_csv: Path) -> None:
    gen = generator(workflow)
    first = gen.generate(free_text_path=notes_csv, column_name="text", random_seed=42)
    second = gen.generate(free_text_path=notes_csv, column_name="text", random_seed=42)
    other = gen.generate(free_text_path=notes_csv, column_name="text", random_seed=43)

    assert wire(first) == wire(second)
    assert wire(first) != wire(other)


def test_no_seed_gives_fresh_data() -> None:
    gen = generator("patient-view")
    assert gen.generate().context["patientId"] != gen.generate().context["patientId"]


def test_free_text_becomes_a_discharge_summary(notes_csv: Path) -> None:
    data = generator("encounter-discharge").generate(
        free_text_path=str(notes_csv), column_name="text", random_seed=0
    )
    (document,) = iter_resources(data.prefetch, DocumentReference)

    assert document_text(data.prefetch) in NOTES
    assert document.type.coding[0].code == "18842-5"
    assert document.context.encounter[0].reference == f"Encounter/{data.context['encounterId']}"
    assert document.content[0].attachment.contentType.startswith("text/plain")


def test_every_note_can_be_chosen(notes_csv: Path) -> None:
    gen = generator("patient-view")
    texts = {
        document_text(
            gen.generate(free_text_path=notes_csv, column_name="text", random_seed=seed).prefetch
        )
        for seed in range(20)
    }
    assert texts == set(NOTES)


def test_example_discharge_notes_are_usable() -> None:
    notes = read_free_text(EXAMPLE_CSV, "text")
    assert len(notes) >= 5
    data = generator("encounter-discharge").generate(
        free_text_path=EXAMPLE_CSV, column_name="text", random_seed=7
    )
    assert document_text(data.prefetch) in notes


def test_encoded_text_is_base64_utf8(notes_csv: Path) -> None:
    data = generator("order-sign").generate(
        free_text_path=notes_csv, column_name="text", random_seed=1
    )
    body = json.loads(wire(data))
    (document,) = [
        e["resource"]
        for e in body["prefetch"]["entry"]
        if e["resource"]["resourceType"] == "DocumentReference"
    ]
    raw = document["content"][0]["attachment"]["data"]
    assert base64.b64decode(raw).decode("utf-8") in NOTES


# -- errors ------------------------------------------------------------------------------


def test_missing_file_names_path_and_column(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(FreeTextFileNotFoundError) as exc_info:
        generator("encounter-discharge").generate(free_text_path=missing, column_name="text")
    assert repr(str(missing)) in str(exc_info.value)
    assert "'text'" in str(exc_info.value)
    assert isinstance(exc_info.value, FileNotFoundError)
    assert isinstance(exc_info.value, DataGeneratorError)


def test_missing_column_names_path_column_and_the_columns(notes_csv: Path) -> None:
    with pytest.raises(FreeTextColumnError) as exc_info:
        generator("encounter-discharge").generate(free_text_path=notes_csv, column_name="note")
    message = str(exc_info.value)
    assert repr(str(notes_csv)) in message
    assert "'note'" in message
    assert "['id', 'text']" in message
    assert isinstance(exc_info.value, LookupError)


@pytest.mark.parametrize(
    "content",
    ["", "id,text\n", "id,text\n1,\n2,   \n"],
    ids=["no-header", "header-only", "blank-values"],
)
def test_empty_csv_names_path_and_column(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(EmptyFreeTextError) as exc_info:
        generator("patient-view").generate(free_text_path=path, column_name="text")
    assert repr(str(path)) in str(exc_info.value)
    assert "'text'" in str(exc_info.value)
    assert isinstance(exc_info.value, ValueError)


def test_non_utf8_csv_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("text\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(FreeTextError, match="not a UTF-8 CSV"):
        read_free_text(path, "text")


def test_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FreeTextError, match="is a directory"):
        read_free_text(tmp_path, "text")


@pytest.mark.parametrize(
    ("path", "column"), [("notes.csv", None), (None, "text")], ids=["no-column", "no-path"]
)
def test_path_and_column_go_together(path: str | None, column: str | None) -> None:
    with pytest.raises(FreeTextError, match="pass both"):
        generator("patient-view").generate(free_text_path=path, column_name=column)


def test_generate_without_workflow_says_how_to_set_it() -> None:
    with pytest.raises(WorkflowError, match=r"set generator\.workflow"):
        CdsDataGenerator().generate()


def test_unknown_workflow_is_rejected_naming_it() -> None:
    gen = CdsDataGenerator()
    with pytest.raises(WorkflowError, match=r"'order-review' is not supported.*'patient-view'"):
        gen.workflow = "order-review"
    assert gen.workflow is None


def test_workflow_can_be_given_set_and_cleared() -> None:
    gen = CdsDataGenerator("order-sign")
    assert gen.workflow is Workflow.ORDER_SIGN
    gen.workflow = Workflow.PATIENT_VIEW
    assert gen.workflow == "patient-view"
    gen.workflow = None
    assert gen.workflow is None
