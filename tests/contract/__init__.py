"""OpenAI's Images contract (a committed extract of openapi.yaml) as JSON Schema validators.

Each ``validate_*`` raises ``jsonschema.ValidationError`` when its argument breaks the contract.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, is_dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

EXTRACT = Path(__file__).with_name("openai-images.json")
REF_PREFIX = "#/components/schemas/"
# A ``format: binary`` field of a multipart body, as the fake server summarises uploaded files.
FILE_SCHEMA = {"type": "object", "required": ["filename", "content_type", "size"]}
STREAM_EVENT_SCHEMAS = {
    "image_generation.partial_image": "ImageGenPartialImageEvent",
    "image_generation.completed": "ImageGenCompletedEvent",
    "image_edit.partial_image": "ImageEditPartialImageEvent",
    "image_edit.completed": "ImageEditCompletedEvent",
}


@cache
def contract() -> dict[str, Any]:
    """The committed extract: ``{"schemas": {name: OpenAPI schema}, ...}``, untouched."""
    return json.loads(EXTRACT.read_text(encoding="utf-8"))


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0/3.1 schema -> JSON Schema 2020-12: ``nullable``, ``x-*``, binary, local $refs."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("format") == "binary":
        return {**FILE_SCHEMA, "description": node.get("description", "A file.")}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-") or key in ("nullable", "discriminator", "example"):
            continue
        if key == "$ref":
            out[key] = "#/$defs/" + value.removeprefix(REF_PREFIX)
        elif key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        else:
            out[key] = to_json_schema(value)
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def definitions() -> dict[str, Any]:
    defs = {name: to_json_schema(schema) for name, schema in contract()["schemas"].items()}
    # The contract's ImagesResponse.size lists only 1024x1024/1024x1536/1536x1024, yet the same
    # contract documents arbitrary WIDTHxHEIGHT requests for gpt-image-2 (e.g. 2048x1152), and the
    # response reports the size actually made. This one enum is relaxed to the WxH shape.
    size = defs["ImagesResponse"]["properties"]["size"]
    del size["enum"]
    size["pattern"] = "^[0-9]+x[0-9]+$"
    return defs


@cache
def validator(name: str) -> Draft202012Validator:
    schema = {"$defs": definitions(), "$ref": f"#/$defs/{name}"}
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _validate(name: str, obj: Any) -> None:
    validator(name).validate(obj)


def request_params(name: str) -> frozenset[str]:
    return frozenset(contract()["schemas"][name]["properties"])


def _closed(name: str, obj: Mapping[str, Any]) -> None:
    # The contract leaves requests open, but OpenAI answers unknown_parameter for extra keys.
    extra = sorted(set(obj) - request_params(name))
    if extra:
        raise ValidationError(f"{name} has no parameter(s) {extra}")


def validate_generation_request(body: Mapping[str, Any]) -> None:
    """A JSON body sent to /images/generations."""
    _closed("CreateImageRequest", body)
    _validate("CreateImageRequest", dict(body))


def _types(schema: Mapping[str, Any]) -> set[str]:
    """Every JSON type a (converted) schema admits, through $refs and anyOf/oneOf."""
    if "$ref" in schema:
        return _types(definitions()[schema["$ref"].removeprefix("#/$defs/")])
    found = set()
    kind = schema.get("type")
    found.update([kind] if isinstance(kind, str) else kind or [])
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            found |= _types(sub)
    return found


def _coerce(value: str, types: set[str]) -> Any:
    """Form fields are strings; read them the way the API does for its typed parameters."""
    if "integer" in types and value.strip().lstrip("-").isdigit():
        return int(value)
    if "boolean" in types and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def validate_edit_request(fields: Any, files: Iterable[Any] | None = None) -> None:
    """A multipart body sent to /images/edits.

    ``fields`` is a ``RecordedRequest`` (its form and files are used) or a mapping of form fields;
    ``files`` are ``FileSummary`` objects or dicts with field, filename, content_type and size.
    """
    if hasattr(fields, "form") and hasattr(fields, "files"):
        fields, files = fields.form, fields.files
    props = definitions()["CreateImageEditRequest"]["properties"]
    body: dict[str, Any] = {}
    for name, value in dict(fields).items():
        types = _types(props.get(name, {}))
        body[name] = [_coerce(v, types) for v in value] if isinstance(value, list) else _coerce(value, types)
    uploads: dict[str, list[dict[str, Any]]] = {}
    for item in files or ():
        summary = asdict(item) if is_dataclass(item) else dict(item)
        uploads.setdefault(summary["field"], []).append(summary)
    for name, items in uploads.items():
        key = name.removesuffix("[]")
        if key in body:
            raise ValidationError(f"{key!r} is sent both as a form field and as a file")
        body[key] = items if name.endswith("[]") or len(items) > 1 else items[0]
    _closed("CreateImageEditRequest", body)
    _validate("CreateImageEditRequest", body)


def validate_images_response(obj: Any) -> None:
    _validate("ImagesResponse", obj)


def validate_error(obj: Any) -> None:
    """An error envelope ``{"error": {...}}``."""
    _validate("ErrorResponse", obj)


def validate_stream_event(obj: Any) -> None:
    """One ``data:`` payload of an image stream (an ``error`` event carries an error envelope)."""
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind == "error":
        return validate_error({"error": obj.get("error")})
    if kind not in STREAM_EVENT_SCHEMAS:
        raise ValidationError(f"unknown image stream event type {kind!r}")
    _validate(STREAM_EVENT_SCHEMAS[kind], obj)
    _validate("ImageGenStreamEvent" if kind.startswith("image_generation") else "ImageEditStreamEvent", obj)


def schema(name: str) -> dict[str, Any]:
    """A converted schema (a deep copy), for tests that want to look inside."""
    return copy.deepcopy(definitions()[name])
