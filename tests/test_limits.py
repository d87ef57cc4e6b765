"""Documented limits on what the tracker takes, alike on SQLite and PostgreSQL.

JSON nesting depth, a tag's size, how many tags one filter matches, the range of
``limit``/``offset`` and of the dashboard's page, and the type of id arguments.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from helpers.dashboard import dashboard_client
from helpers.storage import Storage
from typer.testing import CliRunner

from healthchain.cli import app as cli_app
from healthchain.tracking import (
    AsyncExperimentTracker,
    ExperimentNotFoundError,
    ExperimentTracker,
    InvalidFilterError,
    InvalidInputError,
    RequestRecord,
)


def nested(depth: int, leaf: Any = 1) -> Any:
    """``depth`` lists, one inside the other, around ``leaf``."""
    return functools.reduce(lambda inner, _: [inner], range(depth), leaf)


def deep_dict(depth: int) -> dict[str, Any]:
    return functools.reduce(lambda inner, _: {"a": inner}, range(depth - 1), {"a": 1})


# --- item 5: JSON nested too deep ------------------------------------------------------


def test_json_nested_deeper_than_64_levels_is_refused(any_storage: Storage) -> None:
    with ExperimentTracker(any_storage.uri) as tracker:
        for deep in (nested(3000), nested(65), deep_dict(65), deep_dict(5000)):
            with pytest.raises(InvalidInputError, match="more than 64 levels deep"):
                tracker.start_experiment(tags={"deep": deep})
            with pytest.raises(InvalidFilterError, match="more than 64 levels deep"):
                tracker.list_experiments({"tags": {"deep": deep}})
        with pytest.raises(InvalidInputError, match=r"pipeline_config nests .* 64 levels"):
            tracker.start_experiment(pipeline_config={"steps": nested(3000)})
        with pytest.raises(InvalidInputError, match=r"pipeline_config nests .* 64 levels"):
            tracker.start_experiment(pipeline_config=deep_dict(65))
        cyclic: list[Any] = []
        cyclic.append(cyclic)
        with pytest.raises(InvalidInputError, match="contains itself"):
            tracker.start_experiment(tags={"cycle": cyclic})
        with pytest.raises(InvalidInputError, match="64 levels"):
            ExperimentTracker(any_storage.uri, tags={"deep": nested(2000)})
        assert tracker.list_experiments() == []  # nothing was written

        # The limit itself is stored, read back and filtered on exactly.
        experiment_id = tracker.start_experiment(
            tags={"deep": nested(64)}, pipeline_config=deep_dict(64)
        )
        found = tracker.get_experiment(experiment_id)
        assert found.tags == {"deep": nested(64)}
        assert found.pipeline_config == deep_dict(64)
        assert [e.id for e in tracker.list_experiments({"tags": {"deep": nested(64)}})] == [
            experiment_id
        ]


@pytest.mark.parametrize("depth", [65, 960, 5000])
def test_rows_nested_too_deep_by_another_writer_still_list(
    any_storage: Storage, caplog: pytest.LogCaptureFixture, depth: int
) -> None:
    # 65: past the limit; 960: decodes, but encoders recursing on it would fail when
    # rendering; 5000: the decoder itself fails.
    with ExperimentTracker(any_storage.uri) as tracker:
        ordinary = tracker.start_experiment("ordinary", tags={"a": 1})
        odd = tracker.start_experiment("odd", tags={"a": 1}, components=[{"name": "x"}])
    deep = "[" * depth + "1" + "]" * depth  # json.dumps itself cannot write 5000
    any_storage.query(
        "UPDATE experiments SET tags = ?, pipeline_config = ?, components = ? WHERE id = ?",
        f'{{"deep": {deep}}}',
        f'{{"deep": {deep}}}',
        deep,
        odd,
    )
    with (
        caplog.at_level(logging.WARNING, "healthchain.tracking"),
        ExperimentTracker(any_storage.uri) as tracker,
    ):
        listed = {e.id: e for e in tracker.list_experiments()}
        assert set(listed) == {ordinary, odd}
        assert listed[ordinary].tags == {"a": 1}
        assert (listed[odd].tags, listed[odd].pipeline_config) == ({}, None)
        assert listed[odd].components == ()
        assert tracker.get_experiment(odd).name == "odd"
    for args in (["list", "--format", "json"], ["show", odd], ["export", "-o", "-"]):
        result = CliRunner().invoke(
            cli_app, ["experiments", *args, "--storage-uri", any_storage.uri]
        )
        assert result.exit_code == 0, result.output
    assert f"experiment {odd}: its tags JSON cannot be read (nested too deep)" in caplog.text


def test_rows_with_malformed_json_by_another_writer_still_list(any_storage: Storage) -> None:
    with ExperimentTracker(any_storage.uri) as tracker:
        odd = tracker.start_experiment("odd", tags={"a": 1}, components=[{"name": "x"}])
    if any_storage.kind == "sqlite":  # PostgreSQL's json type refuses text that is not JSON
        any_storage.query("UPDATE experiments SET tags = '{\"a\": ' WHERE id = ?", odd)
    any_storage.query("UPDATE experiments SET components = '[1, [2]]' WHERE id = ?", odd)
    with ExperimentTracker(any_storage.uri) as tracker:
        (found,) = tracker.list_experiments()
        assert (found.id, found.components) == (odd, ())
        assert found.tags == ({} if any_storage.kind == "sqlite" else {"a": 1})


# --- item 6: limit, offset and page out of range ---------------------------------------


def test_limit_and_offset_beyond_bigint_are_refused(any_storage: Storage) -> None:
    with ExperimentTracker(any_storage.uri) as tracker:
        experiment_id = tracker.start_experiment()
        for kwargs in ({"limit": 2**70}, {"offset": 2**70}, {"limit": 2**63}, {"offset": -1}):
            with pytest.raises(InvalidInputError) as info:
                tracker.list_experiments(**kwargs)
            (name, value), *_ = kwargs.items()
            assert f"{name} must be an integer from 0 to 9,223,372,036,854,775,807" in str(
                info.value
            )
            assert str(value) in str(info.value)
        biggest = 2**63 - 1
        assert [e.id for e in tracker.list_experiments(limit=biggest)] == [experiment_id]
        assert tracker.list_experiments(offset=biggest) == []
        assert tracker.list_experiments(limit=biggest, offset=biggest) == []
        # Past 2**31, where a 32-bit bound parameter used to fail on PostgreSQL.
        assert tracker.list_experiments(limit=1, offset=2**31 + 5) == []


@pytest.mark.anyio
async def test_dashboard_pages_out_of_range_are_400_and_high_pages_empty(
    any_storage_uri: str,
) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        await tracker.start_experiment()  # the dashboard reads an existing database
    async with dashboard_client(any_storage_uri) as c:
        for page in ("99999999999999999999999", str(10**15 + 1)):
            response = await c.get("/", params={"page": page})
            assert response.status_code == 400
            assert "page must be a whole number from 1 to 1,000,000,000,000,000" in (response.text)
        for page in ("42949673", "100000000", str(10**15)):
            response = await c.get("/", params={"page": page, "per_page": "500"})
            assert response.status_code == 200, response.text
            assert "No experiments match." in response.text
        for unknown in ("a%00b", "x" * 100, "%ED%A0%80"):
            response = await c.get(f"/experiments/{unknown}")
            assert response.status_code == 404
            assert "Experiment not found" in response.text


def test_cli_limit_out_of_range_is_one_line(storage_uri: str) -> None:
    with ExperimentTracker(storage_uri) as tracker:
        tracker.start_experiment()
    result = CliRunner().invoke(
        cli_app, ["experiments", "list", "--storage-uri", storage_uri, "--limit", str(2**70)]
    )
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert "limit must be an integer from 0 to 9,223,372,036,854,775,807" in result.output


# --- item 7: many tag filters ----------------------------------------------------------


def test_more_than_32_tag_filters_are_refused(any_storage: Storage) -> None:
    tags = {f"k{i}": i for i in range(32)}
    with ExperimentTracker(any_storage.uri) as tracker:
        experiment_id = tracker.start_experiment(tags=tags)
        other = tracker.start_experiment(tags={**tags, "k31": "other"})
        assert [e.id for e in tracker.list_experiments({"tags": tags})] == [experiment_id]
        for count in (33, 70, 500):
            with pytest.raises(InvalidFilterError, match=f"has {count} tags; .* at most 32"):
                tracker.list_experiments({"tags": {f"k{i}": i for i in range(count)}})
        # Statuses are a set: repeating them does not grow the query.
        running = tracker.list_experiments({"status": ["running", "RUNNING"] * 5000})
        assert [e.id for e in running] == [other, experiment_id]


def test_cli_with_500_tags_is_one_line(storage_uri: str) -> None:
    with ExperimentTracker(storage_uri) as tracker:
        tracker.start_experiment()
    args = ["experiments", "list", "--storage-uri", storage_uri]
    for i in range(500):
        args += ["--tag", f"k{i}=v"]
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert "has 500 tags; a filter may match at most 32 tags" in result.output


# --- item 8: id arguments --------------------------------------------------------------


def _id_calls(tracker: ExperimentTracker) -> dict[str, Callable[[Any], Any]]:
    return {
        "get_experiment": tracker.get_experiment,
        "end_experiment": tracker.end_experiment,
        "list_requests": tracker.list_requests,
        "request_stats": tracker.request_stats,
        "log_requests": lambda i: tracker.log_requests(
            i, [RequestRecord(0, datetime.now(UTC), 1.0, 200)]
        ),
    }


def test_ids_of_the_wrong_type_are_invalid_input_naming_the_argument(
    any_storage: Storage,
) -> None:
    with ExperimentTracker(any_storage.uri) as tracker:
        experiment_id = tracker.start_experiment()
        for call in _id_calls(tracker).values():
            for bad in (["a"], 3, None, b"id", {"id": 1}, nested(3000)):
                with pytest.raises(InvalidInputError, match=r"experiment_id must be a string"):
                    call(bad)
        for bad_ids in ([["a"]], [experiment_id, 7], 7, None, {"a": 1}):
            with pytest.raises(InvalidInputError, match=r"experiment_id.* must be a"):
                tracker.delete_experiments(bad_ids)
        assert tracker.get_experiment(experiment_id).id == experiment_id


def test_ids_no_experiment_can_have_are_not_found(any_storage: Storage) -> None:
    with ExperimentTracker(any_storage.uri) as tracker:
        experiment_id = tracker.start_experiment()
        unknown = ["a\x00b", experiment_id + "\x00", "\ud800", "x" * 10_000, ""]
        for call in _id_calls(tracker).values():
            for bad in unknown:
                with pytest.raises(ExperimentNotFoundError):
                    call(bad)
        assert tracker.delete_experiments(unknown) == 0
        assert tracker.delete_experiments([*unknown, experiment_id]) == 1


def test_request_records_out_of_range_are_refused_naming_the_field(any_storage: Storage) -> None:
    now = datetime.now(UTC)
    with ExperimentTracker(any_storage.uri) as tracker:
        experiment_id = tracker.start_experiment()
        for record, needle in (
            (RequestRecord(2**70, now, 1.0, 200), "records[0].index must be an integer from"),
            (RequestRecord(2**31, now, 1.0, 200), "got 2147483648"),
            (RequestRecord(True, now, 1.0, 200), "records[0].index"),  # type: ignore[arg-type]
            (RequestRecord(0, now, 1.0, 2**70), "records[0].status_code must be an integer"),
            (RequestRecord(0, now, 1.0, "200"), "records[0].status_code"),  # type: ignore[arg-type]
            (RequestRecord(0, now, float("nan"), 200), "latency_ms must be a finite number"),
            (RequestRecord(0, now, float("inf"), 200), "got inf"),
            (RequestRecord(0, now, 10**400, 200), "records[0].latency_ms"),
            (RequestRecord(0, now, "x", 200), "records[0].latency_ms"),  # type: ignore[arg-type]
        ):
            with pytest.raises(InvalidInputError) as info:
                tracker.log_requests(experiment_id, [record])
            assert needle in str(info.value)
        tracker.log_requests(experiment_id, [RequestRecord(2**31 - 1, now, 10**6, 599)])
        assert [r.index for r in tracker.list_requests(experiment_id)] == [2**31 - 1]


# --- item 20: a tag's size --------------------------------------------------------------


def _incompressible(size: int) -> str:
    return secrets.token_urlsafe(size)[:size]


def test_tags_up_to_2048_bytes_are_stored_and_filtered_alike(any_storage: Storage) -> None:
    with ExperimentTracker(any_storage.uri) as tracker:
        cases = [
            {"k": _incompressible(2048 - 1 - 2)},  # key + the value's quotes: 2,048 bytes
            {_incompressible(2046): ""},
            {"é": "€" * 680},  # 2 + 3 * 680 + 2 = 2,044 bytes of UTF-8
            {"list": [_incompressible(1000), _incompressible(1000)]},
        ]
        for tags in cases:
            experiment_id = tracker.start_experiment(tags=tags)
            assert tracker.get_experiment(experiment_id).tags == tags
            assert [e.id for e in tracker.list_experiments({"tags": tags})] == [experiment_id]
            tracker.delete_experiments([experiment_id])


def test_tags_over_2048_bytes_are_refused_naming_key_and_size(any_storage: Storage) -> None:
    with ExperimentTracker(any_storage.uri) as tracker:
        for tags, size in (
            ({"k": "x" * 2046}, 2049),
            ({"note": "x" * 10_000_000}, 10_000_006),
            ({"é": "€" * 682}, 2050),
            ({"y" * 3000: None}, 3004),
        ):
            with pytest.raises(InvalidInputError) as info:
                tracker.start_experiment(tags=tags)
            message = str(info.value)
            assert f"takes {size:,} bytes" in message
            assert "at most 2,048" in message
            assert repr(next(iter(tags)))[:20] in message
            with pytest.raises(InvalidFilterError, match="at most 2,048"):
                tracker.list_experiments({"tags": tags})
            with pytest.raises(InvalidInputError, match="at most 2,048"):
                ExperimentTracker(any_storage.uri, tags=tags)
        assert tracker.list_experiments() == []
