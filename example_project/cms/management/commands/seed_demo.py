"""``manage.py seed_demo``: the example site's sample articles, events and products.

Idempotent: content is matched by title/name, so running it again adds only what is missing.
``run_demo.py`` runs it on first start (when the CMS has no content at all). Products get a
small drawn "uploaded photo" so image-to-image presets have a source to start from; every
generated field (covers, posters, visuals) is left empty for the editor or the hooks to fill.
"""

from __future__ import annotations

import datetime
import hashlib
import io
from typing import Any

from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageDraw, ImageFont

from cms.models import Article, Event, Product

ARTICLES = [
    {
        "title": "Urban beekeeping on Paris rooftops",
        "summary": "Hives above the Opéra and the people who climb up to tend them at dawn.",
        "body": "Paris counts more than a thousand rooftop hives. We followed three beekeepers "
        "through a season, from the first spring inspection to the September harvest.",
    },
    {
        "title": "A night train across the Alps",
        "summary": "Twelve hours, four countries and one dining car that refuses to close.",
        "body": "The sleeper leaves Zurich at nine and wakes you in Vienna with coffee and snow.",
    },
    {
        "title": "The return of the neighbourhood bakery",
        "summary": "Sourdough, long queues and why small bakeries are opening again.",
        "body": "Across the city, a new generation of bakers is reviving shops that closed decades ago.",
    },
]

EVENTS = [
    {
        "title": "Jazz on the Quay",
        "venue": "Harbour Stage, Pier 4",
        "days": 12,
        "description": "An open-air evening of jazz by the water, with the Lina Ortega Quartet.",
    },
    {
        "title": "Printmaking Workshop",
        "venue": "Atelier Nord, 18 Rue des Arts",
        "days": 26,
        "description": "Linocut and risograph for beginners; materials provided.",
    },
]

PRODUCTS = [
    {
        "name": "Ceramic pour-over coffee dripper",
        "description": "Hand-glazed stoneware dripper in sea-green, fits standard #2 filters.",
        "price": "34.00",
        "colour": (46, 139, 120),
    },
    {
        "name": "Waxed canvas weekend bag",
        "description": "Olive waxed canvas, leather handles, brass hardware; 38 litres.",
        "price": "129.00",
        "colour": (104, 112, 62),
    },
]


def sample_photo(name: str, colour: tuple[int, int, int]) -> ContentFile:
    """A simple 1024x1024 studio-style JPEG standing in for a photo an editor uploaded."""
    image = Image.new("RGB", (1024, 1024), (236, 234, 228))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 700, 1024, 1024), fill=(214, 211, 204))
    draw.ellipse((292, 660, 732, 740), fill=(190, 186, 178))
    shape = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 2
    if shape:
        draw.rounded_rectangle((332, 320, 692, 700), radius=60, fill=colour)
    else:
        draw.polygon([(312, 330), (712, 330), (592, 700), (432, 700)], fill=colour)
    try:
        font: Any = ImageFont.load_default(size=36)
    except (TypeError, OSError):
        font = ImageFont.load_default()
    draw.text((512, 820), name, font=font, fill=(90, 90, 90), anchor="ma")
    draw.text((512, 880), "sample product photo", font=font, fill=(140, 140, 140), anchor="ma")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88)
    return ContentFile(buffer.getvalue())


class Command(BaseCommand):
    help = "Create the example site's sample articles, events and products (only those missing)."

    def handle(self, *args: Any, **options: Any) -> None:
        created = {"articles": 0, "events": 0, "products": 0}
        today = timezone.localdate()
        with transaction.atomic():
            for data in ARTICLES:
                _, new = Article.objects.get_or_create(title=data["title"], defaults=data)
                created["articles"] += new
            for data in EVENTS:
                fields = {k: v for k, v in data.items() if k != "days"}
                fields["date"] = today + datetime.timedelta(days=data["days"])
                _, new = Event.objects.get_or_create(title=data["title"], defaults=fields)
                created["events"] += new
            for data in PRODUCTS:
                if Product.objects.filter(name=data["name"]).exists():
                    continue
                product = Product(name=data["name"], description=data["description"], price=data["price"])
                slug = data["name"].lower().replace(" ", "-")[:40]
                product.photo.save(f"{slug}.jpg", sample_photo(data["name"], data["colour"]), save=False)
                product.save()
                created["products"] += 1
        summary = ", ".join(f"{count} {kind}" for kind, count in created.items())
        if options["verbosity"]:
            self.stdout.write(self.style.SUCCESS(f"Sample content created: {summary}."))
