"""``experiments show``'s params, latest metrics and scores tables."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from healthchain.sandbox._run_metrics import score_means  # the run's own rule for means
from healthchain.tracking import Experiment

from ._output import metric_text, param_text

__all__ = ["measures_tables"]


def _table(title: str, *headers: str) -> Table:
    table = Table(title=title, title_justify="left")
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right", overflow="fold")
    return table


def measures_tables(
    experiment: Experiment, scores: Iterable[Mapping[str, float]]
) -> list[RenderableType]:
    """Params, latest metrics and each score's mean (NaN values left out, as the run's
    own score metrics leave them out), or a line saying there are none."""
    out: list[RenderableType] = []
    if experiment.params:
        params = _table("params", "param", "value")
        params.columns[1].justify = "left"
        for key, value in sorted(experiment.params.items()):
            params.add_row(Text(key), Text(param_text(value)))
        out.append(params)
    else:
        out.append("params: none recorded")
    if experiment.metrics:
        metrics = _table("latest metrics", "metric", "value")
        for key, number in sorted(experiment.metrics.items()):
            metrics.add_row(Text(key), metric_text(number))
        out.append(metrics)
    else:
        out.append("metrics: none recorded")
    every = list(scores)
    if every:
        table = _table("scores over the requests", "score", "mean", "requests scored")
        for name, mean in sorted(score_means(every).items()):
            scored = sum(name in s and not math.isnan(s[name]) for s in every)
            table.add_row(Text(name), metric_text(mean), f"{scored:,}")
        out.append(table)
    else:
        out.append("scores: none recorded")
    return out
