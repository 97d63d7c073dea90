"""OpenAI's error envelope (``{"error": {"message", "type", "param", "code"}}``) as an exception."""

from __future__ import annotations

from typing import Any

INVALID_REQUEST = "invalid_request_error"


class APIError(Exception):
    """An error answer: raised anywhere while handling a request, rendered by the server."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(param: str | None, message: str, code: str | None = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


def unknown_parameter(name: str) -> APIError:
    return invalid(name, f"Unknown parameter: '{name}'.", "unknown_parameter")


def unsupported_parameter(name: str, model: str) -> APIError:
    return invalid(
        name,
        f"Unsupported parameter: '{name}' is not supported with model '{model}'.",
        "unsupported_parameter",
    )


def missing(name: str) -> APIError:
    return invalid(name, f"Missing required parameter: '{name}'.", "missing_required_parameter")


def invalid_type(name: str, expected: str, value: object) -> APIError:
    got = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array"}.get(
        type(value), "an object" if isinstance(value, dict) else "a value"
    )
    return invalid(
        name, f"Invalid type for '{name}': expected {expected}, but got {got} instead.", "invalid_type"
    )


def invalid_enum(name: str, value: object, allowed: tuple[str, ...] | list[str]) -> APIError:
    quoted = [f"'{v}'" for v in allowed]
    listed = ", ".join(quoted[:-1]) + f", and {quoted[-1]}" if len(quoted) > 1 else quoted[0]
    return invalid(name, f"Invalid value: '{value}'. Supported values are: {listed}.")


def integer_range(name: str, value: int, low: int, high: int) -> APIError | None:
    if value > high:
        return invalid(
            name,
            f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, "
            f"but got {value} instead.",
            "integer_above_max_value",
        )
    if value < low:
        return invalid(
            name,
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, "
            f"but got {value} instead.",
            "integer_below_min_value",
        )
    return None
