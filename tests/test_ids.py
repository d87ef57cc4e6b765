"""Experiment ids by prefix: ``resolve_id`` and ``abbreviate_ids``, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers.shared import kept_read_only
from helpers.storage import Storage

from healthchain.tracking import (
    AmbiguousIdError,
    ExperimentNotFoundError,
    ExperimentTracker,
    InvalidInputError,
    TrackerClosedError,
)

# Chosen so each range bound is tested: "0199" must stop before "019a" (9 -> a, not ":"),
# "019f" before "01a0" (a carry), and "ffff" has no hex successor at all.
IDS = [
    "0190b5c8-4f7e-7d2a-9c1e-2f3a4b5c6d7e",
    "0190b5c8-4f7e-7d2a-9c1e-2f3a4b5c6d7f",
    "0190b5c8-4f7f-7000-8000-000000000000",
    "0190b5c8-5000-7000-8000-000000000000",
    "0190b5c8-6000-7000-8000-000000000000",
    "0190b5c9-0000-7000-8000-000000000000",
    "01990000-0000-7000-8000-000000000000",
    "019a0000-0000-7000-8000-000000000000",
    "019fffff-ffff-7fff-bfff-ffffffffffff",
    "01a00000-0000-7000-8000-000000000000",
    "ffffffff-0000-7000-8000-000000000000",
]


def _store_ids(storage: Storage) -> Storage:
    """The experiments of ``IDS``, given those ids through the side door."""
    with ExperimentTracker(storage.uri) as tracker:
        made = [tracker.start_experiment(f"run{i}") for i in range(len(IDS))]
        for made_id in made:
            tracker.end_experiment(made_id)
    for made_id, wanted in zip(made, IDS, strict=True):
        storage.query("UPDATE experiments SET id = ? WHERE id = ?", wanted, made_id)
    return storage


@pytest.fixture(scope="module")
def stored(shared_storage: Storage) -> Iterator[Storage]:
    """The experiments of ``IDS``, stored once per backend for the module's readers
    (checked: none of them may change a row)."""
    with kept_read_only(_store_ids(shared_storage)):
        yield shared_storage


@pytest.fixture
def stored_for_writing(any_storage: Storage) -> Storage:
    """The experiments of ``IDS`` in a database of the test's own, to add to."""
    return _store_ids(any_storage)


@pytest.fixture
def reader(stored: Storage) -> Iterator[ExperimentTracker]:
    """A read-only tracker on ``stored``, as the command line opens one."""
    with ExperimentTracker(stored.uri, read_only=True) as tracker:
        yield tracker


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("0190b5c9", IDS[5]),
        ("0190B5C9", IDS[5]),  # any case
        ("0190b5c8-5", IDS[3]),  # hyphens where the id has them
        ("0190b5c85", IDS[3]),  # or none
        ("0190b5c8-4f7f-", IDS[2]),
        ("0199", IDS[6]),
        ("019a", IDS[7]),
        ("019f", IDS[8]),
        ("01a0", IDS[9]),
        ("ffff", IDS[10]),
        (IDS[0], IDS[0]),  # a whole id
        (IDS[1].upper(), IDS[1]),
    ],
)
def test_a_unique_prefix_resolves_to_the_whole_id(
    reader: ExperimentTracker, prefix: str, expected: str
) -> None:
    assert reader.resolve_id(prefix) == expected


def test_an_ambiguous_prefix_names_a_few_matches_and_how_many_more(
    reader: ExperimentTracker,
) -> None:
    with pytest.raises(AmbiguousIdError) as caught:
        reader.resolve_id("0190b5c8")
    with pytest.raises(AmbiguousIdError) as two:
        reader.resolve_id("0190b5c8-4f7e-7d2a-9c1e-2f3a")
    error = caught.value
    assert isinstance(error, LookupError)
    assert (error.prefix, error.matches, error.count) == ("0190b5c8", tuple(IDS[:3]), 5)
    assert str(error) == (
        f"id prefix '0190b5c8' matches 5 experiments ({IDS[0]}, {IDS[1]}, {IDS[2]} and 2 "
        "more); give more characters of the id"
    )
    assert two.value.count == 2 and "more)" not in str(two.value)


@pytest.mark.parametrize("prefix", ["0190b5ca", "0000", "0190b5c8-4f7e-7d2a-9c1e-2f3a4b5c6d70"])
def test_an_unknown_prefix_is_not_found(reader: ExperimentTracker, prefix: str) -> None:
    with pytest.raises(ExperimentNotFoundError) as caught:
        reader.resolve_id(prefix)
    assert caught.value.experiment_id == prefix


@pytest.mark.parametrize(
    "text", ["not-an-id", "019g", "x" * 37, "0190b5c8" * 5, "", "0190\x00", "0190\ud800"]
)
def test_text_that_is_no_id_is_not_found(reader: ExperimentTracker, text: str) -> None:
    with pytest.raises(ExperimentNotFoundError):
        reader.resolve_id(text)


@pytest.mark.parametrize(
    ("prefix", "needle"),
    [
        ("019", "'019' is too short: give at least 4 characters"),
        ("0-19", "'0-19' has hyphens where ids have none"),
        ("0190-b5c8", "'0190-b5c8' has hyphens where ids have none"),
        ("0190b5c8-4f7e7", "'0190b5c8-4f7e7' has hyphens where ids have none"),
    ],
)
def test_a_prefix_too_short_or_hyphenated_wrongly_says_how_to_write_it(
    reader: ExperimentTracker, prefix: str, needle: str
) -> None:
    with pytest.raises(InvalidInputError, match=needle):
        reader.resolve_id(prefix)


def test_resolve_id_takes_a_string(reader: ExperimentTracker) -> None:
    with pytest.raises(InvalidInputError, match=r"prefix must be a string.*got int 1234"):
        reader.resolve_id(1234)  # type: ignore[arg-type]


def test_abbreviations_are_unique_prefixes_of_at_least_8_characters(
    reader: ExperimentTracker,
) -> None:
    short = reader.abbreviate_ids(IDS)
    assert short == {
        IDS[0]: "0190b5c8-4f7e-7d2a-9c1e-2f3a4b5c6d7e",
        IDS[1]: "0190b5c8-4f7e-7d2a-9c1e-2f3a4b5c6d7f",
        IDS[2]: "0190b5c8-4f7f",
        IDS[3]: "0190b5c8-5",  # never ends at a hyphen
        IDS[4]: "0190b5c8-6",
        IDS[5]: "0190b5c9",
        IDS[6]: "01990000",
        IDS[7]: "019a0000",
        IDS[8]: "019fffff",
        IDS[9]: "01a00000",
        IDS[10]: "ffffffff",
    }
    assert all(reader.resolve_id(s) == whole for whole, s in short.items())
    assert reader.abbreviate_ids([IDS[5]], min_length=4) == {IDS[5]: "0190b5c9"}
    assert reader.abbreviate_ids(IDS[6], min_length=4) == {IDS[6]: "0199"}
    assert reader.abbreviate_ids([IDS[9]], min_length=36) == {IDS[9]: IDS[9]}
    assert reader.abbreviate_ids([]) == {}


def test_abbreviations_of_many_ids_and_of_ids_no_experiment_has(
    stored_for_writing: Storage,
) -> None:
    with ExperimentTracker(stored_for_writing.uri) as tracker:
        made = [tracker.start_experiment() for _ in range(250)]  # more than one statement's
        short = tracker.abbreviate_ids(made)
        assert list(short) == made
        assert all(tracker.resolve_id(s) == whole for whole, s in short.items())
        # An id not stored is abbreviated against its would-be neighbours; one no
        # experiment can have (too long) comes back whole.
        assert tracker.abbreviate_ids(["0190b5c8-4f7f-7000-8000-000000000001", "x" * 40]) == {
            "0190b5c8-4f7f-7000-8000-000000000001": "0190b5c8-4f7f-7000-8000-000000000001",
            "x" * 40: "x" * 40,
        }


@pytest.mark.parametrize("min_length", [3, 37, 8.0, True, "8"])
def test_abbreviation_length_out_of_range_is_refused(
    reader: ExperimentTracker, min_length: object
) -> None:
    with pytest.raises(InvalidInputError, match=r"min_length must be an integer from 4 to 36"):
        reader.abbreviate_ids(IDS, min_length=min_length)  # type: ignore[arg-type]


def test_a_prefix_is_resolved_by_a_range_of_the_primary_key_index(
    sqlite_storage: Storage,
) -> None:
    """SQLite's plan shows it: the index is searched from the prefix, no row is scanned."""
    from sqlalchemy.dialects import sqlite

    from healthchain.tracking._id_queries import COUNT_IN_PREFIX_RANGE, IDS_IN_PREFIX_RANGE

    with ExperimentTracker(sqlite_storage.uri) as tracker:
        tracker.start_experiment()
    for statement in (IDS_IN_PREFIX_RANGE, COUNT_IN_PREFIX_RANGE):
        compiled = statement.compile(dialect=sqlite.dialect())
        bound = {**compiled.params, "low": "0190", "high": "0191"}
        params = [bound[name] for name in compiled.positiontup or ()]
        plan = sqlite_storage.query(f"EXPLAIN QUERY PLAN {compiled}", *params)
        assert [row[-1] for row in plan] == [
            "SEARCH experiments USING PRIMARY KEY (id>? AND id<?)"
        ], plan


@pytest.mark.parametrize(
    ("given", "needle"),
    [
        (None, "experiment_ids must be an id or an iterable of ids, got NoneType"),
        (b"0190", "experiment_ids must be an id or an iterable of ids, got bytes"),
        ({"a": 1}, "experiment_ids must be an id or an iterable of ids, got dict"),
        ([IDS[0], 7], r"experiment_ids\[1\] must be a string"),
    ],
)
def test_abbreviate_ids_takes_ids(reader: ExperimentTracker, given: object, needle: str) -> None:
    with pytest.raises(InvalidInputError, match=needle):
        reader.abbreviate_ids(given)  # type: ignore[arg-type]


def test_a_closed_tracker_resolves_nothing(stored: Storage) -> None:
    tracker = ExperimentTracker(stored.uri)
    tracker.close()
    with pytest.raises(TrackerClosedError):
        tracker.resolve_id("0190b5c9")
    with pytest.raises(TrackerClosedError):
        tracker.abbreviate_ids(IDS)


@pytest.mark.parametrize("collation", ["C", "en-US-x-icu", "und-x-icu"])
def test_prefix_ranges_hold_under_postgresql_collations(
    postgres_storage: Storage, collation: str
) -> None:
    """A database created with a language's collation compares ids by it: each range
    must still hold exactly the ids that start with the prefix."""
    from healthchain.tracking._ids import id_prefix_range, new_id

    ids = [*IDS, *(new_id()[0] for _ in range(50))]
    ranges = {
        bounds[0]: bounds[1]
        for experiment_id in ids
        for length in range(4, 20)
        if (bounds := id_prefix_range(experiment_id[:length])) is not None
    }
    rows = postgres_storage.query(
        f"SELECT p.low, count(i.id) FROM unnest(?::text[], ?::text[]) AS p(low, high) "
        f'LEFT JOIN unnest(?::text[]) AS i(id) ON i.id COLLATE "{collation}" >= p.low '
        f'AND i.id COLLATE "{collation}" < p.high GROUP BY p.low',
        list(ranges),
        list(ranges.values()),
        ids,
    )
    assert dict(rows) == {low: sum(i.startswith(low) for i in ids) for low in ranges}
