"""Indexes for the admin history's search: the provider's request id, and the prompt on PostgreSQL.

The admin searches the prompt with ``icontains`` (``UPPER(prompt) LIKE UPPER('%word%')``). Without
an index on that expression PostgreSQL has no statistics for it, guesses that a handful of rows
match, and sorts a sequential scan of the whole history for every search, even for a word on
every row (300 ms at 100,000 rows). A GIN trigram index on ``UPPER(prompt)`` serves rare words
from the index, and ANALYZE keeps statistics on the expression, so a common word reads the newest
rows by ``created_at`` and stops at the first page.

The search is ``prompt ILIKE … OR provider_request_id = …``: the OR can use the indexes only if
both sides have one, hence the plain index on ``provider_request_id`` (on every database).

``pg_trgm`` is a trusted extension (PostgreSQL 13+): the site's database owner can create it.
Where it cannot be created the migration skips the index (search works, only slower); system
check ``django_gptimage.W008`` says so. Other databases are left alone.
"""

import logging

from django.db import migrations, models, transaction

logger = logging.getLogger("django_gptimage")

INDEX = "gptimage_prompt_trgm"
TABLE = "django_gptimage_imagegeneration"


def create_index(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except Exception as exc:  # noqa: BLE001 - permission denied, extension not installed, ...
        logger.warning("django_gptimage: pg_trgm unavailable, prompt search stays unindexed: %s", exc)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON {TABLE} USING gin (UPPER(prompt) gin_trgm_ops)"
        )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("django_gptimage", "0005_targets_presets")]

    operations = [
        # Searched together with the prompt (``OR``): without its own index the OR reads every row.
        migrations.AddIndex(
            model_name="imagegeneration",
            index=models.Index(fields=["provider_request_id"], name="gptimage_provider_request"),
        ),
        migrations.RunPython(create_index, drop_index, elidable=False),
    ]
