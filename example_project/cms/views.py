from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from .forms import ArticleCoverForm
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


@login_required(login_url="admin:login")
def edit_article(request: HttpRequest, pk: int) -> HttpResponse:
    """A plain Django form (not the admin) with the Generate widget on the cover."""
    article = get_object_or_404(Article, pk=pk)
    form = ArticleCoverForm(request.POST or None, request.FILES or None, instance=article, user=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()  # applies the picked candidate once the article is saved
        return redirect(article)
    return render(request, "cms/edit_article.html", {"form": form, "article": article})
