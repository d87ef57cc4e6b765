"""Components of the summarization pipeline that need no model: text in, cards out."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

from healthchain._formatting import validation_summary
from healthchain.models import Card, CDSRequest, CDSResponse

from ._exceptions import PipelineRunError, TemplateError, TemplateNotFoundError

__all__ = ["CardCreator", "extract_document_text", "split_summary_lines"]

DISCHARGE_SUMMARY_LOINC = "18842-5"
TEMPLATE_VARIABLES = ("text", "summary", "index", "count")
_BULLET = re.compile(r"^\s*(?:[-*\u2022\u2023\u25e6]|\d+[.)])\s*")


def _documents(resource: Resource | None) -> Iterator[DocumentReference]:
    if isinstance(resource, DocumentReference):
        yield resource
    elif isinstance(resource, Bundle):
        for entry in resource.entry or ():
            yield from _documents(entry.resource)


def _is_discharge_summary(document: DocumentReference) -> bool:
    codings = document.type.coding if document.type is not None else None
    return any(coding.code == DISCHARGE_SUMMARY_LOINC for coding in codings or ())


def _text_of(document: DocumentReference) -> str:
    parts = []
    for content in document.content or ():
        data = content.attachment.data
        if data:
            raw = data if isinstance(data, bytes) else str(data).encode()
            parts.append(raw.decode("utf-8", errors="replace").strip())
    return "\n\n".join(part for part in parts if part)


def extract_document_text(request: CDSRequest) -> str:
    """The text of the request's prefetched DocumentReferences, discharge summaries first.

    Discharge summaries (LOINC 18842-5) are used when there are any, every document
    otherwise; texts are joined by blank lines.
    """
    documents = [doc for value in (request.prefetch or {}).values() for doc in _documents(value)]
    summaries = [doc for doc in documents if _is_discharge_summary(doc)]
    text = "\n\n".join(t for doc in (summaries or documents) if (t := _text_of(doc)))
    if not text:
        keys = sorted(request.prefetch or {})
        raise PipelineRunError(
            f"the {request.hook!r} request has no DocumentReference with text in its prefetch "
            f"(keys {keys!r}); generate the data with free_text_path=... and column_name=..."
        )
    return text


def split_summary_lines(summary: str) -> list[str]:
    """Split a model's summary into its non-empty lines, without bullets or numbering."""
    lines = (_BULLET.sub("", line).strip() for line in summary.splitlines())
    return [line for line in lines if line]


def _shorten(text: str, width: int = 139) -> str:
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.") + "\u2026"


class CardCreator:
    """Renders each summary line through a Jinja2 JSON template into a :class:`Card`.

    The template sees ``text`` (the line), ``summary`` (the line cut below 140 characters at a
    word boundary), ``index`` (0-based) and ``count`` (the number of lines); use
    ``{{ text | tojson }}`` to embed text in JSON. The template is read, and checked by
    rendering a sample line, when the creator is made.
    """

    def __init__(self, template_path: str | os.PathLike[str]) -> None:
        self.template_path = Path(template_path)
        try:
            source = self.template_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TemplateNotFoundError(
                f"card template {str(self.template_path)!r} does not exist; pass the path "
                f"of a Jinja2 JSON card template (relative paths resolve from {os.getcwd()!r})"
            ) from None
        except (IsADirectoryError, UnicodeDecodeError) as exc:
            raise TemplateError(
                f"card template {str(self.template_path)!r} is not a UTF-8 text file: {exc}"
            ) from exc
        environment = jinja2.Environment(
            undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
        )
        try:
            unknown = jinja2.meta.find_undeclared_variables(environment.parse(source))
            self._template = environment.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"card template {str(self.template_path)!r} has a Jinja2 syntax error "
                f"on line {exc.lineno}: {exc.message}"
            ) from exc
        unknown -= set(TEMPLATE_VARIABLES)
        if unknown:
            raise TemplateError(
                f"card template {str(self.template_path)!r} uses undefined variables "
                f"{sorted(unknown)!r}; the template can use {list(TEMPLATE_VARIABLES)!r}"
            )
        self.render(["Sample summary line to check the template."])

    def render(self, lines: Sequence[str]) -> list[Card]:
        """Render one card per line."""
        return [self._render_one(line, index, len(lines)) for index, line in enumerate(lines)]

    def _render_one(self, line: str, index: int, count: int) -> Card:
        variables: dict[str, Any] = {
            "text": line,
            "summary": _shorten(line),
            "index": index,
            "count": count,
        }
        where = f"card template {str(self.template_path)!r}"
        try:
            rendered = self._template.render(variables)
        except (jinja2.TemplateError, TypeError, ValueError) as exc:
            raise TemplateError(f"{where} failed to render: {exc}") from exc
        try:
            data = json.loads(rendered)
        except json.JSONDecodeError as exc:
            raise TemplateError(
                f"{where} rendered invalid JSON ({exc.msg} at line {exc.lineno}, column "
                f"{exc.colno}): {rendered[:200]!r}; embed text with '| tojson'"
            ) from exc
        try:
            return Card.model_validate(data)
        except ValidationError as exc:
            raise TemplateError(
                f"{where} rendered JSON that is not a valid CDS card: {validation_summary(exc)}"
            ) from exc

    def __call__(self, lines: Sequence[str]) -> CDSResponse:
        """Turn summary lines into a response with one card per line."""
        return CDSResponse(cards=self.render(lines))
