"""Pipelines of named components in stages, whose layout the experiment tracker records.

``Pipeline`` is the general container; ``SummarizationPipeline.load(chain, ...)`` turns the
discharge note of a CDS request into summary cards with a LangChain runnable (install
``healthchain[langchain]``) and a Jinja2 card template.
"""

from __future__ import annotations

from ._components import CardCreator, extract_document_text, split_summary_lines
from ._exceptions import (
    InvalidComponentError,
    MissingDependencyError,
    NodeNotFoundError,
    PipelineConfigError,
    PipelineError,
    PipelineRunError,
    TemplateError,
    TemplateNotFoundError,
    UnknownSourceError,
)
from ._langchain import LangChainLLM
from ._pipeline import Node, Pipeline
from ._summarization import SummarizationPipeline

__all__ = [
    "CardCreator",
    "InvalidComponentError",
    "LangChainLLM",
    "MissingDependencyError",
    "Node",
    "NodeNotFoundError",
    "Pipeline",
    "PipelineConfigError",
    "PipelineError",
    "PipelineRunError",
    "SummarizationPipeline",
    "TemplateError",
    "TemplateNotFoundError",
    "UnknownSourceError",
    "extract_document_text",
    "split_summary_lines",
]
