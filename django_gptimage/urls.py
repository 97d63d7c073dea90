"""URLs of the JSON endpoints; include with ``path("gptimage/", include("django_gptimage.urls"))``."""

from __future__ import annotations

from django.urls import path

from django_gptimage import views, widget_views

app_name = "gptimage"

urlpatterns = [
    path("generations/<uuid:pk>/status/", views.generation_status_view, name="generation-status"),
    path("widget/generate/", widget_views.widget_generate_view, name="widget-generate"),
    path("widget/prompt/", widget_views.widget_prompt_view, name="widget-prompt"),
    path("widget/history/", widget_views.widget_history_view, name="widget-history"),
]
