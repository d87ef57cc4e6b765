"""Storage URIs as users write them, mapped to SQLAlchemy async URLs, and masked.

No secret in a storage URI may reach a message, a log line, a page or a repr: the only
form ever shown is :func:`mask_uri`'s (``StorageConfig.display``), which hides the
password, the value of every query parameter that is not a driver option or is named
like a secret, and everything but the scheme and host of a URL that does not parse or
whose password cannot be told apart from the rest.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from importlib.util import find_spec
from urllib.parse import quote_plus

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from ._exceptions import ConfigurationError, DriverNotInstalledError, describe
from ._settings import DEFAULT_STORAGE_URI, type_only
from ._validation import check_storable

__all__ = [
    "StorageConfig",
    "driver_not_installed",
    "is_secret_parameter",
    "mask_uri",
    "resolve_storage_uri",
    "validate_project_name",
]

# Users write the plain scheme; the tracker needs the async driver behind it.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
}
_EXTRAS = {"asyncpg": "postgres"}
# The package to install for a driver whose name on PyPI is not the URL's driver name.
_PACKAGES = {"psycopg_async": "psycopg", "oracledb_async": "oracledb"}
# The modules each async dialect's import_dbapi() imports, by the URL's driver name: what
# the presence check looks for without running their code (asyncpg's import alone takes
# tens of milliseconds). A driver not named here is imported to check it.
_DRIVER_MODULES = {
    "asyncpg": ("asyncpg",),
    "aiosqlite": ("aiosqlite", "sqlite3"),
    "psycopg": ("psycopg",),
    "psycopg_async": ("psycopg",),
    "aiomysql": ("aiomysql", "pymysql"),
    "asyncmy": ("asyncmy",),
    "aioodbc": ("aioodbc", "pyodbc"),
    "oracledb_async": ("oracledb",),
}

MASK = "***"
"""What stands for a hidden password, parameter value or unparsable part of a URL."""

# Query parameters whose value is always hidden: any name holding one of these words once
# lowercased and stripped of '_' and '-' (password, PASSWD, sslpassword, pwd, api_key,
# access_token, client_secret, passfile, sslkey, auth...). A harmless one hidden costs
# nothing; a secret one shown cannot be taken back.
_SECRET_WORDS = ("pass", "pwd", "secret", "token", "key", "credential", "auth", "signature")
# Query parameters whose value is shown (unless named like a secret): the drivers' own
# options. Any other value is hidden too: an unknown parameter may be the rest of a
# password holding an unencoded '&' (``?password=ab&cd=ef``).
_SHOWN_PARAMETERS = frozenset(
    {
        # asyncpg, and SQLAlchemy's asyncpg dialect
        "host",
        "port",
        "user",
        "database",
        "timeout",
        "command_timeout",
        "statement_cache_size",
        "max_cached_statement_lifetime",
        "max_cacheable_statement_size",
        "prepared_statement_cache_size",
        "ssl",
        "sslmode",
        "direct_tls",
        "target_session_attrs",
        "krbsrvname",
        "gsslib",
        "application_name",
        "async_fallback",
        # SQLite, through pysqlite
        "mode",
        "cache",
        "uri",
        "check_same_thread",
        "isolation_level",
        "detect_types",
        "cached_statements",
        "nolock",
        "immutable",
        "vfs",
    }
)
# Passwords at least this long are also scrubbed from any driver text a message quotes
# (a shorter one would mangle the message and give itself away by where the masks fall).
_SCRUB_MIN_LENGTH = 4

# An unparsable URL with more '@' than this is shown as its scheme only (each is one
# more reading to try).
_MAX_SIGNS = 16

# SQLAlchemy's driver names may hold '_' (postgresql+psycopg_async), which RFC 3986
# schemes may not: its own URL pattern allows it too.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9_+.\-]*)://")
# SQLAlchemy's reading of user info: a user name up to the first ':' or '/'; if that is
# a ':', a password follows, up to the '@' that ends the user info.
_USER = re.compile(r"[^:/]*:")
# What may follow the '@' ending the user info: a host name or [IPv6 address], a
# numeric port, then the database path or the query. A host never holds '@'.
_AUTHORITY = re.compile(r"(?:\[[^\]@/?#]*\]|[^@/:?#\[\]]*)(?::\d*)?(?:[/?].*)?\Z", re.S)
# The same with any port text: where to find the host of a URL that does not parse.
_LOOSE_AUTHORITY = re.compile(r"(\[[^\]@/?#]*\]|[^@/:?#\[\]]*)(?::[^@/?]*)?(?:[/?].*)?\Z", re.S)


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """A validated storage location."""

    url: URL = field(repr=False)
    """The async SQLAlchemy URL the engine is built from (holds the password: never shown)."""
    display: str
    """The URL with every secret masked: the only form that reaches messages and logs."""
    secrets: tuple[str, ...] = field(default=(), repr=False)
    """The password and secret parameter values, scrubbed from driver text we quote."""

    @property
    def is_sqlite(self) -> bool:
        """True when the storage is a SQLite file."""
        return self.url.get_backend_name() == "sqlite"

    def scrub(self, text: str) -> str:
        """``text`` with any secret of this URL replaced by ``***``."""
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


class _BadURL(Exception):
    """The text is not a URL whose parts (above all, where its password ends) are certain."""


def is_secret_parameter(name: str) -> bool:
    """True if a URL query parameter called ``name`` may hold a secret (its value is hidden)."""
    folded = name.lower().replace("_", "").replace("-", "")
    return any(word in folded for word in _SECRET_WORDS)


def _parse(text: str) -> URL:
    """``make_url``, refusing what cannot be read one way only.

    SQLAlchemy ends a password at its first ``@``, so ``u:pre@fix@host`` would connect to
    the host ``fix@host`` and show ``fix``. A host or port never holds ``@``, so when only
    a later ``@`` leaves a sane ``host[:port][/database][?query]`` behind it, that is where
    the password ends. When several do (``u:p@h/db?x=a@b``), which one the user meant is
    unknowable and the URL is refused rather than guessed at.
    """
    scheme = _SCHEME.match(text)
    if scheme is None:
        raise _BadURL("it does not start with a scheme such as 'sqlite://' or 'postgresql://'")
    rest = text[scheme.end() :]
    user = _USER.match(rest)
    if user is not None:
        tail = rest[user.end() :]
        signs = [i for i, char in enumerate(tail) if char == "@"]
        ends = []
        for i in signs:
            if _AUTHORITY.match(tail, i + 1):
                ends.append(i)
                if len(ends) > 1:  # two readings are one too many: no need to look further
                    break
        # Past the first '@', only more '@' and ':' are read as part of the password,
        # never a '/' or '?' (where a database or the options begin).
        if len(ends) > 1 or (
            ends and ends[0] != signs[0] and re.search(r"[/?]", tail[signs[0] : ends[0]])
        ):
            raise _BadURL(
                "it holds several '@', so where its password ends is unclear; "
                "percent-encode '@' as %40 in the password and in the options"
            )
        if ends and ends[0] != signs[0]:
            password = tail[: ends[0]].replace("@", "%40")
            text = f"{text[: scheme.end()]}{rest[: user.end()]}{password}{tail[ends[0] :]}"
    url: URL | None
    try:
        url = make_url(text)
    except (ArgumentError, ValueError, TypeError):
        url = None  # raised below, out of this block: SQLAlchemy's error quotes the text
    if url is None:
        raise _BadURL(
            "it is not of the form scheme://user:password@host:port/database?options, "
            "with a numeric port"
        )
    if url.host is not None and "@" in url.host:
        raise _BadURL("its host holds an '@'; percent-encode '@' in the password as %40")
    return url


def _fallback(text: str) -> str:
    """The scheme and host of unparsable ``text``, when the host is certain; else less."""
    scheme = _SCHEME.match(text)
    if scheme is None:
        return MASK
    rest = text[scheme.end() :]
    signs = [i + 1 for i, char in enumerate(rest) if char == "@"]
    if len(signs) > _MAX_SIGNS:
        return f"{scheme.group(1)}://{MASK}"
    hosts = set()
    for start in [0, *signs]:
        match = _LOOSE_AUTHORITY.match(rest, start)
        if match is not None:
            hosts.add(match.group(1))
    host = hosts.pop() if len(hosts) == 1 else ""
    return f"{scheme.group(1)}://{host}/{MASK}" if host else f"{scheme.group(1)}://{MASK}"


def _shown(parameter: str) -> bool:
    return parameter.lower() in _SHOWN_PARAMETERS and not is_secret_parameter(parameter)


def _render(url: URL) -> str:
    shown = url.set(query={}).render_as_string(hide_password=True)
    if not url.query:
        return shown
    pairs = []
    for key, values in url.query.items():
        for value in (values,) if isinstance(values, str) else values:
            pairs.append(f"{quote_plus(key)}={quote_plus(value) if _shown(key) else MASK}")
    return f"{shown}?{'&'.join(pairs)}"


def _secrets(url: URL) -> tuple[str, ...]:
    found = [url.password or ""]
    for key, values in url.query.items():
        if not _shown(key):
            found.extend((values,) if isinstance(values, str) else values)
    # Longest first, so a secret holding another is scrubbed whole.
    return tuple(sorted({s for s in found if len(s) >= _SCRUB_MIN_LENGTH}, key=len, reverse=True))


def _text(uri: str | URL) -> str:
    return uri.render_as_string(hide_password=False) if isinstance(uri, URL) else uri


def mask_uri(uri: str | URL) -> str:
    """``uri`` safe to show, in any message, log line, page or repr.

    The password is replaced by ``***``, and so is the value of every query parameter that
    is not one of the drivers' own options (``ssl``, ``timeout``...) or that is named like
    a secret (``password``, ``sslpassword``, ``token``, ``api_key``..., in any case). A
    password holding an unencoded ``@`` is masked whole. A URL that does not parse, or
    whose password cannot be told apart from its host, is shown as its scheme and host
    only (``postgresql://db.example.com/***``) when the host is certain, else as less
    (``postgresql://***``, or ``***``).
    """
    if not isinstance(uri, str | URL):  # typed callers never; a mask must never fail
        return MASK  # type: ignore[unreachable]
    try:
        text = _text(uri)
        return _render(_parse(text))
    except _BadURL:
        return _fallback(text)
    except Exception:  # a mask must never fail, nor fall back to the text
        return MASK


def driver_not_installed(
    url: URL, shown: str, failed: ImportError | None = None
) -> DriverNotInstalledError:
    """The error for ``url``'s driver missing, or installed but ``failed`` to import (an
    error other than a missing module: a broken install); ``shown`` is masked."""
    driver = url.get_driver_name()
    extra = _EXTRAS.get(driver)
    package = f"'healthchain[{extra}]'" if extra else _PACKAGES.get(driver, driver)
    if failed is None or isinstance(failed, ModuleNotFoundError):
        return DriverNotInstalledError(
            f"storage_uri {shown!r} needs the {driver!r} driver, which is not installed; "
            f"run: pip install {package}"
        )
    return DriverNotInstalledError(
        f"storage_uri {shown!r} needs the {driver!r} driver, which is installed but failed "
        f"to import ({describe(failed)}); reinstall it: pip install --force-reinstall {package}"
    )


def _present(module: str) -> bool:
    """True if ``module`` is imported, or could be: its spec is found, none of its code run."""
    return sys.modules.get(module) is not None or find_spec(module) is not None


def resolve_storage_uri(uri: object, *, import_driver: bool = True) -> StorageConfig:
    """Validate ``uri`` and map it to the async driver, without touching the database.

    The driver is imported to check it, unless ``import_driver`` is False: then a known
    driver's modules are only looked for (no code of theirs runs, so this may be called
    on an event loop), and one that is there but fails to import is found out by
    :func:`._engine.create_engine`.
    """
    if not isinstance(uri, str | URL):
        raise ConfigurationError(
            f"storage_uri must be a string such as {DEFAULT_STORAGE_URI!r}, got {type_only(uri)}"
        )
    text = _text(uri)
    try:
        url = _parse(text)
    except _BadURL as exc:
        reason = str(exc)
    else:
        reason = ""
    if reason:  # raised out of the except block, so no exception quoting the text is chained
        shown = _fallback(text)
        subject = (
            "storage_uri (not shown, in case it holds a password)"
            if shown == MASK
            else f"storage_uri {shown!r}"
        )
        raise ConfigurationError(
            f"{subject} is not a database URL: {reason}; write it like "
            f"{DEFAULT_STORAGE_URI!r} or 'postgresql://user@host/dbname'"
        )
    url = url.set(drivername=_ASYNC_DRIVERS.get(url.drivername, url.drivername))
    query = url.query
    if url.drivername == "postgresql+asyncpg" and "sslmode" in query and "ssl" not in query:
        # libpq's name for it, in URLs copied from elsewhere: asyncpg takes the same modes
        # as ``ssl``, and would refuse ``sslmode`` as an unknown argument.
        url = url.difference_update_query(["sslmode"]).update_query_dict({"ssl": query["sslmode"]})
    shown = _render(url)
    if url.port is not None and not 1 <= url.port <= 65535:
        raise ConfigurationError(
            f"storage_uri {shown!r} has port {url.port}, which is not a TCP port; "
            "give one from 1 to 65535 (PostgreSQL listens on 5432 by default)"
        )

    try:
        dialect_cls = url.get_dialect()
    except NoSuchModuleError as exc:
        raise ConfigurationError(
            f"unsupported storage_uri scheme {url.drivername!r} in {shown!r}; "
            "use 'sqlite:///path/to/file.db' or 'postgresql://user@host/dbname'"
        ) from exc
    if not getattr(dialect_cls, "is_async", False):
        raise ConfigurationError(
            f"storage_uri scheme {url.drivername!r} names a synchronous driver; the tracker "
            "needs an async one, e.g. 'sqlite+aiosqlite' or 'postgresql+asyncpg'"
        )
    modules = None if import_driver else _DRIVER_MODULES.get(url.get_driver_name())
    if modules is None:
        try:
            dialect_cls.import_dbapi()
        except ImportError as exc:
            raise driver_not_installed(url, shown, exc) from exc
    elif not all(_present(module) for module in modules):
        raise driver_not_installed(url, shown)

    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise ConfigurationError(
            f"storage_uri {shown!r} is an in-memory SQLite database, which each connection "
            "sees empty; give a file path such as 'sqlite:///experiments.db'"
        )
    return StorageConfig(url=url, display=shown, secrets=_secrets(url))


def validate_project_name(value: object) -> str:
    """Return ``value`` if it is a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"project_name must be a non-empty string, got {value!r}")
    check_storable(value, "project_name", ConfigurationError)
    return value
