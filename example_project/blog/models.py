"""A minimal content model with an image field to generate into."""

from __future__ import annotations

from django.db import models


class Article(models.Model):
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    cover = models.ImageField(blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.title
