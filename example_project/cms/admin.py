from __future__ import annotations

from django.contrib import admin
from django.db.models import Model
from django.utils.html import format_html

from django_gptimage.admin import GenerateImageAdminMixin, GenerationsPanelMixin

from .models import Article, Event, Product


def thumbnail(field: str, label: str):
    """A list_display column showing the image in ``field`` small, or a dash."""

    @admin.display(description=label)
    def column(obj: Model) -> str:
        image = getattr(obj, field)
        if not image:
            return "–"
        return format_html('<img src="{}" alt="" style="height:48px;border-radius:3px">', image.url)

    column.__name__ = f"{field}_thumbnail"
    return column


@admin.register(Article)
class ArticleAdmin(
    GenerateImageAdminMixin, GenerationsPanelMixin, admin.ModelAdmin
):  # + the hook's generations
    gptimage_widgets = {
        "cover": {
            "preset": "cms-cover",
            "alt_field": "cover_alt",
            "renditions": [("card", "16:9"), ("hero", "21:9"), ("social", "1.91:1")],
        }
    }
    list_display = ["title", thumbnail("cover", "cover"), "published_at"]
    search_fields = ["title", "summary", "body"]
    fields = ["title", "summary", "body", "cover", "cover_alt"]


@admin.register(Event)
class EventAdmin(GenerateImageAdminMixin, admin.ModelAdmin):
    gptimage_widgets = {"poster": {"preset": "poster", "alt_field": "poster_alt"}}
    list_display = ["title", "venue", "date", thumbnail("poster", "poster")]
    list_filter = ["date"]
    search_fields = ["title", "venue", "description"]
    fields = ["title", "venue", "date", "description", "poster", "poster_alt"]


@admin.register(Product)
class ProductAdmin(GenerateImageAdminMixin, GenerationsPanelMixin, admin.ModelAdmin):
    gptimage_widgets = {  # the cms-product preset has an output for each visual; the photo is uploaded
        "main_visual": {"preset": "cms-product"},
        "ad_creative": {"preset": "cms-product"},
        "detail_image": {"preset": "cms-product"},
    }
    list_display = [
        "name",
        "price",
        thumbnail("photo", "photo"),
        thumbnail("main_visual", "main visual"),
        thumbnail("ad_creative", "ad creative"),
        thumbnail("detail_image", "detail image"),
    ]
    search_fields = ["name", "description"]
    fieldsets = [
        (None, {"fields": ["name", "description", "price", "photo"]}),
        ("Visuals", {"fields": ["main_visual", "ad_creative", "detail_image"]}),
    ]
