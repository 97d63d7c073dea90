"""The bodies the fake server answers: ``ImagesResponse`` and the image stream events."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import zlib
from collections.abc import Iterator
from typing import Any

from . import images
from .faults import Fault
from .validation import ImageJob

NOT_AN_IMAGE = b"<html><body>This is not an image.</body></html>\n"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _fault_size(job: ImageJob, fault: Fault | None) -> tuple[int, int]:
    if fault is None or fault.kind != "wrong_size":
        return job.width, job.height
    if fault.size:
        w, _, h = fault.size.partition("x")
        return int(w), int(h)
    return max(16, job.width // 2), max(16, job.height // 2)


def image_bytes(job: ImageJob, seed: int, mode: str, fault: Fault | None) -> bytes:
    if fault is not None and fault.kind == "not_image":
        return NOT_AN_IMAGE
    width, height = _fault_size(job, fault)
    return images.render(
        width,
        height,
        job.output_format,
        transparent=job.background == "transparent",
        compression=job.compression,
        mode=mode,
        seed=seed,
    )


def _seed(job: ImageJob, index: int) -> int:
    return zlib.crc32(job.prompt.encode()) + index


def job_usage(job: ImageJob) -> dict[str, Any]:
    return images.usage(job.prompt, job.quality, job.width, job.height, job.n, job.inputs)


def images_response(
    job: ImageJob, mode: str, fault: Fault | None, *, digests: list[str] | None = None
) -> dict[str, Any]:
    """The JSON answer; ``digests`` (if given) gets the SHA-256 of each image appended."""
    usage = job_usage(job)
    usage["output_tokens_details"] = {"image_tokens": usage["output_tokens"], "text_tokens": 0}
    data = [image_bytes(job, _seed(job, i), mode, fault) for i in range(job.n)]
    if digests is not None:
        digests.extend(hashlib.sha256(d).hexdigest() for d in data)
    return {
        "created": int(time.time()),
        "data": [{"b64_json": _b64(d)} for d in data],
        "background": job.background,
        "output_format": job.output_format,
        "size": job.size,
        "quality": job.quality,
        "usage": usage,
    }


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def stream_events(job: ImageJob, mode: str, fault: Fault | None) -> Iterator[bytes]:
    """Partial images then a completed event, for each of the ``n`` images."""
    prefix = "image_generation" if job.endpoint == "generation" else "image_edit"
    common = {
        "size": job.size,
        "quality": job.quality,
        "background": job.background,
        "output_format": job.output_format,
    }
    usage = job_usage(job)
    for i in range(job.n):
        seed = _seed(job, i)
        for k in range(job.partial_images):
            data = image_bytes(job, seed + 1 + k, mode, fault)  # a different colour per partial
            yield sse(
                f"{prefix}.partial_image",
                {
                    "type": f"{prefix}.partial_image",
                    "b64_json": _b64(data),
                    "created_at": int(time.time()),
                    **common,
                    "partial_image_index": k,
                },
            )
        data = image_bytes(job, seed, mode, fault)
        completed = {
            "type": f"{prefix}.completed",
            "b64_json": _b64(data),
            "created_at": int(time.time()),
            **common,
            "usage": usage,
        }
        if fault is not None and fault.kind == "bulky_field" and i == 0:
            # First in the event, before its type: a reader that drops the bulky JSON must still
            # know what the event is (from its ``event:`` line) and keep its paid image.
            completed = {fault.field: "x" * fault.count, **completed}
        yield sse(f"{prefix}.completed", completed)
        if fault is not None and fault.kind == "extra_images" and i == job.n - 1:
            for _ in range(fault.count):  # completed events beyond ``n``: paid for too
                yield sse(f"{prefix}.completed", completed)
