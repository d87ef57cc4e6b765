"""Running a LangChain runnable as a pipeline component (``langchain-core`` is optional).

``langchain_core`` is imported only when a chain is loaded, so ``healthchain.pipeline``
imports without it; a missing install is a :class:`MissingDependencyError` naming the extra.
"""

from __future__ import annotations

import importlib
from typing import Any

import anyio.from_thread

from ._exceptions import InvalidComponentError, MissingDependencyError, PipelineRunError
from ._pipeline import in_anyio_worker_thread

__all__ = ["LangChainLLM", "describe_chain", "require_runnable"]

INSTALL_HINT = "pip install 'healthchain[langchain]'"


def require_runnable(chain: object) -> None:
    """Check that ``chain`` is a LangChain ``Runnable``, importing ``langchain_core`` lazily."""
    try:
        runnables = importlib.import_module("langchain_core.runnables")
    except ImportError as exc:
        raise MissingDependencyError(
            f"source 'langchain' needs langchain-core, which is not installed: {INSTALL_HINT}"
        ) from exc
    if not isinstance(chain, runnables.Runnable):
        raise InvalidComponentError(
            f"chain {chain!r} of type {type(chain).__name__!r} is not a LangChain Runnable; "
            "pass e.g. 'prompt | model | StrOutputParser()'"
        )


def describe_chain(chain: Any) -> str:
    """A short, JSON-friendly description of a runnable, e.g. ``"PromptTemplate | ..."``."""
    steps = getattr(chain, "steps", None)
    if isinstance(steps, list) and steps:
        return " | ".join(str(step.get_name()) for step in steps)
    return str(chain.get_name())


def _as_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    content = getattr(output, "content", None)  # a chat message, when there is no parser
    if isinstance(content, str):
        return content
    raise PipelineRunError(
        f"the chain returned {type(output).__name__!r}, not text; end it with StrOutputParser()"
    )


class LangChainLLM:
    """Calls a LangChain runnable with the text and returns its output as a string.

    ``await pipeline.acall()`` uses ``ainvoke``. A sync call from an anyio worker thread
    (the sandbox runs sync handlers there) runs ``ainvoke`` on that thread's event loop, so
    async-only chains work too; any other sync call uses ``invoke``.
    """

    def __init__(self, chain: Any) -> None:
        require_runnable(chain)
        self.chain = chain

    def __call__(self, text: str) -> str:
        """Summarise ``text`` synchronously."""
        if in_anyio_worker_thread():
            return anyio.from_thread.run(self.acall, text)
        return _as_text(self.chain.invoke(text))

    async def acall(self, text: str) -> str:
        """Summarise ``text`` without blocking the event loop."""
        return _as_text(await self.chain.ainvoke(text))

    def __repr__(self) -> str:
        return f"LangChainLLM({describe_chain(self.chain)})"
