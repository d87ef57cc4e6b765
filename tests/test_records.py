"""The records' rules: what a failed request is, in Python and in SQL, agree."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from healthchain.tracking import AsyncExperimentTracker, RequestRecord, request_failed
from healthchain.ui._views import is_failure

pytestmark = pytest.mark.anyio

# (error, status_code, failed): the table both rules are judged against
CASES = [
    (None, 200, False),
    (None, 204, False),
    (None, 302, False),
    (None, 399, False),
    (None, 400, True),
    (None, 412, True),
    (None, 500, True),
    (None, None, True),
    ("timeout", None, True),
    ("invalid response", 200, True),
    ("HTTP 503: down", 503, True),
    ("", 200, True),  # an empty error is still an error
]


def test_the_python_rule_matches_the_table() -> None:
    for error, code, failed in CASES:
        record = RequestRecord(0, datetime.now(UTC), 1.0, code, error)
        assert request_failed(error, code) is failed, (error, code)
        assert record.failed is failed and is_failure(record) is failed, (error, code)


async def test_the_sql_rule_agrees_with_the_python_rule(any_storage_uri: str) -> None:
    """Each case is one experiment's only request: SQL counts it as the record judges it."""
    async with AsyncExperimentTracker(storage_uri=any_storage_uri) as tracker:
        for error, code, failed in CASES:
            run = await tracker.start_experiment("case")
            await tracker.log_requests(run, [RequestRecord(0, datetime.now(UTC), 1.0, code, error)])
            stats = await tracker.request_stats(run)
            (record,) = await tracker.list_requests(run)
            assert stats.failures == int(record.failed) == int(failed), (error, code)
