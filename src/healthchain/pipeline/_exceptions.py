"""Exceptions raised by ``healthchain.pipeline``.

Each also derives from the builtin whose meaning fits::

    PipelineError
    ├── PipelineConfigError (ValueError)        bad node: duplicate name, bad position/reference
    │   ├── NodeNotFoundError (LookupError)     no node with that name
    │   └── UnknownSourceError                  a model source that cannot be loaded
    ├── InvalidComponentError (TypeError)       a component that is not callable, or wrong chain
    ├── MissingDependencyError (ImportError)    an optional extra is not installed
    ├── TemplateError (ValueError)              a card template that renders invalid cards
    │   └── TemplateNotFoundError (FileNotFoundError)  no template at the path
    └── PipelineRunError (RuntimeError)         a run that cannot proceed (no input, bad output)

An exception raised inside a component propagates unchanged, with a note naming the node.
"""

from __future__ import annotations

__all__ = [
    "InvalidComponentError",
    "MissingDependencyError",
    "NodeNotFoundError",
    "PipelineConfigError",
    "PipelineError",
    "PipelineRunError",
    "TemplateError",
    "TemplateNotFoundError",
    "UnknownSourceError",
]


class PipelineError(Exception):
    """Base class of every error raised by the pipelines."""


class PipelineConfigError(PipelineError, ValueError):
    """A node cannot be added, moved or looked up as asked."""


class NodeNotFoundError(PipelineConfigError, LookupError):
    """No node in the pipeline has the given name."""

    def __str__(self) -> str:
        # LookupError subclasses such as KeyError would repr() the message; keep it plain.
        return str(self.args[0]) if self.args else ""


class UnknownSourceError(PipelineConfigError):
    """``load`` was given a model source it does not support."""


class InvalidComponentError(PipelineError, TypeError):
    """A component is not callable, or a chain is not of the expected kind."""


class MissingDependencyError(PipelineError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class TemplateError(PipelineError, ValueError):
    """A card template cannot be parsed, or renders something that is not a valid card."""


class TemplateNotFoundError(TemplateError, FileNotFoundError):
    """There is no card template at the given path."""


class PipelineRunError(PipelineError, RuntimeError):
    """A run cannot proceed: its input lacks what the pipeline needs, or output is wrong."""
