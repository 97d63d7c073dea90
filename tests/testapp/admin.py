"""The test app's admin: what a site writes to generate into its own models from the admin."""

from __future__ import annotations

from django.contrib import admin

from django_gptimage.admin import GenerateImageAdminMixin, GenerationsPanelMixin, generate_images_action

from .models import Article, Gallery, Product, Slide


@admin.register(Article)
class ArticleAdmin(GenerateImageAdminMixin, GenerationsPanelMixin, admin.ModelAdmin):
    list_display = ["title", "cover"]
    gptimage_widgets = {
        "cover": {
            "preset": "cover",
            "alt_field": "cover_alt",
            "renditions": [("card", "4:3"), ("hero", "21:9"), ("social", "1.91:1")],
        }
    }
    actions = [
        generate_images_action(field="cover", preset="cover"),
        generate_images_action(field="cover", preset="square", description="Generate square covers (1K)"),
        generate_images_action(
            field="cover",
            template="{{ object.body }}",
            ratio="1:1",
            description="Generate covers from the body",
        ),
    ]


@admin.register(Product)
class ProductAdmin(GenerationsPanelMixin, admin.ModelAdmin):
    list_display = ["name"]
    gptimage_fields = ("main_visual", "ad_creative", "detail_image")
    actions = [generate_images_action(field="main_visual", preset="product")]


class SlideInline(GenerateImageAdminMixin, admin.StackedInline):
    model = Slide
    extra = 2
    gptimage_widgets = {"image": {"template": "A slide for {{ object.caption }}"}}


@admin.register(Gallery)
class GalleryAdmin(GenerateImageAdminMixin, admin.ModelAdmin):
    inlines = [SlideInline]
