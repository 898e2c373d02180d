"""`metav1.Status` failures, shaped and worded as kube-apiserver writes them."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A request the server refuses. `status()` is the body, `code` the HTTP status."""

    def __init__(self, code: int, reason: str, message: str,
                 details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}
        self.list_meta: dict[str, Any] = {}  # Status.metadata (ListMeta), e.g. `continue`

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": dict(self.list_meta),
            "status": "Failure", "message": self.message, "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(qualified: str, name: str, group: str = "", uid: str = "") -> dict[str, Any]:
    # `qualified` is "configmaps" or "leases.coordination.k8s.io"; details.kind is the plural.
    plural = qualified.split(".", 1)[0]
    d: dict[str, Any] = {"name": name, "kind": plural}
    if group:
        d["group"] = group
    if uid:
        d["uid"] = uid
    return d


def not_found(qualified: str, name: str, group: str = "") -> ApiError:
    return ApiError(404, "NotFound", f'{qualified} "{name}" not found',
                    _details(qualified, name, group))


def already_exists(qualified: str, name: str, group: str = "", deleting: bool = False) -> ApiError:
    prefix = "object is being deleted: " if deleting else ""
    return ApiError(409, "AlreadyExists", f'{prefix}{qualified} "{name}" already exists',
                    _details(qualified, name, group))


def conflict(qualified: str, name: str, group: str = "", why: str = "") -> ApiError:
    why = why or ("the object has been modified; please apply your changes to the latest "
                  "version and try again")
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {qualified} "{name}": {why}',
                    _details(qualified, name, group))


def invalid(kind_qualified: str, name: str, causes: list[tuple[str, str, str]],
            group: str = "") -> ApiError:
    """causes: (field, bad value as Go prints it, detail) — FieldValueInvalid etc.

    The message reads `Lease.coordination.k8s.io "x" is invalid: spec.f: Invalid value: 0: ...`.
    A cause whose value is "" is rendered as `field: Required value: detail` or as given.
    """
    parts = []
    out_causes = []
    for field, value, detail in causes:
        if value is None:
            text = f"{field}: {detail}"
            reason = _cause_reason(detail)
        else:
            text = f"{field}: Invalid value: {value}: {detail}"
            reason = "FieldValueInvalid"
        parts.append(text)
        out_causes.append({"reason": reason, "message": text.split(": ", 1)[1], "field": field})
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    kind = kind_qualified.split(".", 1)[0]
    details: dict[str, Any] = {"name": name, "kind": kind, "causes": out_causes}
    if not name:  # StatusDetails.name is omitempty
        del details["name"]
    if group:
        details["group"] = group
    return ApiError(422, "Invalid", f'{kind_qualified} "{name}" is invalid: {summary}', details)


def _cause_reason(detail: str) -> str:
    for prefix, reason in (("Required value", "FieldValueRequired"),
                           ("Forbidden", "FieldValueForbidden"),
                           ("Unsupported value", "FieldValueNotSupported"),
                           ("Duplicate value", "FieldValueDuplicate"),
                           ("Too long", "FieldValueTooLong")):
        if detail.startswith(prefix):
            return reason
    return "FieldValueInvalid"


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(message: str, qualified: str = "", name: str = "", group: str = "") -> ApiError:
    details = _details(qualified, name, group) if qualified else None
    return ApiError(403, "Forbidden", message, details)


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                    {})


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415, "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/apply-patch+yaml",
        {})


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(429, "TooManyRequests", "Too many requests, please try again later.",
                    {"retryAfterSeconds": retry_after},
                    {"Retry-After": str(retry_after)})


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}",
                    {"causes": [{"message": message}]})


def service_unavailable(message: str = "the server is currently unable to handle the request"
                        ) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message, {})


def not_found_path() -> ApiError:
    """An unknown resource or path: the generic NotFound of the API server."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})
