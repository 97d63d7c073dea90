from __future__ import annotations

from django.urls import path

from . import views

app_name = "cms"
urlpatterns = [
    path("", views.index, name="index"),
    path("articles/<int:pk>/edit/", views.edit_article, name="edit-article"),
]
