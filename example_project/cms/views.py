from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .models import Article, Event, Product


def index(request: HttpRequest) -> HttpResponse:
    """The public front page: every article, event and product with its images."""
    return render(
        request,
        "cms/index.html",
        {
            "articles": Article.objects.all()[:50],
            "events": Event.objects.all()[:50],
            "products": Product.objects.all()[:50],
        },
    )
