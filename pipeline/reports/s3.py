"""Reports under an S3 prefix (s3://bucket/prefix), through boto3's standard credential chain
(and AWS_ENDPOINT_URL, which is how the tests point it at moto's server on loopback).

Objects are read whole but never past the file limit (a Range request of limit + 1 bytes), so a
huge object is refused like a huge file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pipeline.errors import InputError
from pipeline.reports.unpack import DEFAULT_UNPACK_LIMITS, UnpackLimits


def split_url(url: str) -> tuple[str, str]:
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise InputError(
            f"not an S3 location: {url!r}",
            hint="Write s3://BUCKET/PREFIX (the prefix may be empty).",
        )
    return bucket, prefix


def read_prefix(
    url: str, limits: UnpackLimits = DEFAULT_UNPACK_LIMITS
) -> Iterator[tuple[str, bytes]]:
    # Imported here: boto3 takes a noticeable moment to import and only S3 inputs need it.
    import boto3
    import botocore.exceptions

    bucket, prefix = split_url(url)
    client: Any = boto3.client("s3")
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                key = str(obj["Key"])
                if key.endswith("/"):
                    continue
                name = f"s3://{bucket}/{key}"
                if int(obj.get("Size", 0)) > limits.max_file_bytes:
                    raise InputError(
                        f"refused: {name} is {obj['Size']} bytes, over {limits.max_file_bytes}"
                    )
                body = client.get_object(
                    Bucket=bucket, Key=key, Range=f"bytes=0-{limits.max_file_bytes}"
                )["Body"].read()
                yield name, bytes(body)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise InputError(
            f"cannot read {url}: {exc}",
            hint="Check the bucket name and the AWS credentials (boto3's standard chain).",
        ) from None
