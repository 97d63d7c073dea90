"""Results stored to S3 with django-storages, against moto in server mode on 127.0.0.1.

Two moto servers: one in a thread of this process for the whole session (any credentials
work), and one in a separate process with IAM authentication switched on. The switch
(``/moto-api/reset-auth``) sets a module-level moto setting, so a second *threaded* server
in this process would share it: the auth server has to be its own process.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from django_gptimage.models import ImageGeneration, Status, get_storage
from django_gptimage.service import request_generation, retry_generation

pytestmark = pytest.mark.django_db(transaction=True)

REGION = "us-east-1"
ANY_KEY, ANY_SECRET = "testing-key", "testing-secret"


@dataclass(frozen=True)
class Moto:
    endpoint_url: str

    def client(self, key: str = ANY_KEY, secret: str = ANY_SECRET) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=Config(s3={"addressing_style": "path"}),
        )


def _wait_until_up(url: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{url}/moto-api/data.json", timeout=1.0)
            return
        except httpx.TransportError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[Moto]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield Moto(f"http://{host}:{port}")
    finally:
        server.stop()  # shuts the werkzeug server down and joins its thread


@dataclass(frozen=True)
class AuthMoto(Moto):
    bucket: str
    key: str
    secret: str


@pytest.fixture(scope="module")
def moto_s3_auth() -> Iterator[AuthMoto]:
    """A dedicated moto server process with IAM auth on, one bucket, and one valid key pair."""
    moto_server = os.path.join(os.path.dirname(sys.executable), "moto_server")
    for _ in range(3):  # the free port could be taken between finding and binding it
        port = _free_port()
        process = subprocess.Popen(
            [moto_server, "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(url, process)
            break
        except RuntimeError:
            continue
    else:
        pytest.fail("could not start moto_server")
    try:
        # Set up while auth is still off: a user allowed everything on S3, and the bucket.
        iam = boto3.client(
            "iam",
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id=ANY_KEY,
            aws_secret_access_key=ANY_SECRET,
        )
        iam.create_user(UserName="site")
        iam.put_user_policy(
            UserName="site",
            PolicyName="s3",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                }
            ),
        )
        access = iam.create_access_key(UserName="site")["AccessKey"]
        Moto(url).client().create_bucket(Bucket="auth-bucket")
        answer = httpx.post(
            f"{url}/moto-api/reset-auth", content=b"0", headers={"Content-Type": "text/plain"}
        )
        assert answer.status_code == 200, answer.text
        yield AuthMoto(url, "auth-bucket", access["AccessKeyId"], access["SecretAccessKey"])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def s3_settings(
    settings: Any, moto: Moto, bucket: str, *, key: str = ANY_KEY, secret: str = ANY_SECRET, **options: Any
) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "gptimage": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "endpoint_url": moto.endpoint_url,
                "access_key": key,
                "secret_key": secret,
                "bucket_name": bucket,
                "region_name": REGION,
                "addressing_style": "path",
                "file_overwrite": False,
                **options,
            },
        },
    }
    settings.GPTIMAGE = {**settings.GPTIMAGE, "STORAGE": "gptimage"}


@pytest.fixture
def openai(gptimage_openai, settings, tmp_path):
    """The fake OpenAI server as provider, a fresh spool directory, quick store-only retries."""
    settings.GPTIMAGE = {**settings.GPTIMAGE, "SPOOL_DIR": str(tmp_path / "spool"), "MAX_ATTEMPTS": 2}
    return gptimage_openai


def new_bucket(moto: Moto, create: bool = True) -> str:
    name = f"gptimage-{uuid.uuid4().hex[:12]}"
    if create:
        moto.client().create_bucket(Bucket=name)
    return name


def image_requests(server: Any) -> int:
    return sum(1 for r in server.requests if r.path.startswith("/v1/images/"))


def assert_kept(generation: ImageGeneration) -> None:
    """Failed with storage_error, the paid-for bytes still in the spool and recorded."""
    assert generation.status == Status.FAILED
    assert generation.error_code == "storage_error"
    assert "has been kept" in generation.editor_message
    spooled = generation.metadata["spooled"]
    assert len(spooled) == generation.n
    for item in spooled:
        with open(item["path"], "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == item["sha256"]
    assert not generation.images.exists()


def test_result_is_stored_in_s3_with_its_content_type(settings, moto_s3, openai):
    bucket = new_bucket(moto_s3)
    s3_settings(settings, moto_s3, bucket)

    generation = request_generation(
        prompt="A paper boat on a puddle", ratio="16:9", n=2, output_format="webp"
    )
    generation.refresh_from_db()

    assert generation.status == Status.SUCCEEDED, generation.error_message
    client = moto_s3.client()
    for image in generation.images.all():
        head = client.head_object(Bucket=bucket, Key=image.file.name)
        assert head["ContentType"] == "image/webp"
        assert head["ContentLength"] == image.size_bytes
        body = client.get_object(Bucket=bucket, Key=image.file.name)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == image.sha256
    assert image_requests(openai) == 1


def test_content_type_does_not_depend_on_the_name(settings, moto_s3, openai):
    """Without an extension S3 would say application/octet-stream: the type comes from the image."""
    bucket = new_bucket(moto_s3)
    s3_settings(settings, moto_s3, bucket)
    settings.GPTIMAGE = {**settings.GPTIMAGE, "UPLOAD_TO": "raw/{id}/{index}"}

    generation = request_generation(prompt="A paper boat", output_format="jpeg")
    generation.refresh_from_db()

    assert generation.status == Status.SUCCEEDED, generation.error_message
    name = generation.images.get().file.name
    assert name == f"raw/{generation.pk}/0"
    assert moto_s3.client().head_object(Bucket=bucket, Key=name)["ContentType"] == "image/jpeg"


def test_existing_object_is_not_overwritten(settings, moto_s3, openai):
    bucket = new_bucket(moto_s3)
    s3_settings(settings, moto_s3, bucket)
    settings.GPTIMAGE = {**settings.GPTIMAGE, "UPLOAD_TO": "fixed/{index}.{ext}"}
    moto_s3.client().put_object(Bucket=bucket, Key="fixed/0.png", Body=b"keep me")

    generation = request_generation(prompt="A paper boat")
    generation.refresh_from_db()

    assert generation.status == Status.SUCCEEDED, generation.error_message
    name = generation.images.get().file.name
    assert name != "fixed/0.png" and name.startswith("fixed/0")
    assert moto_s3.client().get_object(Bucket=bucket, Key="fixed/0.png")["Body"].read() == b"keep me"


def test_missing_bucket_keeps_the_images_and_retry_stores_them(settings, moto_s3, openai):
    bucket = new_bucket(moto_s3, create=False)
    s3_settings(settings, moto_s3, bucket)

    generation = request_generation(prompt="A lantern in the snow", n=2)
    generation.refresh_from_db()

    assert_kept(generation)
    assert "NoSuchBucket" in generation.error_message
    # Automatic store-only retries (MAX_ATTEMPTS = 2) never went back to the provider.
    assert generation.attempts == 2
    assert image_requests(openai) == 1
    spooled = generation.metadata["spooled"]

    moto_s3.client().create_bucket(Bucket=bucket)
    generation = retry_generation(generation)

    assert generation.status == Status.SUCCEEDED, generation.error_message
    assert image_requests(openai) == 1  # not paid twice
    assert generation.error_code == ""
    images = list(generation.images.order_by("index"))
    assert [(i.index, i.sha256) for i in images] == [(s["index"], s["sha256"]) for s in spooled]
    for image in images:
        body = moto_s3.client().get_object(Bucket=bucket, Key=image.file.name)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == image.sha256
    # Stored, so the spool is gone.
    assert "spooled" not in generation.metadata
    assert not any(os.path.exists(s["path"]) for s in spooled)


@pytest.mark.parametrize("wrong", ["key", "secret"])
def test_wrong_credentials_keep_the_images_until_fixed(settings, moto_s3_auth, openai, wrong):
    good = {"key": moto_s3_auth.key, "secret": moto_s3_auth.secret}
    bad = {**good, wrong: "AKIAWRONGWRONGWRONG0" if wrong == "key" else "not-the-secret"}
    s3_settings(settings, moto_s3_auth, moto_s3_auth.bucket, **bad)

    generation = request_generation(prompt="A fox in a library")
    generation.refresh_from_db()

    assert_kept(generation)
    assert image_requests(openai) == 1

    s3_settings(settings, moto_s3_auth, moto_s3_auth.bucket, **good)
    generation = retry_generation(generation)

    assert generation.status == Status.SUCCEEDED, generation.error_message
    assert image_requests(openai) == 1
    image = generation.images.get()
    client = moto_s3_auth.client(moto_s3_auth.key, moto_s3_auth.secret)
    head = client.head_object(Bucket=moto_s3_auth.bucket, Key=image.file.name)
    assert head["ContentType"] == "image/png"
    body = client.get_object(Bucket=moto_s3_auth.bucket, Key=image.file.name)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == image.sha256
    assert get_storage().exists(image.file.name)


def test_auth_server_refuses_a_wrong_key(moto_s3_auth):
    """The auth server really checks credentials (so the test above tests something)."""
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as error:
        moto_s3_auth.client("AKIAWRONGWRONGWRONG0", "x").head_bucket(Bucket=moto_s3_auth.bucket)
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
