"""The package's model catalog against the loopback server's own table of OpenAI's limits.

The two are written separately (django_gptimage/domain/capabilities.py and
django_gptimage/testing/openai_limits.py): a limit wrong in one of them fails here, instead of
being agreed with by a server that reads the package's rules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
import pytest

from django_gptimage.domain.capabilities import BUILTIN_CATALOG, ModelCapabilities
from django_gptimage.domain.sizes import size_problems as package_size_problems
from django_gptimage.testing import FakeOpenAIServer
from django_gptimage.testing.openai_limits import OPENAI_LIMITS, OpenAILimits
from django_gptimage.testing.openai_limits import size_problems as server_size_problems

TESTING = Path(__file__).resolve().parent.parent / "django_gptimage" / "testing"


def test_both_tables_list_the_same_models():
    assert set(BUILTIN_CATALOG) == set(OPENAI_LIMITS)


def _pairs(caps: ModelCapabilities, limits: OpenAILimits) -> dict[str, tuple[object, object]]:
    sizes = None if caps.fixed_sizes is None else tuple(f"{w}x{h}" for w, h in caps.fixed_sizes)
    pairs: dict[str, tuple[object, object]] = {
        "sizes": (sizes, limits.standard_sizes),
        "auto size": (caps.supports_auto_size, limits.auto_size),
        "qualities": (set(caps.qualities), set(limits.qualities)),
        "output formats": (set(caps.formats), set(limits.output_formats)),
        "backgrounds": (set(caps.backgrounds), set(limits.backgrounds)),
        "transparent formats": (set(caps.transparent_formats), set(limits.transparent_formats)),
        "n": (caps.max_n, limits.most_images_out),
        "prompt": (caps.max_prompt_chars, limits.longest_prompt),
        "input images": (caps.max_input_images, limits.most_input_images),
        "input bytes": (caps.max_input_bytes, limits.input_image_bytes),
        "input formats": (set(caps.input_formats), set(limits.input_image_formats)),
        "mask": (caps.supports_mask, limits.takes_mask),
        "mask bytes": (caps.max_mask_bytes, limits.mask_bytes),
        "input_fidelity": (caps.input_fidelity, limits.input_fidelity),
        "partial images": (caps.max_partial_images, limits.most_partial_images),
    }
    if caps.fixed_sizes is None:  # the flexible-size rules only mean something for flexible models
        pairs.update(
            {
                "edge multiple": (caps.edge_multiple, limits.divisible_by),
                "longest edge": (caps.max_edge, limits.longest_edge),
                "most pixels": (caps.max_pixels, limits.most_pixels),
                "fewest pixels": (caps.min_pixels, limits.fewest_pixels),
                "widest ratio": (caps.max_ratio, limits.widest),
            }
        )
    return pairs


@pytest.mark.parametrize("model", sorted(BUILTIN_CATALOG))
def test_each_model_has_the_same_limits_in_both_tables(model):
    caps, limits = BUILTIN_CATALOG[model], OPENAI_LIMITS[model]
    differences = {name: pair for name, pair in _pairs(caps, limits).items() if pair[0] != pair[1]}
    assert differences == {}, f"{model}: package vs loopback server: {differences}"


# Sizes around every edge of the rules: both readings accept and refuse the same ones.
PROBE_SIZES = [
    (1024, 1024), (1536, 1024), (1024, 1536), (1536, 864), (1088, 608), (1024, 576), (1024, 640),
    (1008, 640), (3840, 2160), (2160, 3840), (3856, 2160), (3840, 2176), (3840, 1280), (3840, 1264),
    (1280, 3840), (2880, 2880), (2864, 2864), (1000, 1000), (2048, 2048), (4096, 1024), (16, 16),
]  # fmt: skip


@pytest.mark.parametrize("model", sorted(BUILTIN_CATALOG))
def test_each_model_accepts_the_same_explicit_sizes(model):
    caps, limits = BUILTIN_CATALOG[model], OPENAI_LIMITS[model]
    for width, height in PROBE_SIZES:
        package_ok = not package_size_problems(width, height, caps)
        server_ok = not server_size_problems(width, height, limits)
        assert package_ok == server_ok, f"{model} {width}x{height}: package {package_ok}, server {server_ok}"


def test_the_loopback_server_does_not_read_the_package_rules():
    """No module of django_gptimage.testing imports django_gptimage.domain, directly or relatively."""
    offenders = []
    for path in sorted(TESTING.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = ["." * node.level + (node.module or "")]
            for name in names:
                if name.startswith(("django_gptimage.domain", "..domain", "..")) and "testing" not in name:
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []


# The loopback server serves the catalog's ids, with their own limits ------------------------------


@pytest.fixture(scope="module")
def client():
    with FakeOpenAIServer() as server, httpx.Client(base_url=server.base_url, timeout=30) as http:
        yield http


def generate(client: httpx.Client, **body) -> httpx.Response:
    return client.post("/images/generations", json={"prompt": "a fox", **body})


@pytest.mark.parametrize("model", sorted(BUILTIN_CATALOG))
def test_the_server_serves_every_catalog_model(client, model):
    response = generate(client, model=model, size="1024x1024", quality="low")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("model", ["gpt-image-2.5-flare", "gpt-image-2.6-sunburst", "gpt-image-2.5"])
def test_the_server_takes_xhigh_and_max_for_the_newer_families(client, model):
    for quality in ("xhigh", "max"):
        response = generate(client, model=model, size="1536x864", quality=quality)
        assert response.status_code == 200, response.text
        assert response.json()["quality"] == quality


def test_the_server_refuses_xhigh_for_gpt_image_2(client):
    response = generate(client, model="gpt-image-2", quality="xhigh")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "quality"


@pytest.mark.parametrize(
    "model", ["gpt-image-3", "gpt-image-2.9", "gpt-image-2-flare-mini", "gpt-image-2-mini"]
)
def test_the_server_refuses_invented_models(client, model):
    response = generate(client, model=model)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"


def test_the_server_serves_further_models_when_told():
    server = FakeOpenAIServer(models={"gpt-image-2.7": "gpt-image-2.6"})
    with server, httpx.Client(base_url=server.base_url, timeout=30) as http:
        assert generate(http, model="gpt-image-2.7", quality="max").status_code == 200
        assert generate(http, model="gpt-image-2.7", size="1000x1000").status_code == 400
    with pytest.raises(ValueError, match="gpt-image-9"):
        FakeOpenAIServer(models={"gpt-image-2.7": "gpt-image-9"})


def test_the_server_in_its_own_process_serves_further_models_when_told():
    from django_gptimage.testing import serve_in_subprocess

    models = {"gpt-image-2.7": "gpt-image-2.6"}
    with serve_in_subprocess(models=models) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        assert generate(http, model="gpt-image-2.7", quality="xhigh").status_code == 200
        assert generate(http, model="gpt-image-2.8").status_code == 400
