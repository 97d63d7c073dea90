"""The shipped plans: free unlocks 1K, paid unlocks 2K and 4K (docs/access.md)."""

from django.db import migrations

PLANS = [
    {
        "name": "free",
        "label": "Free",
        "rank": 0,
        "tiers": ["1K"],
        "description": "1K images. The default plan of every user (DEFAULT_PLAN).",
    },
    {
        "name": "paid",
        "label": "Paid",
        "rank": 10,
        "tiers": ["1K", "2K", "4K"],
        "description": "1K, 2K and 4K images.",
    },
]


def create_plans(apps, schema_editor):
    AccessPlan = apps.get_model("django_gptimage", "AccessPlan")
    for plan in PLANS:
        AccessPlan.objects.get_or_create(name=plan["name"], defaults=plan)


class Migration(migrations.Migration):
    dependencies = [("django_gptimage", "0002_access")]
    operations = [migrations.RunPython(create_plans, migrations.RunPython.noop)]
