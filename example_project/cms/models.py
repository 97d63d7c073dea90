"""The example site's content: what a small CMS holds, with the image fields editors fill.

Articles get a cover, events a poster, products a main visual, an ad creative and a detail-page
image (the uploaded ``photo`` is the source an image-to-image preset can start from).
"""

from __future__ import annotations

from django.db import models
from django.urls import reverse


class Article(models.Model):
    title = models.CharField(max_length=200)
    summary = models.CharField(
        max_length=300, blank=True, help_text="One or two sentences for lists and prompts."
    )
    body = models.TextField(blank=True)
    cover = models.ImageField(upload_to="cms/articles/", blank=True)
    cover_alt = models.CharField(max_length=500, blank=True, help_text="Alternative text of the cover.")
    published_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-published_at", "-id"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("cms:index") + f"#article-{self.pk}"


class Event(models.Model):
    title = models.CharField(max_length=200)
    venue = models.CharField(max_length=200)
    date = models.DateField()
    description = models.TextField(blank=True)
    poster = models.ImageField(upload_to="cms/events/", blank=True)
    poster_alt = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["date", "id"]

    def __str__(self) -> str:
        return f"{self.title} ({self.date:%d %b %Y})"

    def get_absolute_url(self) -> str:
        return reverse("cms:index") + f"#event-{self.pk}"


class Product(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    photo = models.ImageField(
        upload_to="cms/products/photos/", blank=True, help_text="The uploaded product photo."
    )
    main_visual = models.ImageField(upload_to="cms/products/main/", blank=True)
    ad_creative = models.ImageField(upload_to="cms/products/ads/", blank=True)
    detail_image = models.ImageField(upload_to="cms/products/detail/", blank=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("cms:index") + f"#product-{self.pk}"

    @property
    def extra_visuals(self) -> list[tuple[models.fields.files.FieldFile, str]]:
        """The visuals shown under the main one on the front page, with their labels."""
        return [(self.photo, "photo"), (self.ad_creative, "ad creative"), (self.detail_image, "detail image")]
