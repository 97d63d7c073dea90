"""Models with image fields for the tests (and the faces' tests): an article and a product."""

from __future__ import annotations

from django.db import models


class Article(models.Model):
    title = models.CharField(max_length=200)
    venue = models.CharField(max_length=200, blank=True)
    date = models.DateField(null=True, blank=True)
    body = models.TextField(blank=True)
    cover = models.ImageField(upload_to="covers/%Y/", blank=True)
    cover_alt = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return self.title


class Product(models.Model):
    name = models.CharField(max_length=200)
    photo = models.ImageField(upload_to="products/", blank=True)
    main_visual = models.ImageField(upload_to="products/main/", blank=True)
    ad_creative = models.ImageField(upload_to="products/ads/", blank=True)
    detail_image = models.ImageField(upload_to="products/detail/", blank=True)

    def __str__(self) -> str:
        return self.name


class Gallery(models.Model):
    """A page of slides: several image fields on one admin page (an inline), each its own widget."""

    title = models.CharField(max_length=200)

    class Meta:
        verbose_name_plural = "galleries"

    def __str__(self) -> str:
        return self.title


class Slide(models.Model):
    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="slides")
    caption = models.CharField(max_length=200, blank=True)
    image = models.ImageField(upload_to="slides/", blank=True)

    def __str__(self) -> str:
        return self.caption or f"Slide {self.pk}"
