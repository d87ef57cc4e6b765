"""Chart data of the experiment and compare pages: aligned, downsampled histories and
overlaid latency histograms."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from importlib import resources

from hypothesis import given
from hypothesis import strategies as st

from healthchain.tracking import RequestRecord
from healthchain.ui._series import SERIES_COLORS, latency_histograms, metric_series

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def points(values: dict[int, float]) -> list[tuple[int, float]]:
    return sorted(values.items())


def test_short_histories_are_aligned_on_the_union_of_steps() -> None:
    a = points({0: 1.0, 2: 3.0})
    b = points({1: 5.0, 2: math.nan, 3: math.inf})
    series = metric_series([a, b, []])
    assert series == {
        "x": [0, 1, 2, 3],
        "ys": [[1.0, None, 3.0, None], [None, 5.0, None, None], [None] * 4],
        "downsampled": False,
    }


def test_the_last_point_of_a_repeated_step_is_its_value() -> None:
    assert metric_series([[(0, 1.0), (0, 2.0), (1, 3.0)]])["ys"] == [[2.0, 3.0]]


@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=11, max_size=300),
    st.integers(min_value=4, max_value=10),
)
def test_downsampling_keeps_each_bucket_extremes_within_the_limit(
    values: list[float], limit: int
) -> None:
    series = metric_series([points(dict(enumerate(values)))], limit=limit)
    assert series["downsampled"]
    assert len(series["x"]) <= limit and series["x"] == sorted(series["x"])
    kept = series["ys"][0]
    assert max(values) in kept and min(values) in kept
    assert set(kept) <= set(values)


def test_downsampled_runs_share_one_x_axis() -> None:
    a = points({s: float(s) for s in range(100)})
    b = points({s: -float(s) for s in range(50, 150)})
    series = metric_series([a, b], limit=20)
    assert series["downsampled"] and len(series["x"]) <= 20
    assert all(len(y) == len(series["x"]) for y in series["ys"])
    assert max(v for v in series["ys"][0] if v is not None) == 99.0
    assert min(v for v in series["ys"][1] if v is not None) == -149.0


def test_latency_histograms_count_every_run_in_the_same_bins() -> None:
    def run(latencies: list[float]) -> list[RequestRecord]:
        return [RequestRecord(i, T0, v, 200) for i, v in enumerate(latencies)]

    data = latency_histograms([run([10.0, 20.0, 30.0, 40.0]), run([40.0]), []])
    assert data["width"] == 15.0 and data["x"] == [17.5, 32.5]
    assert data["counts"] == [[2, 2], [0, 1], [0, 0]]
    assert latency_histograms([[], []]) == {"x": [], "counts": [[], []], "width": 0.0}
    single = latency_histograms([run([5.0, 5.0])])
    assert single["counts"] == [[2, 0]] and single["width"] == 1.0


def test_the_swatches_are_the_chart_colours() -> None:
    css = resources.files("healthchain.ui").joinpath("static/pages.css").read_text("utf-8")
    swatches = dict(re.findall(r"\.swatch-(\d+) \{ background: (#\w+); \}", css))
    assert [swatches[str(i)] for i in range(len(SERIES_COLORS))] == list(SERIES_COLORS)
