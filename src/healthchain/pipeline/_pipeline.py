"""``Pipeline``: an ordered list of named components, each in a stage, run one after another.

Ordering rules for :meth:`Pipeline.add_node`:

- ``"default"``: after every node, except nodes added with ``"last"``, which stay at the end.
- ``"first"``: at the front (a later ``"first"`` goes in front of an earlier one).
- ``"last"``: at the very end, and kept there by later ``"default"`` nodes.
- ``"before"`` / ``"after"``: next to the node named by ``reference``.

What the tracker records: :meth:`Pipeline.tracked_components` gives each node's name, type
(its class name, or ``"function"``) and stage, in order (the position is the index), and
:attr:`Pipeline.config` a JSON-serialisable description of the whole pipeline.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, cast, overload

import anyio.from_thread
import anyio.to_thread

from healthchain._callables import is_async_callable

from ._exceptions import (
    InvalidComponentError,
    NodeNotFoundError,
    PipelineConfigError,
    PipelineRunError,
)

__all__ = ["Node", "Pipeline", "Position", "in_anyio_worker_thread"]

InT = TypeVar("InT")
OutT = TypeVar("OutT")
C = TypeVar("C", bound=Callable[..., Any])

Position = Literal["default", "first", "last", "before", "after"]
_POSITIONS: tuple[str, ...] = ("default", "first", "last", "before", "after")


def _noop() -> None:
    return None


def in_anyio_worker_thread() -> bool:
    """Whether this thread is an anyio worker thread whose event loop can run coroutines."""
    try:
        anyio.from_thread.run_sync(_noop)
    except RuntimeError:  # anyio's NoEventLoopError, or its RuntimeError before 4.11
        return False
    return True


def _component_type(component: Any) -> str:
    if inspect.isfunction(component) or inspect.isbuiltin(component):
        return "function"
    if isinstance(component, functools.partial):
        return _component_type(component.func)
    if inspect.ismethod(component):
        return "method"
    return type(component).__name__


def _default_name(component: Any) -> str:
    if isinstance(component, functools.partial):
        return _default_name(component.func)
    name = getattr(component, "__name__", None)
    return name if isinstance(name, str) else type(component).__name__


@dataclass(frozen=True, slots=True)
class Node:
    """One component of a pipeline, with the name, type and stage the tracker records."""

    name: str
    """Unique name within the pipeline."""
    stage: str
    """The processing stage the component belongs to, e.g. ``"preprocessing"``."""
    type: str
    """The component's class name, or ``"function"`` for a plain function."""
    component: Callable[[Any], Any]
    """The callable that runs; it takes the previous node's output and returns its own."""
    pinned_last: bool = False
    """Added with ``position="last"``: later ``"default"`` nodes go before it."""

    async def arun(self, data: Any) -> Any:
        """Run the component from async code: awaited if async, in a worker thread if not."""
        async_method = getattr(self.component, "acall", None)
        if async_method is not None and is_async_callable(async_method):
            return await async_method(data)
        if is_async_callable(self.component):
            return await self.component(data)
        return await anyio.to_thread.run_sync(self.component, data)

    def run(self, data: Any) -> Any:
        """Run the component from sync code; an async one runs on the caller's event loop
        when called from an anyio worker thread, or on a new loop when there is none."""
        if not is_async_callable(self.component):
            return self.component(data)
        if in_anyio_worker_thread():
            return anyio.from_thread.run(self.component, data)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.component(data))
        raise PipelineRunError(
            f"node {self.name!r} is async and the pipeline was called synchronously on an "
            "event loop's thread; use 'await pipeline.acall(data)' in async code"
        )


class Pipeline(Generic[InT, OutT]):
    """Named components in stages, run in order: each gets the previous one's output.

    Add components with :meth:`add_node`, directly or as a decorator::

        pipeline = Pipeline()

        @pipeline.add_node(stage="preprocessing")
        def clean(text: str) -> str:
            return text.strip()

        pipeline.add_node(str.upper, stage="formatting", name="shout")
        assert pipeline("  hi ") == "HI"
    """

    def __init__(self) -> None:
        self._nodes: list[Node] = []
        self._built: Callable[[InT], OutT] | None = None

    # -- building -------------------------------------------------------------------------

    @overload
    def add_node(
        self,
        component: C,
        *,
        stage: str,
        name: str | None = None,
        position: Position = "default",
        reference: str | None = None,
    ) -> C: ...

    @overload
    def add_node(
        self,
        component: None = None,
        *,
        stage: str,
        name: str | None = None,
        position: Position = "default",
        reference: str | None = None,
    ) -> Callable[[C], C]: ...

    def add_node(
        self,
        component: C | None = None,
        *,
        stage: str,
        name: str | None = None,
        position: Position = "default",
        reference: str | None = None,
    ) -> C | Callable[[C], C]:
        """Add ``component`` in ``stage`` at ``position``; without a component, a decorator.

        A class is instantiated without arguments. The name defaults to the function's or
        class's name and must be unique. ``reference`` names the node that ``"before"`` or
        ``"after"`` is relative to. Returns the component (or the decorator).
        """
        if component is None:

            def decorator(func: C) -> C:
                self.add_node(func, stage=stage, name=name, position=position, reference=reference)
                return func

            return decorator

        node = self._make_node(component, stage=stage, name=name, position=position)
        self._nodes.insert(self._insertion_index(position, reference), node)
        self._built = None
        return component

    def remove(self, name: str) -> None:
        """Remove the node called ``name``."""
        del self._nodes[self._index(name)]
        self._built = None

    def replace(self, name: str, component: Callable[..., Any]) -> None:
        """Put ``component`` in place of the node called ``name``, keeping name and stage."""
        index = self._index(name)
        old = self._nodes[index]
        self._nodes[index] = self._make_node(
            component, stage=old.stage, name=old.name, position="default", existing=old.name
        )
        self._built = None

    def _make_node(
        self,
        component: Any,
        *,
        stage: str,
        name: str | None,
        position: str,
        existing: str | None = None,
    ) -> Node:
        if inspect.isclass(component):
            component = component()
        if not callable(component):
            raise InvalidComponentError(
                f"component {component!r} is not callable; pass a function, a callable "
                "object or a class whose instances are callable"
            )
        if not isinstance(stage, str) or not stage:
            raise PipelineConfigError(f"stage {stage!r} must be a non-empty string")
        if position not in _POSITIONS:
            raise PipelineConfigError(
                f"position {position!r} is not one of {', '.join(map(repr, _POSITIONS))}"
            )
        node_name = name if name is not None else _default_name(component)
        if not node_name:
            raise PipelineConfigError(f"node name {node_name!r} must be a non-empty string")
        if node_name != existing and any(node.name == node_name for node in self._nodes):
            raise PipelineConfigError(
                f"a node called {node_name!r} is already in the pipeline; pass name=... "
                "to add another one, or use replace()"
            )
        return Node(
            name=node_name,
            stage=stage,
            type=_component_type(component),
            component=component,
            pinned_last=position == "last",
        )

    def _insertion_index(self, position: str, reference: str | None) -> int:
        if position in ("before", "after"):
            if reference is None:
                raise PipelineConfigError(
                    f"position {position!r} needs reference=<name of an existing node>"
                )
            index = self._index(reference)
            return index if position == "before" else index + 1
        if reference is not None:
            raise PipelineConfigError(
                f"reference {reference!r} is only used with position 'before' or 'after', "
                f"not {position!r}"
            )
        if position == "first":
            return 0
        if position == "last":
            return len(self._nodes)
        pinned = [i for i, node in enumerate(self._nodes) if node.pinned_last]
        return pinned[0] if pinned else len(self._nodes)

    def _index(self, name: str) -> int:
        for index, node in enumerate(self._nodes):
            if node.name == name:
                return index
        names = [node.name for node in self._nodes]
        raise NodeNotFoundError(f"no node called {name!r} in the pipeline; its nodes are {names!r}")

    # -- inspecting -----------------------------------------------------------------------

    @property
    def nodes(self) -> tuple[Node, ...]:
        """The nodes in run order."""
        return tuple(self._nodes)

    @property
    def stages(self) -> dict[str, list[str]]:
        """Node names by stage, stages in order of their first node."""
        stages: dict[str, list[str]] = {}
        for node in self._nodes:
            stages.setdefault(node.stage, []).append(node.name)
        return stages

    def tracked_components(self) -> list[dict[str, str | None]]:
        """What the tracker records: ``{"name", "type", "stage"}`` per node, in run order."""
        return [{"name": node.name, "type": node.type, "stage": node.stage} for node in self._nodes]

    @property
    def config(self) -> dict[str, Any]:
        """A JSON-serialisable description of the pipeline, stored as ``pipeline_config``."""
        return {
            "pipeline": type(self).__name__,
            "stages": self.stages,
            "components": [
                {**component, "position": position}
                for position, component in enumerate(self.tracked_components())
            ],
            **self._config_extras(),
        }

    def _config_extras(self) -> dict[str, Any]:
        """JSON-serialisable settings a subclass adds to :attr:`config`."""
        return {}

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        steps = ", ".join(f"{node.name}[{node.stage}]" for node in self._nodes)
        return f"{type(self).__name__}({steps})"

    # -- running --------------------------------------------------------------------------

    def build(self) -> Callable[[InT], OutT]:
        """Freeze the current nodes into a function that runs them in order."""
        nodes: Sequence[Node] = tuple(self._nodes)
        if not nodes:
            raise PipelineConfigError("the pipeline has no nodes; add some with add_node()")

        def run(data: InT) -> OutT:
            value: Any = data
            for node in nodes:
                try:
                    value = node.run(value)
                except Exception as exc:
                    exc.add_note(f"raised in pipeline node {node.name!r} (stage {node.stage!r})")
                    raise
            return cast(OutT, value)

        return run

    def __call__(self, data: InT) -> OutT:
        """Run every node in order on ``data`` (sync; async nodes are driven to completion)."""
        if self._built is None:
            self._built = self.build()
        return self._built(data)

    async def acall(self, data: InT) -> OutT:
        """Run every node in order from async code, without blocking the event loop."""
        nodes = tuple(self._nodes)
        if not nodes:
            raise PipelineConfigError("the pipeline has no nodes; add some with add_node()")
        value: Any = data
        for node in nodes:
            try:
                value = await node.arun(value)
            except Exception as exc:
                exc.add_note(f"raised in pipeline node {node.name!r} (stage {node.stage!r})")
                raise
        return cast(OutT, value)
