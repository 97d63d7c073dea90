from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

from tests.testapp.views import edit_cover


def media(request, path):  # type: ignore[no-untyped-def]
    # Browser tests load generated images; MEDIA_ROOT is read per request (tests change it).
    return serve(request, path, document_root=settings.MEDIA_ROOT)


urlpatterns = [
    path("admin/", admin.site.urls),
    path("django-rq/", include("django_rq.urls")),
    path("gptimage/", include("django_gptimage.urls")),
    re_path(r"^media/(?P<path>.*)$", media),
    path("articles/<int:pk>/cover/", edit_cover, name="edit-cover"),
]
