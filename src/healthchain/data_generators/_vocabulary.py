"""Codes and names the generator draws from: synthetic, written for this project.

Codes are real SNOMED CT, RxNorm and LOINC codes so that the data looks like an EHR's;
the people are invented.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "CONDITIONS",
    "DISCHARGE_SUMMARY",
    "FAMILY_NAMES",
    "GIVEN_NAMES",
    "LOINC",
    "MEDICATIONS",
    "PROCEDURES",
    "PROGRESS_NOTE",
    "RXNORM",
    "SERVICE_REQUESTS",
    "SNOMED",
    "Code",
    "Medication",
]

SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"


class Code(NamedTuple):
    """A code with its display text."""

    code: str
    display: str


class Medication(NamedTuple):
    """An RxNorm medication with a plain-language dosage instruction."""

    code: str
    display: str
    dosage: str


GIVEN_NAMES = ("Ada", "Bram", "Cleo", "Dara", "Emil", "Fern", "Gus", "Hana", "Ivo", "Juno")
FAMILY_NAMES = ("Ashdown", "Brightwell", "Calloway", "Dunmore", "Everly", "Fairbank", "Greaves")

CONDITIONS = (
    Code("38341003", "Hypertensive disorder"),
    Code("44054006", "Diabetes mellitus type 2"),
    Code("233604007", "Pneumonia"),
    Code("49436004", "Atrial fibrillation"),
    Code("84114007", "Heart failure"),
    Code("13645005", "Chronic obstructive lung disease"),
    Code("68566005", "Urinary tract infectious disease"),
    Code("195967001", "Asthma"),
)

PROCEDURES = (
    Code("40701008", "Echocardiography"),
    Code("399208008", "Plain chest X-ray"),
    Code("29303009", "Electrocardiographic procedure"),
    Code("80146002", "Appendectomy"),
    Code("73761001", "Colonoscopy"),
)

MEDICATIONS = (
    Medication("314076", "lisinopril 10 MG Oral Tablet", "One tablet by mouth once daily"),
    Medication("197361", "amlodipine 5 MG Oral Tablet", "One tablet by mouth once daily"),
    Medication("617314", "atorvastatin 10 MG Oral Tablet", "One tablet by mouth at night"),
    Medication("313782", "acetaminophen 325 MG Oral Tablet", "Two tablets every 6 hours as needed"),
    Medication("308182", "amoxicillin 250 MG Oral Capsule", "One capsule three times daily"),
    Medication(
        "855332", "warfarin sodium 5 MG Oral Tablet", "As directed by anticoagulation clinic"
    ),
)

SERVICE_REQUESTS = (
    Code("26604007", "Complete blood count"),
    Code("399208008", "Plain chest X-ray"),
    Code("40701008", "Echocardiography"),
)

DISCHARGE_SUMMARY = Code("18842-5", "Discharge summary")
PROGRESS_NOTE = Code("11506-3", "Progress note")
