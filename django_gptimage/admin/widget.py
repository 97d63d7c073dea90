"""The Generate widget on the site's own ModelAdmins (and their inlines): one line to opt in.

    from django_gptimage.admin import GenerateImageAdminMixin

    @admin.register(Article)
    class ArticleAdmin(GenerateImageAdminMixin, admin.ModelAdmin):
        gptimage_widgets = {"cover": {"preset": "cover", "alt_field": "cover_alt"}}

Every file and image field of the form gets the panel (``gptimage_widgets`` names fields and
their widget options; ``gptimage_only_listed = True`` leaves the others alone). The same mixin
works on a ``TabularInline`` / ``StackedInline``. Thin: the widget and the form mixin call the
service.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.http import HttpRequest

from django_gptimage.widgets import ADMIN_INPUT_TEMPLATE, GenerateImageFormMixin, GenerateImageWidget

__all__ = ["GenerateImageAdminMixin"]


def _with_mixin(form: type[Any], user: Any) -> type[Any]:
    bases = (form,) if issubclass(form, GenerateImageFormMixin) else (GenerateImageFormMixin, form)
    return type(form.__name__, bases, {"gptimage_user": user, "__module__": form.__module__})


class GenerateImageAdminMixin:
    """Puts :class:`~django_gptimage.widgets.GenerateImageWidget` on file/image fields and
    applies the picked candidates when the form (or an inline formset) is saved."""

    gptimage_widgets: dict[str, dict[str, Any]] = {}
    gptimage_only_listed = False

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)  # type: ignore[misc]
        if formfield is None or not isinstance(db_field, models.FileField):
            return formfield
        listed = db_field.name in self.gptimage_widgets
        if not listed and self.gptimage_only_listed and not isinstance(formfield.widget, GenerateImageWidget):
            return formfield
        widget = formfield.widget
        if not isinstance(widget, GenerateImageWidget):
            options = {
                "input_template_name": ADMIN_INPUT_TEMPLATE,
                **self.gptimage_widgets.get(db_field.name, {}),
            }
            widget = GenerateImageWidget(attrs=dict(getattr(formfield.widget, "attrs", {}) or {}), **options)
            formfield.widget = widget
        widget.bind(model=db_field.model, field_name=db_field.name, user=request.user)
        return formfield

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)  # type: ignore[misc]
        return _with_mixin(form, request.user)

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)  # type: ignore[misc]
        formset.form = _with_mixin(formset.form, request.user)
        return formset
