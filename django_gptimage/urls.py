"""URLs of the JSON endpoints; include with ``path("gptimage/", include("django_gptimage.urls"))``."""

from __future__ import annotations

from django.urls import path

from django_gptimage import views

app_name = "gptimage"

urlpatterns = [
    path("generations/<uuid:pk>/status/", views.generation_status_view, name="generation-status"),
]
