"""The S3 store (boto3): the layout's keys under an optional prefix in one bucket."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple, cast

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from . import layout
from .base import FileMissing, JobExists, Offer, Store, StoredRange, StoreError
from .entries import Entry
from .hints import hint
from .recent import Recent
from .record import JobRecord

if TYPE_CHECKING:
    from ..settings import Settings

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
# The tag every report file carries (and no record, claim or entry), so a bucket
# lifecycle rule can expire the files alone (docs/lifecycle.md).
CONTENT_TAG = "reporting-svc=content"
_TAKEN = {"PreconditionFailed", "412"}
# S3 answers 409 to a conditional write that raced another one on the same key; retried,
# it answers 412 (taken) or succeeds.
_CONFLICT = "ConditionalRequestConflict"
CONFLICT_RETRIES = 3


URL_REUSE_SECONDS = 1.0
URL_REUSE_FACTOR = 5
# S3's checksum request header, which a presigned URL carries in its query instead: a
# signed header would have to be sent by every client following the URL.
CHECKSUM_MODE = "x-amz-checksum-mode"


class Looked(NamedTuple):
    """What a read of an entry found, absence included, so both can be remembered."""

    data: bytes | None


class S3Store(Store):
    """One bucket and prefix; the client is thread-safe and shared by every request.

    S3 can hand out presigned URLs that serve the file, ranges included, to anyone holding one.
    Each call is a round trip, so the records and file sizes it finds are remembered for
    ``cache_seconds`` (see ``Recent``): a repeat download asks S3 for the bytes alone.
    Entries (a withdrawal) are remembered whether found or not, for as long: a
    withdrawal reaches every process within ``cache_seconds``.

    Signing a URL costs about half a millisecond of CPU (SigV4, botocore's hooks), a third
    of an S3 x-accel decision, and a URL signed within the same second is the same URL
    anyway (SigV4 dates have seconds). So one is reused for ``URL_REUSE_SECONDS``, only
    when it is valid for at least ``URL_REUSE_FACTOR`` times that: it always reaches its
    user with four fifths of its life left. It is handed out only after every check of
    the download, so reuse changes who may read nothing.
    """

    offers = frozenset({Offer.PRESIGNED_URL})
    # S3 takes one PUT up to 5 GiB; that PUT carries the file's own SHA-256, which S3 checks
    # and keeps. A larger file goes in parts of PART_SIZE, each with its SHA-256: S3 keeps a
    # checksum of those (docs/stores.md says how to compare it).
    SINGLE_PUT_LIMIT = 5 * 1024**3
    PART_SIZE = 64 * 1024**2

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        cache_seconds: float = 0,
        block_size: int = Store.block_size,
    ):
        self.client = client
        self.block_size = block_size
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.records: Recent[JobRecord] = Recent(cache_seconds)
        self.sizes: Recent[int] = Recent(cache_seconds)
        self.entries: Recent[Looked] = Recent(cache_seconds)
        self.urls: Recent[str] = Recent(URL_REUSE_SECONDS)
        self.remembers_for = cache_seconds
        client.meta.events.register(
            "before-sign.s3.GetObject", _checksum_mode_in_query, unique_id=CHECKSUM_MODE
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        client = boto3.session.Session().client(
            "s3",
            region_name=settings.s3_region or None,
            endpoint_url=settings.s3_endpoint_url or None,
            # A private CA's certificates (an S3-compatible server over https); None: the
            # system's store, or AWS_CA_BUNDLE when set.
            verify=settings.s3_ca_bundle or None,
            config=Config(
                # boto3 presigns with SigV2 in some regions unless told; S3 refuses SigV2 for
                # buckets created since 2020, and only SigV4 URLs carry a relative expiry.
                signature_version="s3v4",
                connect_timeout=5,
                read_timeout=30,
                retries={"max_attempts": 3, "mode": "standard"},
                max_pool_connections=64,
            ),
        )
        return cls(
            client,
            settings.s3_bucket,
            settings.s3_prefix,
            cache_seconds=settings.s3_cache_seconds,
            block_size=settings.s3_chunk_size,
        )

    def key(self, relative: str) -> str:
        return self.prefix + relative

    def get_record(self, job_id: str) -> JobRecord | None:
        return self.records.get(job_id, lambda: self._read_record(job_id))

    def _read_record(self, job_id: str) -> JobRecord | None:
        response = self._call("get_object", layout.record_key(job_id))
        if response is None:
            return None
        try:
            return JobRecord.from_json(response["Body"].read())
        except BotoCoreError as error:
            raise StoreError(type(error).__name__) from error

    def size_of(self, record: JobRecord) -> int | None:
        return self.sizes.get(record.id, lambda: self._read_size(record))

    def _read_size(self, record: JobRecord) -> int | None:
        response = self._call("head_object", layout.content_key(record.id))
        return None if response is None else int(response["ContentLength"])

    def open_range(self, record: JobRecord, start: int, length: int) -> StoredRange:
        """S3 itself seeks: a part is a ranged GET, and the size comes from its
        Content-Range. The whole file is asked for without a Range, so an object that grew
        or shrank shows in its length."""
        whole = start == 0 and length == record.size
        extra = {} if whole else {"Range": f"bytes={start}-{start + length - 1}"}
        response = self._call("get_object", layout.content_key(record.id), **extra)
        if response is None:
            raise FileMissing(record.id)
        content_range = response.get("ContentRange")
        size = content_range.rpartition("/")[2] if content_range else response["ContentLength"]
        return StoredRange(response["Body"], int(size))

    def presigned_url(self, record: JobRecord, expires: int, disposition: str) -> str:
        def sign() -> str:
            return self._sign(record, expires, disposition)

        if expires < URL_REUSE_FACTOR * URL_REUSE_SECONDS:
            return sign()
        return cast(str, self.urls.get((record.id, expires, disposition), sign))

    def _sign(self, record: JobRecord, expires: int, disposition: str) -> str:
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": self.key(layout.content_key(record.id)),
                    "ResponseContentType": record.contentType,
                    "ResponseContentDisposition": disposition,
                    "ResponseCacheControl": "no-store",
                    # S3 then answers with the SHA-256 it verified at publish.
                    "ChecksumMode": "ENABLED",
                },
                ExpiresIn=expires,
            )
        )

    def _call(self, operation: str, relative_key: str, **params: Any) -> Any:
        """Run one S3 operation on a key: None when the key is absent, StoreError on failure."""
        try:
            return getattr(self.client, operation)(
                Bucket=self.bucket, Key=self.key(relative_key), **params
            )
        except ClientError as error:
            if _code(error) in _NOT_FOUND:
                return None
            raise _failure(error) from error
        except BotoCoreError as error:
            raise _failure(error) from error

    def put(self, record: JobRecord, source: BinaryIO) -> None:
        if self.get_record(record.id) is not None:
            raise JobExists(record.id)
        try:
            self._write(record, source)
        except ClientError as error:
            if _code(error) in {*_TAKEN, _CONFLICT}:
                raise JobExists(record.id) from None
            raise _failure(error) from error
        except BotoCoreError as error:
            raise _failure(error) from error

    def _write(self, record: JobRecord, source: BinaryIO) -> None:
        """Claim the id, then write the content and, last, the record.

        The claim is a conditional create, so a racing publish of the same id fails
        before it can overwrite the winner's file.
        """
        self.client.put_object(
            Bucket=self.bucket,
            Key=self.key(layout.claim_key(record.id)),
            Body=b"",
            IfNoneMatch="*",
        )
        self.client.upload_fileobj(
            source,
            self.bucket,
            self.key(layout.content_key(record.id)),
            ExtraArgs={
                "ContentType": record.contentType,
                "Tagging": CONTENT_TAG,
                **self._checksum(record),
            },
            Config=TransferConfig(
                multipart_threshold=self.SINGLE_PUT_LIMIT, multipart_chunksize=self.PART_SIZE
            ),
        )
        self.client.put_object(
            Bucket=self.bucket,
            Key=self.key(layout.record_key(record.id)),
            Body=record.to_json(),
            ContentType="application/json",
            IfNoneMatch="*",
        )

    def _checksum(self, record: JobRecord) -> dict[str, str]:
        """The SHA-256 S3 checks the upload against: the one publish measured, so a file that
        changed since is refused (BadDigest); a file in parts gets one per part."""
        if record.size >= self.SINGLE_PUT_LIMIT:
            return {"ChecksumAlgorithm": "SHA256"}
        digest = base64.b64encode(bytes.fromhex(record.sha256)).decode()
        return {"ChecksumAlgorithm": "SHA256", "ChecksumSHA256": digest}

    def create_entry(self, job_id: str, entry: Entry) -> bool:
        self.entries.forget((job_id, entry.name))
        key = self.key(layout.entry_key(job_id, entry.name))
        for _ in range(CONFLICT_RETRIES):
            try:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=entry.to_json(),
                    ContentType="application/json",
                    IfNoneMatch="*",
                )
                return True
            except ClientError as error:
                if _code(error) in _TAKEN:
                    return False
                if _code(error) != _CONFLICT:
                    raise _failure(error) from error
            except BotoCoreError as error:
                raise _failure(error) from error
        raise StoreError(f"S3 error {_CONFLICT}")

    def read_entry_data(self, job_id: str, name: str) -> bytes | None:
        looked = self.entries.get((job_id, name), lambda: self._read_entry(job_id, name))
        return None if looked is None else looked.data

    def _read_entry(self, job_id: str, name: str) -> Looked:
        response = self._call("get_object", layout.entry_key(job_id, name))
        if response is None:
            return Looked(None)
        try:
            return Looked(response["Body"].read())
        except BotoCoreError as error:
            raise StoreError(type(error).__name__) from error

    def delete_entry(self, job_id: str, name: str) -> None:
        self._call("delete_object", layout.entry_key(job_id, name))

    def delete_content(self, record: JobRecord) -> None:
        self._call("delete_object", layout.content_key(record.id))

    def check(self) -> str | None:
        """Why the bucket cannot be used (HeadBucket with the service's credentials), with
        what to do about the usual causes; names no bucket (readiness is public)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as error:
            return f"the S3 bucket cannot be reached ({_failure(error, bucket_call=True)})"
        return None

    def job_ids(self) -> Iterator[str]:
        return self.entry_ids(layout.RECORD_NAME)

    def entry_ids(self, name: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.key(layout.JOBS)):
                for item in page.get("Contents", []):
                    job_id = layout.job_id_of_record_key(item["Key"][len(self.prefix) :], name)
                    if job_id is not None:
                        yield job_id
        except (ClientError, BotoCoreError) as error:
            raise _failure(error) from error


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _failure(error: ClientError | BotoCoreError, *, bucket_call: bool = False) -> StoreError:
    """The StoreError for a failed call: callers see a retryable store fault, never boto's,
    with what to do about it when the cause is the deployment's (``hints``). A HEAD of the
    bucket answers a missing bucket with a bare 404."""
    if isinstance(error, ClientError):
        code = _code(error)
        what = f"S3 error {code}"
        return StoreError(hint(what, "NoSuchBucket" if bucket_call and code == "404" else code))
    return StoreError(hint(type(error).__name__, type(error).__name__))


def _checksum_mode_in_query(request: Any, signature_version: str, **_: Any) -> None:
    """Move a presigned GET's checksum mode from its headers to its query: a signed header
    must be sent by whoever follows the URL, which a browser or curl does not do. (SigV2,
    which only old regions' defaults use, puts it in the query itself.)"""
    mode = request.headers.get(CHECKSUM_MODE)
    if mode is not None and signature_version == "s3v4-query":
        del request.headers[CHECKSUM_MODE]
        request.params[CHECKSUM_MODE] = mode
