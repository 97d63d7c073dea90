"""The fingerprint of a request: what makes two generations the same paid work ("never pay twice")."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence


def fingerprint(params: Mapping[str, object], prompt: str, input_sha256s: Sequence[str]) -> str:
    """sha256 hex over a canonical JSON of the parameters, the prompt and the inputs' sha256.

    Keys are sorted and separators fixed so the same request always gives the same digest; the
    order of the inputs counts (the first image is the one a mask applies to).
    """
    payload = {
        "params": {str(k): v for k, v in params.items()},
        "prompt": prompt,
        "inputs": list(input_sha256s),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
