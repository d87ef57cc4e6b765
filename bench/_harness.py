"""How every benchmark script times, summarises and reports: one style for all of them.

- time with :func:`clock` (``time.perf_counter``); only the cold-start
  scripts compare timestamps across processes, and use the system-wide ``time.monotonic``;
  a measurement repeated after a warm-up, with a :class:`Stopwatch`;
- summarise repeats with :func:`median`, latency samples with :func:`percentile`;
- read figures out of the raw results with :func:`field_of`, and put them in a table's
  :class:`Row` with :func:`ratio` and the ``fmt_*`` functions;
- say where and when with :func:`machine` (collected before the run) and
  :func:`machine_section` (the markdown every results file ends with), from :mod:`_machine`;
- take the options the scripts share from :func:`bench_parser` (``--quick``, ``--out``) and
  :func:`add_run_options` with :func:`postgres_server` (``--tmp``, ``--postgres``, ``--only``);
- write with :func:`write_results`: ``--quick`` runs write nothing unless ``--out`` is given
  (a file of two sections, SQLite and PostgreSQL: :func:`write_sections`).

Stdlib only, and the heavier modules are imported inside the functions that need them, so
the measured subprocesses (``_ours.py``, ``_mlflow.py``) add nothing to their RSS by
importing it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from _machine import finish, machine, machine_section, source_state

if TYPE_CHECKING:
    import argparse

__all__ = [
    "SECOND_SECTION",
    "Row",
    "Stopwatch",
    "add_run_options",
    "bench_parser",
    "clock",
    "field_of",
    "finish",
    "fmt_ms",
    "fmt_num",
    "fmt_rate",
    "fmt_x",
    "machine",
    "machine_section",
    "med",
    "median",
    "merge_sections",
    "percentile",
    "ratio",
    "spread",
    "postgres_server",
    "raw_section",
    "results_path",
    "source_state",
    "write_results",
    "write_sections",
]

clock = time.perf_counter
"""The clock of every figure: monotonic, the highest resolution available."""


def median(values: Iterable[float]) -> float:
    """The summary of repeated measurements: the median, robust to one noisy repeat."""
    return statistics.median(values)


def percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of already sorted values, nearest rank: ``p99`` is
    ``percentile(ordered, 0.99)``."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def med(values: list[float]) -> float | None:
    """The median of the figures that came (None where one failed); None if none did."""
    values = [v for v in values if v is not None]
    return median(values) if values else None


def field_of(entries: list[Any], *path: str) -> list[float]:
    """The number at ``path`` in each raw entry's result (or in the entry itself), where
    there is one: a failed measurement simply adds nothing."""
    values = []
    for entry in entries:
        node = entry.get("result") if entry and "result" in entry else entry
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, int | float):
            values.append(float(node))
    return values


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or None when either is missing or ``b`` is 0."""
    return None if a is None or b is None or b == 0 else a / b


def spread(values: list[float]) -> str:
    """``median, max`` of ``values`` (the other processes' CPU use, say)."""
    return "n/a" if not values else f"{median(values):.2f}, {max(values):.2f}"


def fmt_rate(v: float | None) -> str:
    """A rate: ``1,234/s``."""
    return "n/a" if v is None else f"{v:,.0f}/s"


def fmt_ms(v: float | None) -> str:
    """Seconds, shown in ms under one second."""
    return "n/a" if v is None else f"{v * 1e3:,.1f} ms" if v < 1 else f"{v:,.2f} s"


def fmt_x(v: float | None) -> str:
    """A ratio: ``12.3x``."""
    return "n/a" if v is None else f"{v:,.1f}x"


def fmt_num(v: float | None, unit: str) -> str:
    """A number with its unit, two decimals."""
    return "n/a" if v is None else f"{v:.2f} {unit}"


class Row(NamedTuple):
    """One row of a results table: what, our figure, the peer's, their ratio, the goal,
    and whether it was met (None: not measured)."""

    target: str
    ours: str
    peer: str
    ratio: str
    goal: str
    ok: bool | None
    note: str = ""


class Stopwatch:
    """The seconds of each ``with`` block, the first a warm-up that no figure counts::

    watch = Stopwatch()
    for _ in range(reps + 1):
        with watch:
            rows = await tracker.list_experiments(...)
        assert len(rows) == expected
    return watch.summary()
    """

    def __init__(self) -> None:
        self.times: list[float] = []

    def __enter__(self) -> Stopwatch:
        self._t0 = clock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.times.append(clock() - self._t0)

    @property
    def measured(self) -> list[float]:
        """The seconds of every block after the warm-up."""
        return self.times[1:]

    def summary(self) -> dict[str, Any]:
        """``times`` (after the warm-up) and their median, ``seconds``."""
        return {"times": self.measured, "seconds": median(self.measured)}

    def rates(self, per_block: float) -> dict[str, Any]:
        """``rates``: ``per_block`` (calls, points) per second of each block after the
        warm-up, and their median, ``rate``."""
        rates = [per_block / seconds for seconds in self.measured]
        return {"rates": rates, "rate": median(rates)}


def raw_section(title: str, raw: Any) -> list[str]:
    """The markdown lines of a results file's raw figures: a folded JSON block."""
    import json

    body = json.dumps(raw, indent=1, default=str)
    return [f"## {title}", "", "<details><summary>JSON</summary>", "", "```json", body, "```",
            "", "</details>", ""]  # fmt: skip


def results_path(out: Path | None, quick: bool, default: Path) -> Path | None:
    """Where a run writes: ``--out`` if given, else ``default`` (a ``--quick`` run: nowhere)."""
    return out if out is not None else (None if quick else default)


def bench_parser(description: str, default_out: Path) -> argparse.ArgumentParser:
    """A script's parser with ``--quick`` (a small smoke variant) and ``--out`` (default
    ``default_out``; a ``--quick`` run writes nothing unless it is given: :func:`results_path`)."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small smoke variant")
    parser.add_argument(
        "--out",
        type=Path,
        help=f"where to write (default bench/{default_out.name}; --quick writes nothing "
        "unless given)",
    )
    return parser


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options of a script measuring subprocesses on SQLite files and, given a server,
    on PostgreSQL databases: ``--tmp``, ``--postgres``, ``--only`` (read with
    :func:`postgres_server`)."""
    from _pg import POSTGRES_URL_ENV

    parser.add_argument("--tmp", type=Path, help="directory for the scratch databases")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help=f"PostgreSQL server for the PostgreSQL run (default ${POSTGRES_URL_ENV}; "
        "databases hcbench_* are created there and dropped)",
    )
    parser.add_argument(
        "--only", choices=("sqlite", "postgres"), help="run one part; the file keeps the other"
    )


def postgres_server(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """The server of the PostgreSQL part (``--postgres``, else the environment), or None
    when that part does not run (``--only sqlite``, or no server: said on stdout); no
    server with ``--only postgres`` is a usage error."""
    from _pg import POSTGRES_URL_ENV, server_url

    server = server_url(args.postgres)
    if args.only == "postgres" and server is None:
        parser.error(f"--only postgres needs --postgres URL or {POSTGRES_URL_ENV}")
    if args.only == "sqlite":
        return None
    if server is None:
        print(f"PostgreSQL run skipped: no server (set {POSTGRES_URL_ENV} or --postgres URL)")
    return server


def write_results(path: Path | None, text: str) -> None:
    """Print the results, and write them to ``path`` unless it is None."""
    print(text)
    if path is not None:
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")


SECOND_SECTION = "<!-- PostgreSQL section: measured with a server URL -->"
"""The line a results file's PostgreSQL section starts with (after the SQLite part)."""


def merge_sections(path: Path, first: str | None, second: str | None) -> str:
    """The text of a results file with two parts, the SQLite one and the PostgreSQL one
    (starting with :data:`SECOND_SECTION`): a part not measured (None) is kept from the
    file at ``path`` as it was."""
    old_first, old_second = "", ""
    if path.exists():
        old = path.read_text(encoding="utf-8")
        old_first, found, rest = old.partition(SECOND_SECTION)
        old_second = found + rest
    head = first if first is not None else old_first
    tail = second if second is not None else old_second
    return head.rstrip("\n") + "\n\n" + tail if tail else head


def write_sections(path: Path | None, first: str | None, second: str | None) -> None:
    """Write a two-part results file (:func:`merge_sections`) unless ``path`` is None."""
    if path is not None:
        path.write_text(merge_sections(path, first, second), encoding="utf-8")
        print(f"wrote {path}")
