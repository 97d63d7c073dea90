"""The browser test set-up itself: Chromium, the live server, the signed-in admin, workers, axe."""

from __future__ import annotations

from typing import Any

import pytest

from django_gptimage.models import ImageGeneration, Status
from django_gptimage.service import request_generation
from tests.conftest import wait_for


def test_admin_page_is_signed_in_and_static_files_load(admin_page: Any, shot: Any) -> None:
    response = admin_page.visit("/admin/")
    assert response.status == 200
    assert admin_page.get_by_role("link", name="Image generations").is_visible()
    # The admin's stylesheet came from the live server (staticfiles), so the page is styled.
    background = admin_page.evaluate("getComputedStyle(document.querySelector('#header')).backgroundColor")
    assert background not in ("", "rgba(0, 0, 0, 0)")
    path = shot(admin_page, "admin-index")
    assert path.stat().st_size > 5_000
    assert admin_page.console_errors == []
    assert admin_page.failed_responses == []


@pytest.mark.slow
def test_a_generation_runs_on_the_thread_worker_and_its_image_is_served(
    admin_page: Any, thread_worker: Any, shot: Any
) -> None:
    thread_worker(concurrency=1)
    generation = request_generation(prompt="A lighthouse at dusk", quality="low", user=admin_page.user)
    wait_for(
        lambda: ImageGeneration.objects.get(pk=generation.pk).status == Status.SUCCEEDED,
        timeout=60,
        what="the generation to succeed on the thread worker",
    )
    admin_page.visit(f"/admin/django_gptimage/imagegeneration/{generation.pk}/change/")
    image = admin_page.locator(".gptimage-result img").first  # the generation page shows its images large
    image.wait_for()
    # Loaded from MEDIA_URL through the live server: a decoded, non-empty image.
    wait_for(lambda: admin_page.evaluate("(img) => img.naturalWidth", image.element_handle()) > 0, timeout=20)
    shot(admin_page, "generation-page")


def test_axe_scan_finds_a_real_violation(page: Any, axe_scan: Any) -> None:
    # A page with an unlabeled text input and an image without alt text: axe must report them
    # (proves axe-core runs offline and the filter keeps serious/critical ones).
    page.visit("/admin/login/")
    page.evaluate(
        "document.body.insertAdjacentHTML('beforeend',"
        ' \'<div id="bad"><input type="text"><img src="/static/admin/img/icon-yes.svg"></div>\')'
    )
    ids = {v["id"] for v in axe_scan(page, "#bad")}
    assert {"label", "image-alt"} <= ids
