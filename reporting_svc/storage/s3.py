"""The S3 store (boto3): the layout's keys under an optional prefix in one bucket."""

from __future__ import annotations

from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..settings import Settings
from . import layout
from .base import FileMissing, JobExists, Store, StoreError
from .record import JobRecord

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class S3Store(Store):
    """One bucket and prefix; the client is thread-safe and shared by every request."""

    def __init__(self, client: Any, bucket: str, prefix: str = ""):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        client = boto3.session.Session().client(
            "s3",
            region_name=settings.s3_region or None,
            endpoint_url=settings.s3_endpoint_url or None,
            config=Config(
                connect_timeout=5,
                read_timeout=30,
                retries={"max_attempts": 3, "mode": "standard"},
                max_pool_connections=64,
            ),
        )
        return cls(client, settings.s3_bucket, settings.s3_prefix)

    def key(self, relative: str) -> str:
        return self.prefix + relative

    def get_record(self, job_id: str) -> JobRecord | None:
        response = self._call("get_object", layout.record_key(job_id))
        if response is None:
            return None
        try:
            return JobRecord.from_json(response["Body"].read())
        except BotoCoreError as error:
            raise StoreError(type(error).__name__) from error

    def get_content(self, record: JobRecord, byte_range: str | None = None) -> Any:
        """Start reading the job's file; ``byte_range`` is an HTTP Range value passed to S3."""
        extra = {"Range": byte_range} if byte_range else {}
        response = self._call("get_object", layout.content_key(record.id), **extra)
        if response is None:
            raise FileMissing(record.id)
        return response["Body"]

    def presign(self, record: JobRecord, expires: int, disposition: str) -> str:
        """A GET URL for the file that makes S3 answer with our type and disposition."""
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": self.key(layout.content_key(record.id)),
                    "ResponseContentType": record.contentType,
                    "ResponseContentDisposition": disposition,
                    "ResponseCacheControl": "no-store",
                },
                ExpiresIn=expires,
            )
        )

    def has_content(self, record: JobRecord) -> bool:
        return self._call("head_object", layout.content_key(record.id)) is not None

    def _call(self, operation: str, relative_key: str, **params: Any) -> Any:
        """Run one S3 operation on a key: None when the key is absent, StoreError on failure."""
        try:
            return getattr(self.client, operation)(
                Bucket=self.bucket, Key=self.key(relative_key), **params
            )
        except ClientError as error:
            if _code(error) in _NOT_FOUND:
                return None
            raise StoreError(f"S3 error {_code(error)}") from error
        except BotoCoreError as error:
            raise StoreError(type(error).__name__) from error

    def put(self, record: JobRecord, source: BinaryIO) -> None:
        if self.get_record(record.id) is not None:
            raise JobExists(record.id)
        self.client.upload_fileobj(
            source,
            self.bucket,
            self.key(layout.content_key(record.id)),
            ExtraArgs={"ContentType": record.contentType},
        )
        marker = layout.index_key(record.studyId, record.mode, record.id)
        self.client.put_object(Bucket=self.bucket, Key=self.key(marker), Body=b"")
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.key(layout.record_key(record.id)),
                Body=record.to_json(),
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except ClientError as error:
            if _code(error) in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                raise JobExists(record.id) from None
            raise

    def list_job_ids(self, study_id: str | None, mode: str) -> list[str]:
        prefix = self.key(layout.index_prefix(study_id, mode))
        paginator = self.client.get_paginator("list_objects_v2")
        return sorted(
            item["Key"][len(prefix) :]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
