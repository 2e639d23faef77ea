"""Every error the API answers with, shaped exactly like the real one.

Handlers and the model raise ``APIError``; the HTTP layer turns it into
``{"error": {"code", "message", "details"}}`` with the real status code.
"""
from __future__ import annotations


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def invalid_input(field: str, *messages: str) -> APIError:
    msgs = list(messages) or ["is invalid"]
    return APIError(
        422, "invalid_input", f"invalid input in field '{field}': {'; '.join(msgs)}",
        {"fields": [{"name": field, "messages": msgs}]},
    )


def invalid_fields(fields: dict[str, list[str]]) -> APIError:
    """One field: "invalid input in field 'a': <its messages>"; several: the real API only names
    them, "invalid input in fields 'a', 'b'", and each one's messages are in details.fields."""
    if len(fields) == 1:
        name, msgs = next(iter(fields.items()))
        return invalid_input(name, *msgs)
    return APIError(
        422, "invalid_input", "invalid input in fields " + ", ".join(f"'{name}'" for name in fields),
        {"fields": [{"name": name, "messages": msgs} for name, msgs in fields.items()]},
    )


def json_error(message: str = "invalid JSON in request body") -> APIError:
    return APIError(400, "json_error", message)


def not_found(kind: str, ref) -> APIError:
    return APIError(404, "not_found", f"{kind} with ID '{ref}' not found")


def route_not_found(method: str = "", path: str = "") -> APIError:
    if not path:
        return APIError(404, "not_found", "not found")
    return APIError(404, "not_found", f"not found: {method} {path} is not a route of the API".replace("  ", " "))


def uniqueness(field: str, message: str) -> APIError:
    return APIError(409, "uniqueness_error", message, {"fields": [{"name": field}]})


def protected(kind: str, ref, what: str = "delete") -> APIError:
    return APIError(423, "protected", f"cannot {what} {kind} {ref}: it is protected (change_protection first)")


def locked(kind: str, ref) -> APIError:
    return APIError(
        423, "locked",
        f"{kind} {ref} is locked: there is already an action running on it, wait for it to finish",
    )


def resource_in_use(message: str) -> APIError:
    return APIError(422, "resource_in_use", message)


def unsupported(message: str) -> APIError:
    return APIError(422, "unsupported_error", message)


def specific(code: str, message: str, status: int = 422, details: dict | None = None) -> APIError:
    """A resource specific error code (server_not_stopped, ip_not_available, ...)."""
    return APIError(status, code, message, details)


def unauthorized() -> APIError:
    return APIError(401, "unauthorized", "unable to authenticate")


def token_readonly() -> APIError:
    return APIError(401, "token_readonly", "this API token is read-only: use a Read & Write token to change anything")


def rate_limit_exceeded() -> APIError:
    return APIError(429, "rate_limit_exceeded", "rate limit exceeded: wait for RateLimit-Reset or slow down")


def method_not_allowed() -> APIError:
    return APIError(405, "method_not_allowed", "method not allowed")


def resource_unavailable(message: str) -> APIError:
    return APIError(412, "resource_unavailable", message)
