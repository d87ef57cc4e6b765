"""Exceptions raised by ``healthchain.sandbox``.

Each also derives from the builtin whose meaning fits::

    SandboxError
    ├── SandboxConfigError (ValueError)       unknown or bad experiment_config/service_config
    │                                         key, bad @ehr workflow or num
    ├── SandboxDefinitionError (TypeError)    @sandbox on a non-use-case, a missing or second
    │                                         @api handler or @ehr method
    ├── ServiceStartError (OSError)           the service could not listen, e.g. port in use
    └── SandboxRunError                       raised by SandboxResult.raise_for_status()

Errors in the first three groups are raised before any experiment row is written.
"""

from __future__ import annotations

__all__ = [
    "SandboxConfigError",
    "SandboxDefinitionError",
    "SandboxError",
    "SandboxRunError",
    "ServiceStartError",
]


class SandboxError(Exception):
    """Base class of every error raised by the sandbox."""


class SandboxConfigError(SandboxError, ValueError):
    """A sandbox, service or ``@ehr`` option is unknown or has an unusable value."""


class SandboxDefinitionError(SandboxError, TypeError):
    """The decorated class does not define a runnable sandbox."""


class ServiceStartError(SandboxError, OSError):
    """The sandbox's service could not start listening."""


class SandboxRunError(SandboxError):
    """A sandbox run ended FAILED or INTERRUPTED (see ``SandboxResult.raise_for_status``)."""
