"""The offline provider: real images of the exact size and format, with no network at all."""

from __future__ import annotations

import hashlib
import socket

import pytest
from PIL import Image

from django_gptimage.providers import get_provider, reset_providers
from django_gptimage.providers.base import ProviderRequest
from django_gptimage.providers.offline import OfflineProvider

PIL_NAMES = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def request(**overrides) -> ProviderRequest:
    fields = {
        "model": "gpt-image-2",
        "prompt": "A red bicycle leaning on a blue wall",
        "mode": "text-to-image",
        "size": "1024x1024",
    }
    return ProviderRequest(**{**fields, **overrides})


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the offline provider must not touch the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def spool(tmp_path):
    return str(tmp_path / "spool")


def test_the_network_guard_works():
    with pytest.raises(AssertionError):
        socket.create_connection(("127.0.0.1", 9))


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
@pytest.mark.parametrize("size", ["1024x1024", "1536x864", "864x1536", "2048x1152", "3840x2160"])
def test_exact_size_and_format(spool, fmt, size):
    result = OfflineProvider().generate(request(size=size, output_format=fmt), spool_dir=spool)
    (f,) = result.files
    width, height = (int(v) for v in size.split("x"))
    with Image.open(f.path) as im:
        assert im.format == PIL_NAMES[fmt]
        assert im.size == (width, height)
        im.verify()
    with open(f.path, "rb") as fh:
        data = fh.read()
    assert len(data) == f.size_bytes
    assert hashlib.sha256(data).hexdigest() == f.sha256
    assert result.size == size
    assert result.output_format == fmt
    assert result.usage is None  # nothing billed
    assert result.request_id.startswith("offline-")


def test_auto_size_is_1024_square(spool):
    result = OfflineProvider().generate(request(size="auto"), spool_dir=spool)
    with Image.open(result.files[0].path) as im:
        assert im.size == (1024, 1024)
    assert result.size == "1024x1024"


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_transparent_background_has_alpha(spool, fmt):
    result = OfflineProvider().generate(
        request(size="1536x1024", output_format=fmt, background="transparent"), spool_dir=spool
    )
    assert result.background == "transparent"
    with Image.open(result.files[0].path) as im:
        assert im.mode == "RGBA"
        low, high = im.getchannel("A").getextrema()
    assert low < 255  # really see-through somewhere


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_opaque_background_has_no_alpha(spool, fmt):
    result = OfflineProvider().generate(request(output_format=fmt, background="opaque"), spool_dir=spool)
    assert result.background == "opaque"
    with Image.open(result.files[0].path) as im:
        assert im.mode == "RGB"


def test_jpeg_compression_changes_the_bytes(spool, tmp_path):
    small = OfflineProvider().generate(
        request(output_format="jpeg", output_compression=10), spool_dir=str(tmp_path / "a")
    )
    large = OfflineProvider().generate(
        request(output_format="jpeg", output_compression=95), spool_dir=str(tmp_path / "b")
    )
    assert small.files[0].size_bytes < large.files[0].size_bytes


def test_n_images_differ(spool):
    result = OfflineProvider().generate(request(n=4, size="1536x864"), spool_dir=spool)
    assert [f.index for f in result.files] == [0, 1, 2, 3]
    assert len({f.sha256 for f in result.files}) == 4
    assert len({f.path for f in result.files}) == 4
    for f in result.files:
        with Image.open(f.path) as im:
            assert im.size == (1536, 864)


def test_quality_is_reported(spool):
    assert OfflineProvider().generate(request(), spool_dir=spool).quality == "medium"  # auto
    assert OfflineProvider().generate(request(quality="high"), spool_dir=spool).quality == "high"


def test_progress_phases_without_partials(spool):
    phases = []
    OfflineProvider().generate(request(), spool_dir=spool, progress=lambda p, d: phases.append(p))
    assert phases == ["sending", "waiting", "receiving"]


def test_partial_preview_when_asked(spool):
    events = []

    def progress(phase, data):
        events.append((phase, dict(data)))
        if phase == "partial":
            with Image.open(data["path"]) as im:
                events.append(("preview", {"format": im.format, "size": im.size}))

    result = OfflineProvider().generate(
        request(size="2048x1152", partial_images=2), spool_dir=spool, progress=progress
    )
    phases = [p for p, _ in events]
    assert phases == ["sending", "waiting", "partial", "preview", "receiving"]
    assert events[2][1]["index"] == 0
    assert events[3][1] == {"format": "PNG", "size": (2048, 1152)}
    assert events[2][1]["path"] not in {f.path for f in result.files}


def test_image_to_image_request_is_served_without_reading_inputs(spool):
    # The offline provider ignores input images; it must not need them to exist.
    from django_gptimage.providers.base import InputFile

    result = OfflineProvider().generate(
        request(mode="image-to-image", images=(InputFile("x.png", "/nonexistent/x.png", "image/png"),)),
        spool_dir=spool,
    )
    assert len(result.files) == 1


def test_delay_option(spool):
    import time

    started = time.monotonic()
    OfflineProvider(delay=0.3).generate(request(size="1024x1024"), spool_dir=spool)
    assert time.monotonic() - started >= 0.3


def test_offline_is_the_default_without_a_key(settings, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings.GPTIMAGE = {k: v for k, v in settings.GPTIMAGE.items() if k not in ("PROVIDER", "API_KEY")}
    reset_providers()
    try:
        provider = get_provider()
        assert isinstance(provider, OfflineProvider)
        assert getattr(provider, "billable", True) is False
    finally:
        reset_providers()


def test_provider_options_reach_the_offline_provider(settings):
    settings.GPTIMAGE = {**settings.GPTIMAGE, "PROVIDER": "offline", "PROVIDER_OPTIONS": {"delay": 0.25}}
    reset_providers()
    try:
        assert get_provider().delay == 0.25
    finally:
        reset_providers()


# --- The placeholder reads as what was asked for -------------------------------------------


def _digest(spool_dir, **overrides) -> str:
    return OfflineProvider().generate(request(**overrides), spool_dir=spool_dir).files[0].sha256


def test_same_request_draws_the_same_pixels(tmp_path):
    assert _digest(str(tmp_path / "a"), size="1536x864") == _digest(str(tmp_path / "b"), size="1536x864")


@pytest.mark.parametrize(
    "change",
    [{"prompt": "A green bicycle"}, {"quality": "high"}, {"size": "1536x1024"}, {"model": "gpt-image-1"}],
)
def test_a_different_request_draws_different_pixels(tmp_path, change):
    assert _digest(str(tmp_path / "a")) != _digest(str(tmp_path / "b"), **change)


@pytest.mark.parametrize(
    ("prompt", "size", "kind"),
    [
        ("Jazz evening by the harbour", "1024x1536", "poster"),  # portrait: a poster
        ("Jazz evening by the harbour", "1536x1024", "cover"),  # landscape: a cover
        ("Jazz evening by the harbour", "1024x1024", "product"),  # square: a product card
        ("Poster for a jazz evening", "1536x1024", "poster"),  # the words win over the shape
        ("Ad creative for a waxed canvas bag", "1024x1024", "ad"),
        ("Product shot of a ceramic dripper", "1536x1024", "product"),
        ("Cover for an article about bees", "1024x1536", "cover"),
    ],
)
def test_the_composition_follows_the_request(prompt, size, kind):
    from django_gptimage.providers.placeholder import kind_of

    width, height = (int(v) for v in size.split("x"))
    assert kind_of(prompt, width, height) == kind


@pytest.mark.parametrize(
    ("prompt", "title"),
    [
        (
            "A cover for an article about urban beekeeping on Paris rooftops",
            "Urban beekeeping on Paris rooftops",
        ),
        ("Poster for 'Jazz on the Quay', an open-air evening", "Jazz on the Quay"),
        ("Product photo of a ceramic dripper, studio light, white background", "Ceramic dripper"),
        ("Sunlit kitchen. Warm tones.", "Sunlit kitchen"),
        (
            "one two three four five six seven eight nine ten eleven",
            "One two three four five six seven eight nine…",
        ),
        ("", "Untitled"),
    ],
)
def test_the_title_comes_from_the_prompt(prompt, title):
    from django_gptimage.providers.placeholder import title_of

    assert title_of(prompt) == title


def test_the_spec_names_ratio_tier_size_and_quality():
    from django_gptimage.providers.placeholder import spec_lines

    spec, sub = spec_lines(request(quality="high", n=2), 2048, 1152, index=1)
    assert spec.split("  ·  ") == ["16:9", "2K", "2048x1152", "high"]
    assert "image 2 of 2" in sub and "text-to-image" in sub and "offline" in sub


@pytest.mark.parametrize("size", ["1024x1536", "1536x1024", "1024x1024", "3840x2160", "2160x3840"])
def test_the_spec_strip_is_drawn(spool, size):
    """The bottom strip is darkened and carries light text: both extremes appear there."""
    result = OfflineProvider().generate(request(size=size), spool_dir=spool)
    with Image.open(result.files[0].path) as im:
        width, height = im.size
        strip = im.convert("L").crop((0, height - min(width, height) // 12, width // 2, height - 4))
        low, high = strip.getextrema()
    assert high >= 200  # white text
    assert low <= 90  # on a darkened band
