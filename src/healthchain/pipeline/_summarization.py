"""``SummarizationPipeline``: a discharge note in a CDS request, summary cards out.

Nodes, in order (name / stage):

1. ``document_extractor`` / ``preprocessing``: the DocumentReference text in the prefetch.
2. ``llm`` / ``llm``: the loaded chain, given the text, returns a summary.
3. ``line_splitter`` / ``postprocessing``: the summary's non-empty lines, bullets removed.
4. ``card_creator`` / ``card-creation``: one card per line, from the Jinja2 JSON template.
"""

from __future__ import annotations

import os
from typing import Any, Self

from healthchain.models import CDSRequest, CDSResponse

from ._components import CardCreator, extract_document_text, split_summary_lines
from ._exceptions import UnknownSourceError
from ._langchain import LangChainLLM, describe_chain
from ._pipeline import Pipeline

__all__ = ["SOURCES", "SummarizationPipeline"]

SOURCES: tuple[str, ...] = ("langchain",)
"""The model sources :meth:`SummarizationPipeline.load` supports."""


class SummarizationPipeline(Pipeline[CDSRequest, CDSResponse]):
    """Summarises the discharge note of a :class:`CDSRequest` into a :class:`CDSResponse`."""

    def __init__(self) -> None:
        super().__init__()
        self._settings: dict[str, Any] = {}

    @classmethod
    def load(
        cls,
        chain: Any,
        source: str = "langchain",
        *,
        template_path: str | os.PathLike[str],
    ) -> Self:
        """Build the pipeline around ``chain`` (a LangChain runnable for ``"langchain"``).

        The card template at ``template_path`` is read and checked now, so a missing or
        broken template fails here rather than on the first request.
        """
        if source not in SOURCES:
            raise UnknownSourceError(
                f"source {source!r} is not supported; use one of {', '.join(map(repr, SOURCES))}"
            )
        llm = LangChainLLM(chain)
        card_creator = CardCreator(template_path)
        pipeline = cls()
        pipeline.add_node(extract_document_text, stage="preprocessing", name="document_extractor")
        pipeline.add_node(llm, stage="llm", name="llm")
        pipeline.add_node(split_summary_lines, stage="postprocessing", name="line_splitter")
        pipeline.add_node(card_creator, stage="card-creation", name="card_creator", position="last")
        pipeline._settings = {
            "source": source,
            "chain": describe_chain(chain),
            "template_path": str(template_path),
        }
        return pipeline

    def _config_extras(self) -> dict[str, Any]:
        return dict(self._settings)
