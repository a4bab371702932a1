"""Every error a client may see: each class has a stable `code` and the HTTP status the API's
error middleware answers with.

The classes are the one list of error codes: the OpenAPI document lists `error_codes()`, and the
middleware turns aiohttp's own refusals (no such route, wrong method, body too large) and its
last-resort failures into these classes too.
"""

from __future__ import annotations

from typing import Any

_KIB = 1024


class DomaingateError(Exception):
    """Base of every error a client may see; `code` and `status` are part of the API contract."""

    code = "INVALID_REQUEST"
    status = 400

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


class InvalidRequest(DomaingateError, ValueError):
    code = "INVALID_REQUEST"


class InvalidHostname(DomaingateError, ValueError):
    code = "INVALID_HOSTNAME"

    def __init__(self, raw: str, reason: str) -> None:
        shown = raw if len(raw) <= 80 else raw[:80] + "…"
        super().__init__(f"{shown!r} is not a valid hostname: {reason}")
        self.reason = reason


class WildcardNotSupported(DomaingateError, ValueError):
    code = "WILDCARD_NOT_SUPPORTED"

    def __init__(self, raw: str) -> None:
        super().__init__(
            f"{raw[:80]!r}: wildcard domains are not supported; attach each hostname on its own"
        )


class ReservedHostname(DomaingateError, ValueError):
    code = "RESERVED_HOSTNAME"

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is in a zone reserved by the platform")


class InvalidApp(DomaingateError, ValueError):
    code = "INVALID_APP"


class Unauthorized(DomaingateError, PermissionError):
    code = "UNAUTHORIZED"
    status = 401


class DomainNotFound(DomaingateError, LookupError):
    code = "DOMAIN_NOT_FOUND"
    status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"no domain {name[:260]!r} is attached")


class HostnameAlreadyRegistered(DomaingateError):
    code = "HOSTNAME_ALREADY_REGISTERED"
    status = 409

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is already attached")


class HostnameCooldownActive(DomaingateError):
    code = "HOSTNAME_COOLDOWN_ACTIVE"
    status = 409

    def __init__(self, name: str, retry_after: int) -> None:
        super().__init__(
            f"{name} was recently detached by another tenant; it can be attached again in "
            f"{retry_after} s",
            retry_after=retry_after,
        )
        self.retry_after = retry_after


class InvalidState(DomaingateError):
    code = "INVALID_STATE"
    status = 409


class NotFound(DomaingateError, LookupError):
    """No route: the path names no resource of the API."""

    code = "NOT_FOUND"
    status = 404


class MethodNotAllowed(DomaingateError):
    code = "METHOD_NOT_ALLOWED"
    status = 405


class PayloadTooLarge(DomaingateError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413

    def __init__(self, max_bytes: int) -> None:
        size = f"{max_bytes // _KIB} KiB" if max_bytes % _KIB == 0 else f"{max_bytes} bytes"
        super().__init__(f"the request body is larger than {size}")
        self.max_bytes = max_bytes


class QuotaExceeded(DomaingateError):
    code = "QUOTA_EXCEEDED"
    status = 422

    def __init__(self, limit: int, app: str | None = None) -> None:
        holder = "this tenant" if app is None else f"the app {app!r}"
        super().__init__(f"{holder} already has {limit} domains, its quota", limit=limit)


class Forbidden(DomaingateError, PermissionError):
    code = "FORBIDDEN"
    status = 403


class VerifyRateLimited(DomaingateError):
    code = "VERIFY_RATE_LIMITED"
    status = 429

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(
            f"too many verification requests for this {scope}; try again in {retry_after} s",
            retry_after=retry_after,
        )
        self.retry_after = retry_after


class AttachRateLimited(DomaingateError):
    code = "ATTACH_RATE_LIMITED"
    status = 429

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(
            f"this tenant attached {limit} domains within the hour, its limit; try again in "
            f"{retry_after} s",
            retry_after=retry_after,
        )
        self.retry_after = retry_after


class TenantExists(DomaingateError):
    code = "TENANT_EXISTS"
    status = 409

    def __init__(self, name: str) -> None:
        super().__init__(f"a tenant named {name!r} exists already")


class TenantNotFound(DomaingateError, LookupError):
    code = "TENANT_NOT_FOUND"
    status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"no tenant named {name[:80]!r}")


class AppTaken(DomaingateError):
    """The app name belongs to another tenant (said to the platform only, never to a tenant)."""

    code = "APP_TAKEN"
    status = 409

    def __init__(self, name: str) -> None:
        super().__init__(f"app {name!r} belongs to another tenant")


class AppNotFound(DomaingateError, LookupError):
    code = "APP_NOT_FOUND"
    status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"this tenant has no app {name[:80]!r}")


class AppInUse(DomaingateError):
    code = "APP_IN_USE"
    status = 409

    def __init__(self, name: str, domains: int) -> None:
        super().__init__(
            f"app {name!r} still routes {domains} attached domain(s); detach them first",
            domains=domains,
        )


class StoreUnavailable(DomaingateError):
    """The database is locked past the busy timeout, or full: the request did not happen."""

    code = "STORE_UNAVAILABLE"
    status = 503

    def __init__(self) -> None:
        super().__init__("the database is busy or unavailable; retry shortly")


class InternalError(DomaingateError):
    """A bug: logged with its traceback, answered without details."""

    code = "INTERNAL"
    status = 500

    def __init__(self) -> None:
        super().__init__("an unexpected error occurred; it has been logged")


def error_classes() -> list[type[DomaingateError]]:
    """DomaingateError and every subclass of it, in the order they were defined."""
    found: list[type[DomaingateError]] = [DomaingateError]
    for cls in found:
        found += [sub for sub in cls.__subclasses__() if sub not in found]
    return found


def error_codes() -> list[str]:
    """Every code a client may see, once each."""
    return list(dict.fromkeys(cls.code for cls in error_classes()))
