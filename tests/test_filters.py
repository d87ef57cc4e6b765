"""Metric and param filters as people type them, shared by the CLI and the dashboard."""

from __future__ import annotations

import math
import re

import pytest

from healthchain._filters import build_filters, parse_metric_filter, parse_param_filter
from healthchain.tracking import InvalidFilterError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("acc>0.5", ("acc", ">", 0.5)),
        ("acc>=0.5", ("acc", ">=", 0.5)),
        ("acc<=1", ("acc", "<=", 1.0)),
        ("acc<1e-3", ("acc", "<", 0.001)),
        ("loss!=2", ("loss", "!=", 2.0)),
        ("loss=2", ("loss", "=", 2.0)),
        (" val loss > -1.5 ", ("val loss", ">", -1.5)),
        ("latency_p95_ms<inf", ("latency_p95_ms", "<", math.inf)),
    ],
)
def test_parse_metric_filter(text: str, expected: tuple[str, str, float]) -> None:
    assert parse_metric_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "bad", "says"),
    [
        ("acc", "'acc'", "has no operator"),
        ("acc!0.5", "'!0.5'", "no known operator"),
        (">0.5", "'>0.5'", "has no metric key"),
        ("  >=1", "'  >=1'", "has no metric key"),
        ("acc>high", "'high'", "is not a number"),
        ("acc>", "''", "is not a number"),
        ("acc=>0.5", "'>0.5'", "is not a number"),
        ("acc>nan", "'nan'", "is not a number"),
    ],
)
def test_parse_metric_filter_names_the_bad_text(text: str, bad: str, says: str) -> None:
    with pytest.raises(InvalidFilterError, match=re.escape(bad)) as info:
        parse_metric_filter(text)
    assert says in str(info.value)
    assert repr(text) in str(info.value)
    assert "e.g. acc>0.5" in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model=gpt-4o", ("model", "gpt-4o")),
        ("epochs=3", ("epochs", 3)),
        ("lr=0.001", ("lr", 0.001)),
        ("cached=true", ("cached", True)),
        ("seed=null", ("seed", None)),
        ('name="3"', ("name", "3")),
        ("layers=[1, 2]", ("layers", [1, 2])),
        ("url=a=b", ("url", "a=b")),
        ("empty=", ("empty", "")),
        ("deep=" + "[" * 100_000, ("deep", "[" * 100_000)),
    ],
)
def test_parse_param_filter_reads_json_else_text(text: str, expected: tuple[str, object]) -> None:
    assert parse_param_filter(text) == expected


@pytest.mark.parametrize(("text", "says"), [("model", "has no '='"), ("=x", "has an empty key")])
def test_parse_param_filter_names_the_bad_text(text: str, says: str) -> None:
    with pytest.raises(InvalidFilterError, match=re.escape(repr(text))) as info:
        parse_param_filter(text)
    assert says in str(info.value)


def test_build_filters_with_metrics_and_params() -> None:
    assert build_filters(metrics=["acc>0.5", "loss<=1"], params=["model=x", "epochs=3"]) == {
        "metrics": {"acc": (">", 0.5), "loss": ("<=", 1.0)},
        "params": {"model": "x", "epochs": 3},
    }
    # the same param twice with the same value is one condition
    assert build_filters(params=["epochs=3", "epochs=3"]) == {"params": {"epochs": 3}}
    assert build_filters(metrics=["acc>1", "acc > 1.0"]) == {"metrics": {"acc": (">", 1.0)}}
    assert build_filters(metrics=[], params=[]) == {}


def test_build_filters_refuses_a_metric_twice_and_a_param_with_two_values() -> None:
    with pytest.raises(InvalidFilterError, match="metric 'acc' is filtered on twice") as info:
        build_filters(metrics=["acc>0.5", "acc<0.9"])
    assert "('acc>0.5' and 'acc<0.9')" in str(info.value)
    with pytest.raises(InvalidFilterError, match="param 'epochs' is filtered on twice") as info:
        build_filters(params=["epochs=3", "epochs=4"])
    assert "'epochs=3'" in str(info.value) and "'epochs=4'" in str(info.value)
