"""Pipeline: ordering rules, decorator use, remove/replace, recorded components, running."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from typing import Any

import anyio.to_thread
import pytest

import healthchain.pipeline
from healthchain.pipeline import (
    InvalidComponentError,
    Node,
    NodeNotFoundError,
    Pipeline,
    PipelineConfigError,
    PipelineError,
    PipelineRunError,
)


def add_one(x: int) -> int:
    return x + 1


def double(x: int) -> int:
    return x * 2


def square(x: int) -> int:
    return x * x


class Subtract:
    """A callable class component."""

    def __init__(self, amount: int = 3) -> None:
        self.amount = amount

    def __call__(self, x: int) -> int:
        return x - self.amount


async def async_triple(x: int) -> int:
    await asyncio.sleep(0)
    return x * 3


def names(pipeline: Pipeline[Any, Any]) -> list[str]:
    return [node.name for node in pipeline.nodes]


def test_exports_are_pinned() -> None:
    assert sorted(healthchain.pipeline.__all__) == sorted(
        [
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
    )
    for name in healthchain.pipeline.__all__:
        member = getattr(healthchain.pipeline, name)
        assert member.__doc__, f"healthchain.pipeline.{name} has no docstring"


def test_default_appends_in_order_and_runs_in_order() -> None:
    pipeline: Pipeline[int, int] = Pipeline()
    pipeline.add_node(add_one, stage="a")
    pipeline.add_node(double, stage="b")

    assert names(pipeline) == ["add_one", "double"]
    assert pipeline(1) == 4
    assert len(pipeline) == 2


def test_first_goes_to_the_front() -> None:
    pipeline: Pipeline[int, int] = Pipeline()
    pipeline.add_node(add_one, stage="a")
    pipeline.add_node(double, stage="a", position="first")
    pipeline.add_node(square, stage="a", position="first")

    assert names(pipeline) == ["square", "double", "add_one"]
    assert pipeline(3) == 19


def test_last_stays_last_when_defaults_are_added_later() -> None:
    pipeline: Pipeline[int, int] = Pipeline()
    pipeline.add_node(square, stage="out", position="last")
    pipeline.add_node(add_one, stage="in")
    pipeline.add_node(double, stage="in")

    assert names(pipeline) == ["add_one", "double", "square"]
    assert pipeline(1) == 16


def test_a_later_last_goes_after_an_earlier_last() -> None:
    pipeline: Pipeline[int, int] = Pipeline()
    pipeline.add_node(square, stage="out", position="last")
    pipeline.add_node(double, stage="out", position="last")
    pipeline.add_node(add_one, stage="in")

    assert names(pipeline) == ["add_one", "square", "double"]


def test_before_and_after_a_reference() -> None:
    pipeline: Pipeline[int, int] = Pipeline()
    pipeline.add_node(add_one, stage="a")
    pipeline.add_node(square, stage="a")
    pipeline.add_node(double, stage="a", position="before", reference="square")
    pipeline.add_node(Subtract, stage="a", position="after", reference="add_one")

    assert names(pipeline) == ["add_one", "Subtract", "double", "square"]
    assert pipeline(5) == 36


def test_add_node_as_a_decorator_returns_the_function() -> None:
    pipeline: Pipeline[str, str] = Pipeline()

    @pipeline.add_node(stage="preprocessing")
    def strip(text: str) -> str:
        return text.strip()

    @pipeline.add_node(stage="formatting", name="shout", position="last")
    def upper(text: str) -> str:
        return text.upper()

    @pipeline.add_node(stage="preprocessing", position="after", reference="strip")
    def exclaim(text: str) -> str:
        return text + "!"

    assert strip("  x ") == "x"
    assert names(pipeline) == ["strip", "exclaim", "shout"]
    assert pipeline("  hi ") == "HI!"


def test_types_names_and_stages_are_recorded() -> None:
    pipeline: Pipeline[int, int] = Pipeline()
    pipeline.add_node(add_one, stage="pre")
    pipeline.add_node(Subtract, stage="model")  # a class: instantiated
    pipeline.add_node(Subtract(1), stage="model", name="minus_one")
    pipeline.add_node(functools.partial(pow, exp=2), stage="post", name="pow2")
    pipeline.add_node(lambda x: x, stage="post", name="identity")

    assert pipeline.tracked_components() == [
        {"name": "add_one", "type": "function", "stage": "pre"},
        {"name": "Subtract", "type": "Subtract", "stage": "model"},
        {"name": "minus_one", "type": "Subtract", "stage": "model"},
        {"name": "pow2", "type": "function", "stage": "post"},
        {"name": "identity", "type": "function", "stage": "post"},
    ]
    assert pipeline.stages == {
        "pre": ["add_one"],
        "model": ["Subtract", "minus_one"],
        "post": ["pow2", "identity"],
    }
    assert pipeline(4) == 1


def test_config_is_json_and_carries_positions() -> None:
    pipeline: Pipeline[int, int] = Pipeline()
    pipeline.add_node(double, stage="b", position="last")
    pipeline.add_node(add_one, stage="a")
    config = pipeline.config

    assert json.loads(json.dumps(config)) == config
    assert config == {
        "pipeline": "Pipeline",
        "stages": {"a": ["add_one"], "b": ["double"]},
        "components": [
            {"name": "add_one", "type": "function", "stage": "a", "position": 0},
            {"name": "double", "type": "function", "stage": "b", "position": 1},
        ],
    }


def test_nodes_are_plain_records() -> None:
    pipeline: Pipeline[int, int] = Pipeline()
    pipeline.add_node(add_one, stage="a")
    (node,) = pipeline.nodes

    assert isinstance(node, Node)
    assert (node.name, node.type, node.stage, node.component) == (
        "add_one",
        "function",
        "a",
        add_one,
    )


def test_remove_and_replace() -> None:
    pipeline: Pipeline[int, int] = Pipeline()
    pipeline.add_node(add_one, stage="a")
    pipeline.add_node(double, stage="b")
    pipeline.add_node(square, stage="c")
    assert pipeline(1) == 16

    pipeline.remove("double")
    assert names(pipeline) == ["add_one", "square"]
    assert pipeline(1) == 4

    pipeline.replace("add_one", Subtract)
    assert pipeline.tracked_components()[0] == {"name": "add_one", "type": "Subtract", "stage": "a"}
    assert pipeline(5) == 4


def test_build_freezes_the_current_nodes() -> None:
    pipeline: Pipeline[int, int] = Pipeline()
    pipeline.add_node(add_one, stage="a")
    run = pipeline.build()
    pipeline.add_node(double, stage="a")

    assert run(1) == 2
    assert pipeline(1) == 4


# -- errors ------------------------------------------------------------------------------


def test_duplicate_name_is_rejected_naming_it() -> None:
    pipeline: Pipeline[int, int] = Pipeline()
    pipeline.add_node(add_one, stage="a")
    with pytest.raises(PipelineConfigError, match="'add_one' is already in the pipeline"):
        pipeline.add_node(add_one, stage="b")
    pipeline.add_node(add_one, stage="b", name="add_another")
    assert pipeline(0) == 2


def test_reference_errors() -> None:
    pipeline: Pipeline[int, int] = Pipeline()
    pipeline.add_node(add_one, stage="a")
    with pytest.raises(NodeNotFoundError, match=r"no node called 'missing'.*\['add_one'\]"):
        pipeline.add_node(double, stage="a", position="after", reference="missing")
    with pytest.raises(PipelineConfigError, match="'before' needs reference"):
        pipeline.add_node(double, stage="a", position="before")
    with pytest.raises(PipelineConfigError, match="reference 'add_one' is only used with"):
        pipeline.add_node(double, stage="a", reference="add_one")
    assert names(pipeline) == ["add_one"]


def test_bad_position_stage_and_component() -> None:
    pipeline: Pipeline[int, int] = Pipeline()
    with pytest.raises(PipelineConfigError, match="position 'middle' is not one of"):
        pipeline.add_node(add_one, stage="a", position="middle")  # type: ignore[call-overload]
    with pytest.raises(PipelineConfigError, match="stage '' must be"):
        pipeline.add_node(add_one, stage="")
    with pytest.raises(InvalidComponentError, match="component 42 is not callable") as exc_info:
        pipeline.add_node(42, stage="a")  # type: ignore[call-overload]
    assert isinstance(exc_info.value, TypeError)
    assert len(pipeline) == 0


def test_remove_and_replace_unknown_names() -> None:
    pipeline: Pipeline[int, int] = Pipeline()
    with pytest.raises(NodeNotFoundError, match="'ghost'") as exc_info:
        pipeline.remove("ghost")
    assert isinstance(exc_info.value, LookupError)
    with pytest.raises(NodeNotFoundError, match="'ghost'"):
        pipeline.replace("ghost", add_one)


def test_empty_pipeline_cannot_run() -> None:
    with pytest.raises(PipelineConfigError, match="no nodes"):
        Pipeline()(1)


def test_component_errors_propagate_with_a_note_naming_the_node() -> None:
    pipeline: Pipeline[int, int] = Pipeline()

    @pipeline.add_node(stage="model")
    def explode(x: int) -> int:
        raise ZeroDivisionError(x)

    with pytest.raises(ZeroDivisionError) as exc_info:
        pipeline(1)
    assert "raised in pipeline node 'explode' (stage 'model')" in exc_info.value.__notes__


# -- sync and async ----------------------------------------------------------------------


def test_async_component_runs_when_called_synchronously_without_a_loop() -> None:
    pipeline: Pipeline[int, int] = Pipeline()
    pipeline.add_node(add_one, stage="a")
    pipeline.add_node(async_triple, stage="b")

    assert pipeline.tracked_components()[1]["type"] == "function"
    assert pipeline(1) == 6


@pytest.mark.anyio
async def test_sync_call_from_a_worker_thread_runs_async_components_on_the_loop() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    async def record_thread(x: int) -> int:
        seen.append(threading.get_ident())
        return x

    pipeline: Pipeline[int, int] = Pipeline()
    pipeline.add_node(add_one, stage="a")
    pipeline.add_node(record_thread, stage="b")
    pipeline.add_node(async_triple, stage="c")

    assert await anyio.to_thread.run_sync(pipeline, 1) == 6
    assert seen == [loop_thread]


@pytest.mark.anyio
async def test_sync_call_on_the_loop_with_async_components_says_to_await() -> None:
    pipeline: Pipeline[int, int] = Pipeline()
    pipeline.add_node(async_triple, stage="a")
    with pytest.raises(PipelineRunError, match=r"await pipeline\.acall") as exc_info:
        pipeline(1)
    assert isinstance(exc_info.value, PipelineError)


@pytest.mark.anyio
async def test_acall_awaits_async_and_threads_sync_components() -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def sync_step(x: int) -> int:
        threads.append(threading.get_ident())
        return x + 1

    class WithAcall:
        def __call__(self, x: int) -> int:
            raise AssertionError("acall() should be used from async code")

        async def acall(self, x: int) -> int:
            return x * 10

    pipeline: Pipeline[int, int] = Pipeline()
    pipeline.add_node(sync_step, stage="a")
    pipeline.add_node(async_triple, stage="b")
    pipeline.add_node(WithAcall, stage="c")

    assert await pipeline.acall(1) == 60
    assert threads
    assert loop_thread not in threads


@pytest.mark.anyio
async def test_acall_errors_carry_the_note_and_empty_pipelines_fail() -> None:
    pipeline: Pipeline[int, int] = Pipeline()
    with pytest.raises(PipelineConfigError, match="no nodes"):
        await pipeline.acall(1)

    async def boom(x: int) -> int:
        raise ValueError("bad")

    pipeline.add_node(boom, stage="s")
    with pytest.raises(ValueError, match="bad") as exc_info:
        await pipeline.acall(1)
    assert exc_info.value.__notes__ == ["raised in pipeline node 'boom' (stage 's')"]


def test_repr_lists_nodes_and_stages() -> None:
    pipeline: Pipeline[int, int] = Pipeline()
    pipeline.add_node(add_one, stage="a")
    pipeline.add_node(double, stage="b")
    assert repr(pipeline) == "Pipeline(add_one[a], double[b])"
