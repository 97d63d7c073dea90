"""A front-end page (not the admin) with the Generate widget, for the browser tests."""

from __future__ import annotations

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from django_gptimage.widgets import GenerateImageField, GenerateImageFormMixin

from .models import Article


class CoverForm(GenerateImageFormMixin, forms.ModelForm):
    cover = GenerateImageField(preset="square", alt_field="cover_alt", required=False)

    class Meta:
        model = Article
        fields = ["title", "cover", "cover_alt"]


def edit_cover(request: HttpRequest, pk: int) -> HttpResponse:
    article = get_object_or_404(Article, pk=pk)
    form = CoverForm(request.POST or None, request.FILES or None, instance=article, user=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        return redirect(request.path + "?saved=1")
    return render(request, "testapp/edit_cover.html", {"form": form})
