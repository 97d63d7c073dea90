"""apply_result into an S3 field (django-storages on moto), from results kept on local disk."""

from __future__ import annotations

import datetime
import hashlib

import pytest
from django.utils import timezone

from django_gptimage.service import apply_result, generate_for
from tests.test_storage_s3 import ANY_KEY, ANY_SECRET, REGION, moto_s3, new_bucket  # noqa: F401 (fixture)
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def bucket(settings, moto_s3, tmp_path):  # noqa: F811 - the imported fixture
    """Image fields on S3 (the default storage, file_overwrite as django-storages ships it);
    the generation's own results on local disk (GPTIMAGE["STORAGE"] = "results")."""
    name = new_bucket(moto_s3)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "endpoint_url": moto_s3.endpoint_url, "access_key": ANY_KEY, "secret_key": ANY_SECRET,
                "bucket_name": name, "region_name": REGION, "addressing_style": "path",
            },
        },
        "results": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }  # fmt: skip
    settings.GPTIMAGE = {**settings.GPTIMAGE, "STORAGE": "results"}
    return name


def keys(moto_s3, bucket: str) -> list[str]:  # noqa: F811
    return sorted(o["Key"] for o in moto_s3.client().list_objects_v2(Bucket=bucket).get("Contents", []))


def test_apply_writes_into_s3_with_the_fields_upload_to(gptimage_openai, moto_s3, bucket):  # noqa: F811
    article = Article.objects.create(title="Jazz night", date=datetime.date(2026, 5, 1))
    [generation] = generate_for(article, "cover", template="Cover for {{ object.title }}", quality="low", n=2)
    first, second = generation.images.order_by("index")
    assert keys(moto_s3, bucket) == []  # the results themselves stay on local disk

    applied = apply_result(first)

    year = timezone.now().year
    assert applied.name == f"covers/{year}/cover-{first.sha256[:12]}.png"
    client = moto_s3.client()
    head = client.head_object(Bucket=bucket, Key=applied.name)
    assert head["ContentType"] == "image/png" and head["ContentLength"] == first.size_bytes
    body = client.get_object(Bucket=bucket, Key=applied.name)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == first.sha256
    assert Article.objects.get(pk=article.pk).cover.name == applied.name

    assert not apply_result(first).written  # idempotent: one object, one write
    assert keys(moto_s3, bucket) == [applied.name]

    replaced = apply_result(second, delete_previous=True)
    assert keys(moto_s3, bucket) == [replaced.name]  # the previous object is gone from the bucket

    # A key someone else's file already has is never overwritten (S3 would, silently).
    other = Article.objects.create(title="Other")
    [again] = generate_for(other, "cover", template="Cover for {{ object.title }}", quality="low")
    image = again.images.get()
    taken = f"covers/{year}/cover-{image.sha256[:12]}.png"
    client.put_object(Bucket=bucket, Key=taken, Body=b"someone else's file")
    placed = apply_result(image)
    assert placed.name == f"covers/{year}/cover-{image.sha256[:12]}-1.png"
    assert client.get_object(Bucket=bucket, Key=taken)["Body"].read() == b"someone else's file"
