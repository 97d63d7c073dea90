# Errors are stored as a code and its facts; the words are rendered (and translated) when shown.
# Old rows keep their message: what can be taken apart becomes facts, the rest is kept whole.

from django.db import migrations, models

from django_gptimage.domain.errors import ErrorCode
from django_gptimage.domain.messages import parse_legacy, render

BATCH = 500


def _attempt_code(outcome):
    return outcome if outcome in ErrorCode._value2member_map_ else ""


def forwards(apps, schema_editor):
    for model, code_of in (
        (apps.get_model("django_gptimage", "ImageGeneration"), lambda row: row.error_code),
        (apps.get_model("django_gptimage", "GenerationAttempt"), lambda row: _attempt_code(row.outcome)),
    ):
        rows = model.objects.exclude(error_message="").only("pk", "error_message", *(
            ["error_code"] if model.__name__ == "ImageGeneration" else ["outcome"]
        ))
        changed = []
        for row in rows.iterator(chunk_size=BATCH):
            row.error_detail = parse_legacy(code_of(row), row.error_message)
            changed.append(row)
            if len(changed) >= BATCH:
                model.objects.bulk_update(changed, ["error_detail"])
                changed = []
        if changed:
            model.objects.bulk_update(changed, ["error_detail"])


def backwards(apps, schema_editor):
    for model, code_of in (
        (apps.get_model("django_gptimage", "ImageGeneration"), lambda row: row.error_code),
        (apps.get_model("django_gptimage", "GenerationAttempt"), lambda row: _attempt_code(row.outcome)),
    ):
        changed = []
        for row in model.objects.exclude(error_detail=[]).iterator(chunk_size=BATCH):
            row.error_message = render(code_of(row), row.error_detail).text
            changed.append(row)
        model.objects.bulk_update(changed, ["error_message"], batch_size=BATCH)


class Migration(migrations.Migration):

    dependencies = [
        ('django_gptimage', '0008_credits'),
    ]

    operations = [
        migrations.AddField(
            model_name='generationattempt',
            name='error_detail',
            field=models.JSONField(blank=True, default=list, help_text='The facts of the error.'),
        ),
        migrations.AddField(
            model_name='imagegeneration',
            name='error_detail',
            field=models.JSONField(blank=True, default=list, help_text='The facts of the error (what the image service said, …).'),
        ),
        migrations.RunPython(forwards, backwards),
        migrations.RemoveField(
            model_name='generationattempt',
            name='error_message',
        ),
        migrations.RemoveField(
            model_name='imagegeneration',
            name='error_message',
        ),
    ]
