"""Extract the Images part of OpenAI's OpenAPI description into ``openai-images.json``.

    python tests/contract/extract.py [path/to/openapi.yaml]

The full description (~3 MB) is not vendored; this keeps the schemas the Images endpoints use,
plus everything they reference, verbatim. tests/test_contract.py checks the committed extract
is still what this script produces when the full file is available.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "openai-images.json"
DEFAULT_SOURCE = HERE.parents[2] / "shared" / "openai" / "openapi.yaml"
REF_PREFIX = "#/components/schemas/"
ROOTS = (
    "CreateImageRequest",
    "CreateImageEditRequest",
    "ImagesResponse",
    "ImageGenUsage",
    "ImagesUsage",
    "Image",
    "ImageGenStreamEvent",
    "ImageGenPartialImageEvent",
    "ImageGenCompletedEvent",
    "ImageEditStreamEvent",
    "ImageEditPartialImageEvent",
    "ImageEditCompletedEvent",
    "ErrorResponse",
    "Error",
    "ErrorEvent",
)


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = set().union(*(_refs(v) for v in node.values())) if node else set()
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            found.add(ref.removeprefix(REF_PREFIX))
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def load_openapi(path: Path) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as fh:
        return yaml.load(fh, Loader=loader)  # a safe loader (C-accelerated when available)


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    """The ROOTS schemas and their transitive ``$ref``s, keyed by name (sorted)."""
    schemas = spec["components"]["schemas"]
    wanted, todo = set(), list(ROOTS)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(_refs(schemas[name]) - wanted)
    return {
        "source": "openai/openai-openapi openapi.yaml",
        "openapi": spec.get("openapi"),
        "roots": list(ROOTS),
        "schemas": {name: schemas[name] for name in sorted(wanted)},
    }


def render(extract_: dict[str, Any]) -> str:
    return json.dumps(extract_, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE
    OUTPUT.write_text(render(extract(load_openapi(source))), encoding="utf-8")
    print(f"wrote {OUTPUT} from {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
