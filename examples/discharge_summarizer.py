# The documentation's imports are kept as written (order and place), and so is its prompt.
# ruff: noqa: I001, E501
"""The documentation's "Real-World Usage" example: summarise discharge notes into CDS cards.

Needs the ``langchain`` extra: ``pip install 'healthchain[langchain]'`` (add
``langchain-huggingface`` and a ``HUGGINGFACEHUB_API_TOKEN`` for the real model). Run it
from anywhere::

    python examples/discharge_summarizer.py

It reads ``templates/`` and ``data/`` beside this file, and writes ``experiments.db`` and
``output/`` in the working directory, printing both paths.

With ``HUGGINGFACEHUB_API_TOKEN`` set and ``langchain-huggingface`` installed, the chain calls
zephyr-7b-beta on the Hugging Face endpoint. Otherwise (offline, in CI) the same chain is
built around a fake chat model from ``langchain_core`` with canned bullet-point summaries;
the class below is the documentation's, unchanged either way, plus one ``@hc.score``
method: the share of summary cards that name a follow-up action. Each run records one
experiment (each request with its score, and the run's metrics) and saves the requests and
responses under ``output/<experiment id>/``. The documentation's relative template and
CSV paths are made relative to this folder (``HERE``), so no working directory is assumed.
"""

import healthchain as hc

from healthchain.pipeline import SummarizationPipeline
from healthchain.use_cases import ClinicalDecisionSupport
from healthchain.models import CdsFhirData, CDSRequest, CDSResponse
from healthchain.data_generators import CdsDataGenerator

try:
    from langchain_huggingface.llms import HuggingFaceEndpoint
    from langchain_huggingface import ChatHuggingFace
except ImportError:  # the offline stand-ins below take their place
    HUGGINGFACE_INSTALLED = False
else:
    HUGGINGFACE_INSTALLED = True

from langchain_core.prompts import PromptTemplate
from langchain_core.output_parsers import StrOutputParser

import getpass
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeListChatModel

HERE = Path(__file__).resolve().parent

CANNED_SUMMARIES = [
    "- Continue amoxicillin 500 mg three times daily for 4 more days\n"
    "- GP review in 1 week\n"
    "- Repeat chest X-ray booked in 6 weeks at outpatient radiology",
    "- Furosemide 40 mg once daily and bisoprolol 2.5 mg once daily\n"
    "- Daily weights at home; call heart failure nurse if up 2 kg in 3 days\n"
    "- Heart failure clinic Tuesday 10:00; U&E blood test in 5 days",
    "- Paracetamol 1 g four times daily as needed for 5 days\n"
    "- Remove wound dressing after 48 hours\n"
    "- Surgical outpatient review in 2 weeks; no heavy lifting for 4 weeks",
]


# What a discharge audit looks for in a summary: a review, clinic or appointment, a
# booked or repeat test, or whom to call and when.
FOLLOW_UP = re.compile(
    r"\b(review|clinic|appointment|follow[- ]?up|booked|repeat|blood test|call|GP)\b",
    re.IGNORECASE,
)


class OfflineEndpoint:
    """Stands in for ``HuggingFaceEndpoint`` offline: accepts and keeps the same settings."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings


def offline_chat_model(llm: OfflineEndpoint) -> FakeListChatModel:
    """Stands in for ``ChatHuggingFace``: a fake chat model with canned summaries."""
    return FakeListChatModel(responses=CANNED_SUMMARIES)


# Prompt for a token only where someone can answer; a blank answer, no terminal or no
# langchain-huggingface means the offline chain (so CI and scripts never block here).
if HUGGINGFACE_INSTALLED and not os.getenv("HUGGINGFACEHUB_API_TOKEN") and sys.stdin.isatty():
    os.environ["HUGGINGFACEHUB_API_TOKEN"] = getpass.getpass(
        "Enter your token (blank to run offline): "
    )

if not (HUGGINGFACE_INSTALLED and os.getenv("HUGGINGFACEHUB_API_TOKEN")):
    HuggingFaceEndpoint = OfflineEndpoint
    ChatHuggingFace = offline_chat_model


@hc.sandbox(
    experiment_config={
        "storage_uri": "sqlite:///experiments.db",  # Where to store experiment data
        "project_name": "patient_summary",  # Name for grouping experiments
    }
)
class DischargeNoteSummarizer(ClinicalDecisionSupport):
    def __init__(self):
        # Initialize pipeline and data generator
        chain = self._init_chain()
        self.pipeline = SummarizationPipeline.load(
            chain, source="langchain", template_path=HERE / "templates/cds_card_template.json"
        )
        self.data_generator = CdsDataGenerator()

    def _init_chain(self):
        hf = HuggingFaceEndpoint(
            repo_id="HuggingFaceH4/zephyr-7b-beta",
            task="text-generation",
            max_new_tokens=512,
            do_sample=False,
            repetition_penalty=1.03,
        )
        model = ChatHuggingFace(llm=hf)
        template = """
        You are a bed planner for a hospital. Provide a concise, objective summary of the input text in short bullet points separated by new lines,
        focusing on key actions such as appointments and medication dispense instructions, without using second or third person pronouns.\n'''{text}'''
        """
        prompt = PromptTemplate.from_template(template)
        chain = prompt | model | StrOutputParser()

        return chain

    @hc.ehr(workflow="encounter-discharge")
    def load_data_in_client(self) -> CdsFhirData:
        # Generate synthetic FHIR data for testing
        data = self.data_generator.generate(
            free_text_path=HERE / "data/discharge_notes.csv", column_name="text"
        )
        return data

    @hc.api
    def my_service(self, request: CDSRequest) -> CDSResponse:
        # Process the request through our pipeline
        result = self.pipeline(request)
        return result

    @hc.score
    def follow_up_named(self, request: CDSRequest, response: CDSResponse) -> float:
        # The share of the summary's cards that name a follow-up action; NaN (left out of
        # the run's mean) when there is no card to judge.
        cards = response.cards or []
        if not cards:
            return math.nan
        named = [FOLLOW_UP.search(f"{card.summary} {card.detail or ''}") for card in cards]
        return sum(match is not None for match in named) / len(cards)


if __name__ == "__main__":
    # Start the sandbox server
    summarizer = DischargeNoteSummarizer()
    result = summarizer.start_sandbox()
    print(f"experiment {result.experiment_id}: {result.status}")
    for response in result.responses:
        for card in getattr(response, "cards", []):
            print(f"  [{card.indicator}] {card.summary}")
    for name, mean in result.mean_scores.items():
        print(f"mean {name}: {mean:.2f}")
    print(f"database: {Path('experiments.db').resolve()}")
    print(f"requests and responses: {result.save_dir}")
    sys.exit(0 if f"{result.status}" == "COMPLETED" else 1)
