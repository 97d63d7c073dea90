"""A provider that needs no network: draws a real placeholder with Pillow at the exact size.

It is the default when no API key is set, so the example site and first experiments work on a
fresh machine. The placeholder looks like what was asked for (a cover, a poster, a product card:
see :mod:`.placeholder`) with the prompt's words as its title and the ratio, tier, pixel size
and quality printed on it. The same request draws the same pixels. Nothing is billed.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from django_gptimage.domain.sizes import parse_size

from .base import ProgressCallback, Provider, ProviderRequest, ProviderResult, ResultFile
from .placeholder import draw_placeholder

AUTO_SIZE = (1024, 1024)
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


class OfflineProvider(Provider):
    name = "offline"
    billable = False

    def __init__(self, *, delay: float = 0.0) -> None:
        super().__init__(delay=delay)
        if delay < 0:
            raise ValueError(f"delay must be 0 or more seconds, not {delay!r}")
        self.delay = float(delay)

    def generate(
        self, request: ProviderRequest, *, spool_dir: str, progress: ProgressCallback | None = None
    ) -> ProviderResult:
        report = progress or (lambda phase, data: None)
        os.makedirs(spool_dir, exist_ok=True)
        width, height = parse_size(request.size) or AUTO_SIZE
        report("sending", {})
        report("waiting", {})
        if request.partial_images:
            preview = draw_placeholder(request, width, height, index=0, draft=True)
            path = os.path.join(spool_dir, "partial-0.png")
            preview.save(path, "PNG")
            report("partial", {"path": path, "index": 0})
        if self.delay:
            time.sleep(self.delay)
        report("receiving", {})
        files = []
        for index in range(request.n):
            image = draw_placeholder(request, width, height, index=index)
            path = os.path.join(spool_dir, f"result-{index}.bin")
            save_kwargs: dict[str, Any] = {}
            if request.output_format in ("jpeg", "webp"):
                save_kwargs["quality"] = (
                    request.output_compression if request.output_compression is not None else 95
                )
            if request.output_format == "jpeg":
                image = image.convert("RGB")
            image.save(path, PIL_FORMATS[request.output_format], **save_kwargs)
            with open(path, "rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
            files.append(ResultFile(index, path, os.path.getsize(path), digest))
        return ProviderResult(
            files=files,
            request_id=f"offline-{hashlib.sha256(os.urandom(16)).hexdigest()[:24]}",
            usage=None,
            size=f"{width}x{height}",
            quality="medium" if request.quality == "auto" else request.quality,
            background="transparent" if request.background == "transparent" else "opaque",
            output_format=request.output_format,
            created=int(time.time()),
        )
