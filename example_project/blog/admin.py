from __future__ import annotations

from django.contrib import admin

from .models import Article


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "cover"]
    search_fields = ["title", "body"]
