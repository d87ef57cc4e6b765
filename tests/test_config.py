"""Storage URIs as users write them, tracker options, and what bad ones say."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest
from helpers.errors import chain_text
from helpers.imports import import_threads, run_fresh
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite

from healthchain.tracking import (
    AsyncExperimentTracker,
    ConfigurationError,
    DriverNotInstalledError,
    ExperimentTracker,
    InvalidInputError,
    StorageError,
    mask_uri,
)
from healthchain.tracking._config import resolve_storage_uri

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("written", "driver"),
    [
        ("sqlite:///experiments.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite"),
        ("postgresql://user@localhost/db", "postgresql+asyncpg"),
        ("postgres://user@localhost/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://user@localhost/db", "postgresql+asyncpg"),
    ],
)
def test_uris_map_to_async_drivers(written: str, driver: str) -> None:
    assert resolve_storage_uri(written).url.drivername == driver


@pytest.mark.parametrize(
    ("uri", "error", "says"),
    [
        ("mongodb://localhost/db", ConfigurationError, "unsupported storage_uri scheme 'mongodb'"),
        (
            "postgresql+psycopg2://u@h/db",
            ConfigurationError,
            "'postgresql+psycopg2' names a synchronous",
        ),
        ("mysql+aiomysql://u@h/db", DriverNotInstalledError, "pip install aiomysql"),
        ("experiments.db", ConfigurationError, "is not a database URL: it does not start with"),
        ("sqlite://", ConfigurationError, "in-memory"),
        ("sqlite:///:memory:", ConfigurationError, "in-memory"),
        (None, ConfigurationError, "got None"),
        (42, ConfigurationError, "got 42"),
    ],
)
def test_bad_uris_are_refused_before_anything_opens(
    uri: object, error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=None) as info:
        AsyncExperimentTracker(uri)  # type: ignore[arg-type]
    assert says in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_driver_is_an_import_error_naming_the_extra() -> None:
    with pytest.raises(ImportError, match=r"'aiomysql' driver, which is not installed"):
        AsyncExperimentTracker("mysql+aiomysql://u@h/db")


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("mysql+aiomysql://u@h/db", "'aiomysql' driver, which is not installed; run: pip install"),
        ("mysql+asyncmy://u@h/db", "'asyncmy' driver, which is not installed; run: pip install"),
        ("mssql+aioodbc://u@h/db", "'aioodbc' driver, which is not installed; run: pip install"),
    ],
)
def test_a_missing_driver_is_found_without_importing_it(uri: str, says: str) -> None:
    with pytest.raises(DriverNotInstalledError, match=says) as info:
        resolve_storage_uri(uri, import_driver=False)
    assert info.value.__cause__ is None  # looked for, not imported


@pytest.mark.parametrize("import_driver", [True, False])
def test_a_driver_blocked_in_sys_modules_counts_as_missing(
    monkeypatch: pytest.MonkeyPatch, import_driver: bool
) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # what `import asyncpg` refuses
    with pytest.raises(DriverNotInstalledError, match=r"pip install 'healthchain\[postgres\]'"):
        resolve_storage_uri("postgresql://u@h/db", import_driver=import_driver)


@pytest.mark.parametrize("import_driver", [True, False])
def test_a_driver_name_with_an_underscore_is_read_and_its_package_named(
    monkeypatch: pytest.MonkeyPatch, import_driver: bool
) -> None:
    # SQLAlchemy's psycopg 3 async driver: a URL of it used to be "not a database URL".
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(DriverNotInstalledError) as info:
        resolve_storage_uri("postgresql+psycopg_async://u:pw@h/db", import_driver=import_driver)
    assert str(info.value) == (
        "storage_uri 'postgresql+psycopg_async://u:***@h/db' needs the 'psycopg_async' "
        "driver, which is not installed; run: pip install psycopg"
    )


def test_an_imported_driver_counts_as_present(monkeypatch: pytest.MonkeyPatch) -> None:
    # Modules made in memory have no spec to find: only sys.modules knows them.
    for name in ("aiomysql", "pymysql"):
        monkeypatch.setitem(sys.modules, name, ModuleType(name))
    config = resolve_storage_uri("mysql+aiomysql://u@h/db", import_driver=False)
    assert config.url.drivername == "mysql+aiomysql"


class PluginDialect(SQLiteDialect_aiosqlite):
    """A third-party async dialect: its driver's modules are unknown to the tracker."""

    driver = "hcplugin"

    @classmethod
    def import_dbapi(cls) -> ModuleType:  # type: ignore[override]
        import hcplugin_driver  # type: ignore[import-not-found]  # installed nowhere

        return hcplugin_driver  # type: ignore[no-any-return]


def test_a_driver_of_unknown_modules_is_imported_to_check_it() -> None:
    registry.register("sqlite.hcplugin", __name__, "PluginDialect")
    try:
        with pytest.raises(DriverNotInstalledError, match="pip install hcplugin") as info:
            resolve_storage_uri("sqlite+hcplugin:///x.db", import_driver=False)
    finally:
        registry.deregister("sqlite.hcplugin")
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


_CONSTRUCT_THEN_OPEN = """
from healthchain.tracking import AsyncExperimentTracker, StorageError

async def main():
    tracker = AsyncExperimentTracker(sys.argv[2])
    assert MODULE not in sys.modules, "the constructor imported the driver"
    try:
        async with tracker:
            pass
    except StorageError:
        pass  # nothing listens there: the import is what is measured
    return threading.get_ident()
"""


def test_the_constructor_leaves_the_driver_to_the_worker_thread() -> None:
    # A tracker built in a coroutine: importing asyncpg there would stall the loop for
    # tens of milliseconds; opening imports it with the engine, in a worker thread.
    imported, on_loop = import_threads(
        _CONSTRUCT_THEN_OPEN, "asyncpg", "postgresql://u@127.0.0.1:1/db"
    )
    assert imported
    assert not on_loop, "asyncpg was imported on the loop's thread"


_OPEN_BROKEN = """
import sys, anyio
from healthchain.tracking import AsyncExperimentTracker, DriverNotInstalledError

async def main():
    tracker = AsyncExperimentTracker(sys.argv[1])  # the driver is there: only looked for
    try:
        async with tracker:
            pass
    except DriverNotInstalledError as exc:
        print(exc)
        print(repr(exc.__cause__))

anyio.run(main)
"""


_RESOLVE_BROKEN = """
import sys
from healthchain.tracking import DriverNotInstalledError
from healthchain.tracking._config import resolve_storage_uri

try:
    resolve_storage_uri(sys.argv[1])  # imports the driver to check it
except DriverNotInstalledError as exc:
    print(exc)
    print(repr(exc.__cause__))
"""

BROKEN = (
    "storage_uri 'postgresql+asyncpg://u:***@127.0.0.1:1/db' needs the 'asyncpg' driver, "
    "which is installed but failed to import (ImportError: asyncpg is broken here); "
    "reinstall it: pip install --force-reinstall 'healthchain[postgres]'"
)


@pytest.mark.parametrize("script", [_OPEN_BROKEN, _RESOLVE_BROKEN], ids=["open", "resolve"])
def test_a_driver_that_fails_to_import_is_named_as_broken_not_missing(
    tmp_path: Path, script: str
) -> None:
    # The tracker's constructor only looks for the driver: opening imports it. Resolving
    # a URI as `healthchain db upgrade` does imports it there and then.
    package = tmp_path / "asyncpg"
    package.mkdir()
    (package / "__init__.py").write_text('raise ImportError("asyncpg is broken here")\n')
    uri = "postgresql://u:s3cret@127.0.0.1:1/db"
    shown = run_fresh(script, uri, env={"PYTHONPATH": str(tmp_path)})
    message, cause = shown.splitlines()
    assert message == BROKEN
    assert cause == "ImportError('asyncpg is broken here')"


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"project_name": ""}, "project_name must be a non-empty string, got ''"),
        ({"project_name": None}, "got None"),
        ({"heartbeat_interval": 0}, "heartbeat_interval must be a number from 0.05 to 86,400 s"),
        ({"heartbeat_interval": 1e-6}, "heartbeat_interval must be a number from 0.05 to"),
        ({"heartbeat_interval": 1e15}, "to 86,400 s, got 1000000000000000.0"),
        ({"heartbeat_interval": float("inf")}, "got inf"),
        ({"heartbeat_interval": float("nan")}, "got nan"),
        ({"outage_timeout": 0}, "outage_timeout must be a number from 0.1 to 604,800 s, got 0"),
        ({"outage_timeout": 1e300}, "outage_timeout must be a number from 0.1 to 604,800 s"),
        ({"max_queued_writes": 0}, "max_queued_writes must be an integer from 1 to 10,000,000"),
        ({"max_queued_writes": 2**70}, "got 1180591620717411303424"),
        ({"max_queued_writes": 5.0}, "max_queued_writes must be an integer"),
        ({"heartbeat_interval": True}, "got True"),
        ({"heartbeat_interval": "10"}, "got '10'"),
    ],
)
def test_bad_options_name_the_value(kwargs: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncExperimentTracker("sqlite:///x.db", **kwargs)  # type: ignore[arg-type]
    assert says in str(info.value)


def test_bad_tracker_tags_are_refused_at_construction() -> None:
    with pytest.raises(InvalidInputError, match=r"tags\['run'\]"):
        AsyncExperimentTracker("sqlite:///x.db", tags={"run": {1, 2}})


def test_passwords_are_masked_everywhere() -> None:
    uri = "postgresql://healthchain:s3cret@127.0.0.1:1/db"
    tracker = AsyncExperimentTracker(uri)
    assert "s3cret" not in repr(tracker)
    assert "***" in tracker.storage_uri
    assert mask_uri(uri) == "postgresql://healthchain:***@127.0.0.1:1/db"
    assert mask_uri("not a url") == "***"  # unparsable text is never echoed
    # An unreachable server (nothing listens on loopback port 1): the error is ours,
    # names the masked URL, and never the password.
    with pytest.raises(StorageError) as info:
        ExperimentTracker(uri)
    assert "127.0.0.1:1" in str(info.value)
    assert "***" in str(info.value)
    assert "s3cret" not in str(info.value)
    assert "s3cret" not in repr(info.value.__cause__)


# --- secrets in storage URIs, whatever the URL's shape ------------------------------------

SECRET = "s3cretXYZ"


def _assert_hidden(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, text


@pytest.mark.parametrize(
    "parameter",
    [
        "password",
        "PASSWORD",
        "Password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "token",
        "access-token",
        "sslpassword",
        "api_key",
        "apikey",
        "sslkey",
        "passfile",
        "auth_token",
        "something_unknown",  # not a driver option: maybe the rest of a password
    ],
)
def test_query_parameters_holding_secrets_are_masked(parameter: str) -> None:
    uri = f"postgresql://me@127.0.0.1:5432/db?ssl=prefer&{parameter}={SECRET}"
    config = resolve_storage_uri(uri)
    tracker = AsyncExperimentTracker(uri)
    for shown in (mask_uri(uri), config.display, tracker.storage_uri, repr(tracker), repr(config)):
        _assert_hidden(shown, SECRET)
        assert f"{parameter}=***" in shown or "StorageConfig" in shown
        assert "ssl=prefer" in shown  # a driver option is shown as written
    assert config.url.query[parameter] == SECRET  # ... and still reaches the driver


def test_repeated_and_encoded_secret_parameters_are_masked() -> None:
    uri = f"postgresql://me@h/db?password={SECRET}&password={SECRET}2&token=a%26{SECRET}"
    _assert_hidden(mask_uri(uri), SECRET, "%26")
    assert mask_uri(uri) == "postgresql://me@h/db?password=***&password=***&token=***"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        # A port that is not a number: only scheme and host.
        (f"postgresql://u:{SECRET}@127.0.0.1:notaport/db", "postgresql://127.0.0.1/***"),
        (f"postgresql://u:{SECRET}@db.example.com:1:2/db", "postgresql://db.example.com/***"),
        # No scheme at all: nothing.
        ("not a url", "***"),
        (f"u:{SECRET}@127.0.0.1/db", "***"),
        (SECRET, "***"),
        # Where the password ends cannot be told: the scheme only.
        (f"postgresql://u:pre@{SECRET}/x@127.0.0.1/db", "postgresql://***"),
        (f"postgresql://u:p@h:bad/db?password=x@{SECRET}", "postgresql://***"),
    ],
)
def test_unparsable_uris_show_scheme_and_host_at_most(uri: str, shown: str) -> None:
    assert mask_uri(uri) == shown
    with pytest.raises(ConfigurationError, match="is not a database URL") as info:
        AsyncExperimentTracker(uri)
    _assert_hidden(chain_text(info.value), SECRET, "pre@", "notaport")


@pytest.mark.parametrize(
    "uri",
    [
        f"postgresql://u:pre@{SECRET}@127.0.0.1/db",
        f"postgresql://u:pre@{SECRET}:more@127.0.0.1:5432/db",
        f"postgresql://u:a@b@{SECRET}@127.0.0.1/db",
    ],
)
def test_an_unencoded_at_in_a_password_is_read_as_part_of_it(uri: str) -> None:
    config = resolve_storage_uri(uri)
    assert config.url.host == "127.0.0.1"
    assert SECRET in (config.url.password or "")
    assert config.url.database == "db"
    for shown in (mask_uri(uri), config.display, repr(AsyncExperimentTracker(uri))):
        _assert_hidden(shown, SECRET, "pre")
        assert "u:***@127.0.0.1" in shown
    # The URL object SQLAlchemy itself makes of it (host 'SECRET@127.0.0.1') is masked too.
    from sqlalchemy.engine import make_url

    if ":more@" not in uri:  # SQLAlchemy cannot parse that one (port 'more@127.0.0.1:5432')
        _assert_hidden(mask_uri(make_url(uri)), SECRET)
        assert resolve_storage_uri(make_url(uri)).url.host == "127.0.0.1"


def test_a_password_that_can_be_read_two_ways_is_refused_not_guessed() -> None:
    # 'pre@SEC' + '/RET' could be the password, or 'SEC' the host and 'RET@...' the database.
    uri = "postgresql://u:pre@SEC/RET@127.0.0.1/db"
    with pytest.raises(ConfigurationError, match="percent-encode '@' as %40") as info:
        resolve_storage_uri(uri)
    _assert_hidden(chain_text(info.value), "SEC", "RET", "pre")
    assert resolve_storage_uri("postgresql://u:pre%40SEC%2FRET@127.0.0.1/db").url.password == (
        "pre@SEC/RET"
    )


@given(
    password=st.text(
        alphabet=st.sampled_from("abcXYZ019@:/?#&=%+ !*'()[];,$~"), min_size=4, max_size=24
    )
)
@settings(max_examples=400, deadline=None)
def test_no_written_password_is_ever_shown(password: str) -> None:
    uri = f"postgresql://alice:{password}@dbhost.example/dbname"
    shown = mask_uri(uri)
    assert shown in {
        "postgresql://alice:***@dbhost.example/dbname",
        "postgresql://dbhost.example/***",
        "postgresql://***",
    }, (password, shown)
    refused: ConfigurationError | None = None
    try:
        config = resolve_storage_uri(uri)
    except ConfigurationError as exc:
        refused = exc
    if refused is not None:
        assert password not in chain_text(refused)
    else:
        assert config.display == "postgresql+asyncpg://alice:***@dbhost.example/dbname"
        assert config.url.host == "dbhost.example"


@given(password=st.text(alphabet=st.sampled_from("abcXYZ019@:/?#=%+ !*'()[],$~"), min_size=4))
@settings(max_examples=200, deadline=None)
def test_no_password_option_is_ever_shown(password: str) -> None:
    uri = f"postgresql://alice@dbhost.example/dbname?password={password}&ssl=require"
    assert mask_uri(uri) in {
        "postgresql://alice@dbhost.example/dbname?password=***&ssl=require",
        "postgresql://alice@dbhost.example/dbname?password=***",  # '#' ends the option
    }


@pytest.mark.parametrize("port", ["99999", "65536", "0"])
def test_ports_outside_tcp_range_are_refused_before_connecting(port: str) -> None:
    with pytest.raises(ConfigurationError, match=f"has port {port}, which is not a TCP port"):
        AsyncExperimentTracker(f"postgresql://u:{SECRET}@127.0.0.1:{port}/db")


def test_libpq_sslmode_is_asyncpg_ssl() -> None:
    config = resolve_storage_uri("postgresql://u@h/db?sslmode=require")
    assert dict(config.url.query) == {"ssl": "require"}
    # Both given: left as written, for the driver to refuse by name.
    both = resolve_storage_uri("postgresql://u@h/db?sslmode=require&ssl=disable")
    assert set(both.url.query) == {"ssl", "sslmode"}


def test_a_uri_of_another_type_is_named_by_its_type_only() -> None:
    with pytest.raises(ConfigurationError, match="got a bytes") as info:
        AsyncExperimentTracker(f"postgresql://u:{SECRET}@h/db".encode())  # type: ignore[arg-type]
    _assert_hidden(chain_text(info.value), SECRET)


def test_the_sandbox_config_repr_masks_its_storage_uri() -> None:
    from healthchain.sandbox import ExperimentConfig

    config = ExperimentConfig.from_mapping(
        {"storage_uri": f"postgresql://u:{SECRET}@h/db?password={SECRET}2"}
    )
    assert "storage_uri='postgresql://u:***@h/db?password=***'" in repr(config)
    _assert_hidden(repr(config), SECRET)
    assert config.tracker_options()["storage_uri"].endswith(f"password={SECRET}2")


def test_a_sqlite_option_the_driver_cannot_take_is_a_configuration_error(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'x.db'}?timeout=soon&password={SECRET}"
    with pytest.raises(ConfigurationError, match=r"timeout=soon.*driver cannot take") as info:
        ExperimentTracker(uri)
    _assert_hidden(chain_text(info.value), SECRET)


def test_a_host_holding_an_at_is_refused_and_odd_values_mask_to_nothing() -> None:
    with pytest.raises(ConfigurationError, match="its host holds an '@'") as info:
        resolve_storage_uri(f"postgresql://u:{SECRET}@a@b#c/db")
    _assert_hidden(chain_text(info.value), SECRET)
    assert mask_uri(None) == "***"  # type: ignore[arg-type]
