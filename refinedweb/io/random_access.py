"""Random-access reads of Parquet inputs: local files directly, S3 objects through ranged GETs (only the
footer and the row groups asked for are fetched), each GET retried with the fetch settings' backoff."""

from __future__ import annotations

import io
import time

import pyarrow.parquet as pq

from ..errors import UserError
from .remote import FetchConfig, redact, s3_client, scheme_of, split_s3


class S3RangeFile(io.RawIOBase):
    def __init__(self, uri: str, fetch: FetchConfig):
        self.uri = uri
        self.fetch = fetch
        self.client = s3_client(fetch)
        self.bucket, self.key = split_s3(uri)
        self.size = self._retry(lambda: self.client.head_object(Bucket=self.bucket, Key=self.key))["ContentLength"]
        self.position = 0

    def _retry(self, call):
        for attempt in range(self.fetch.max_attempts):
            try:
                return call()
            except Exception as exc:
                status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status in (403, 404) or attempt + 1 == self.fetch.max_attempts:
                    raise OSError(f"cannot read {redact(self.uri)}: {type(exc).__name__} {status or ''}".strip()) from None
                time.sleep(self.fetch.backoff(attempt))

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.position, 2: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self.position
        n = min(n, self.size - self.position)
        if n <= 0:
            return b""
        start = self.position
        body = self._retry(lambda: self.client.get_object(Bucket=self.bucket, Key=self.key,
                                                          Range=f"bytes={start}-{start + n - 1}")["Body"].read())
        self.position += len(body)
        return body

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def open_parquet(uri: str, fetch: FetchConfig) -> pq.ParquetFile:
    scheme = scheme_of(uri)
    if scheme == "s3":
        return pq.ParquetFile(S3RangeFile(uri, fetch))
    if scheme in ("http", "https"):
        raise UserError(f"mixing reads Parquet from local paths or s3://, not {scheme}:// ({redact(uri)})")
    return pq.ParquetFile(uri.removeprefix("file://"))
