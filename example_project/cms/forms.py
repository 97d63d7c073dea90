"""A front-end form with the Generate widget: an editor changes an article's cover outside the admin."""

from __future__ import annotations

from django import forms

from django_gptimage.widgets import GenerateImageField, GenerateImageFormMixin

from .models import Article


class ArticleCoverForm(GenerateImageFormMixin, forms.ModelForm):
    cover = GenerateImageField(
        preset="cms-cover",
        alt_field="cover_alt",
        renditions=[("card", "16:9"), ("social", "1.91:1")],
        required=False,
    )

    class Meta:
        model = Article
        fields = ["title", "summary", "cover", "cover_alt"]
