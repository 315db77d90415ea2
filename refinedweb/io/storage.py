"""Where output goes: a root URI with atomic commits.

Writers produce a complete file in a local temporary path, then `commit` moves it under its final
name in one step (rename on a local disk), so a reader never sees a half-written shard and a re-run
replaces a shard instead of duplicating it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError
from .scratch import scratch_file

_SAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def safe_name(part: str, max_len: int = 80) -> str:
    """A file-name component built from untrusted text (URLs, ids): no separators, no dot-dot."""
    cleaned = _SAFE.sub("_", part).strip("._") or "x"
    return cleaned[:max_len]


def file_mode() -> int:
    """The mode a new file gets under the process's umask (0644 under 022). Temporary files are created 0600;
    committed files get this, so that a training job running as another user can read them."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:         # Linux: read without changing it
            mask = next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def language_folder(language: str) -> str:
    """The folder of one language's shards (`langid.partition_by_language`): `lang=de`; `lang=x` without one."""
    return f"lang={safe_name(language)}"


class _Storage:
    """What both storages share: local temporary files and JSON."""

    def discard(self, tmp: str) -> None:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass

    def write_text(self, relpath: str, text: str) -> None:
        raise NotImplementedError

    def delete_tree(self, prefix: str) -> None:
        raise NotImplementedError

    def clean_incomplete(self, prefix: str) -> int:
        raise NotImplementedError

    def write_bytes(self, relpath: str, data: bytes) -> None:
        tmp = self.temp_path(relpath)
        with open(tmp, "wb") as fh:
            fh.write(data)
        self.commit(tmp, relpath)

    def write_json(self, relpath: str, value) -> None:
        self.write_text(relpath, json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")

    def delete_many(self, relpaths: list[str]) -> None:
        for relpath in relpaths:
            self.delete(relpath)


class LocalStorage(_Storage):
    def __init__(self, root: str):
        self.root = Path(os.path.expanduser(root)).resolve()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create output directory {self.root}: {exc.strerror}") from None
        self.uri = str(self.root)

    def _path(self, relpath: str) -> Path:
        path = (self.root / relpath).resolve()
        if path != self.root and self.root not in path.parents:
            raise ValueError(f"refusing to write outside the output root: {relpath}")
        return path

    def temp_path(self, relpath: str) -> str:
        """A temporary file beside the final one (same file system: the commit is a rename)."""
        final = self._path(relpath)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
        return tmp

    def commit(self, tmp: str, relpath: str) -> None:
        final = self._path(relpath)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, file_mode())
        os.replace(tmp, final)

    def write_text(self, relpath: str, text: str) -> None:
        tmp = self.temp_path(relpath)
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        self.commit(tmp, relpath)

    def read_text(self, relpath: str) -> str | None:
        try:
            return self._path(relpath).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def list(self, prefix: str, pattern: str = "*") -> list[str]:
        """Relative paths of files under the folder `prefix` whose names match `pattern`."""
        base = self._path(prefix)
        if not base.is_dir():
            return []
        out = []
        for path in base.rglob("*"):
            if path.is_file() and fnmatch.fnmatch(path.name, pattern):
                out.append(str(path.relative_to(self.root)))
        return sorted(out)

    def exists(self, relpath: str) -> bool:
        return self._path(relpath).exists()

    def read_bytes(self, relpath: str) -> bytes:
        return self._path(relpath).read_bytes()

    def delete(self, relpath: str) -> None:
        try:
            self._path(relpath).unlink()
        except FileNotFoundError:
            pass

    def local_path(self, relpath: str) -> str:
        return str(self._path(relpath))

    def list_folders(self, prefix: str) -> list[str]:
        """Relative paths of the folders directly under `prefix`."""
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.iterdir() if p.is_dir())

    @contextmanager
    def local_copy(self, relpath: str):
        """A local path to read the file from (the file itself here)."""
        yield str(self._path(relpath))

    @contextmanager
    def local_range(self, relpath: str, start: int, length: int):
        """(local path, offset) where bytes [start, start + length) of the file can be read."""
        yield str(self._path(relpath)), start

    def delete_tree(self, prefix: str) -> None:
        """Remove the folder `prefix` and everything under it (`--overwrite`)."""
        path = self._path(prefix)
        if path == self.root:
            raise ValueError("refusing to delete the output root itself")
        shutil.rmtree(path, ignore_errors=True)
        parent = path.parent
        while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()      # e.g. _work/ once _work/dedup/ is gone
            parent = parent.parent

    def clean_incomplete(self, prefix: str) -> int:
        """Delete temporary files a killed run left under `prefix`; returns how many."""
        base = self._path(prefix)
        removed = 0
        if base.is_dir():
            for path in base.rglob(".*.tmp"):
                path.unlink(missing_ok=True)
                removed += 1
        return removed


class S3Storage(_Storage):
    """Output under `s3://bucket/prefix/`. A file is written locally, then uploaded under its final key
    (multipart for big ones): S3 makes an object visible only once it is complete, so a half-written
    object never appears under its final name."""

    MULTIPART_THRESHOLD = 64 * 1024 * 1024

    def __init__(self, uri: str, fetch=None):
        from .remote import FetchConfig, s3_client, split_s3

        self.fetch = fetch or FetchConfig()
        self.bucket, prefix = split_s3(uri.rstrip("/") + "/")
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.client = s3_client(self.fetch)
        self._check_bucket()

    def _check_bucket(self) -> None:
        from botocore.exceptions import ClientError, NoCredentialsError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except NoCredentialsError:
            raise UserError("no AWS credentials found for S3 output (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                            "or a profile)") from None
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code", "")
            if status == 404 or code in ("404", "NoSuchBucket"):
                raise UserError(f"S3 bucket does not exist: {self.bucket}") from None
            if status == 403 or code in ("403", "AccessDenied"):
                raise UserError(f"access denied to S3 bucket {self.bucket}") from None
            raise UserError(f"cannot use S3 bucket {self.bucket}: {code or status}") from None

    def key(self, relpath: str) -> str:
        parts = [p for p in relpath.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise ValueError(f"refusing to write outside the output root: {relpath}")
        return "/".join([self.prefix, *parts]) if self.prefix else "/".join(parts)

    def temp_path(self, relpath: str) -> str:
        return scratch_file("upload")

    def commit(self, tmp: str, relpath: str) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=self.MULTIPART_THRESHOLD, multipart_chunksize=self.MULTIPART_THRESHOLD)
        try:
            self.client.upload_file(tmp, self.bucket, self.key(relpath), Config=config)
        finally:
            self.discard(tmp)

    def write_text(self, relpath: str, text: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(relpath), Body=text.encode("utf-8"))

    def read_text(self, relpath: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(relpath))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return body.decode("utf-8")

    def read_bytes(self, relpath: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self.key(relpath))["Body"].read()

    def exists(self, relpath: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(relpath))
            return True
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise

    def delete(self, relpath: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(relpath))

    def delete_many(self, relpaths: list[str]) -> None:
        """One DeleteObjects request per 1,000 objects."""
        keys = [{"Key": self.key(p)} for p in relpaths]
        for start in range(0, len(keys), 1000):
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys[start:start + 1000], "Quiet": True})

    def list_folders(self, prefix: str) -> list[str]:
        """Relative paths of the "folders" (common prefixes) directly under `prefix`."""
        folder = self.key(prefix) + "/" if prefix.strip("/") else (self.prefix + "/" if self.prefix else "")
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(folder):].strip("/")
                out.append(f"{prefix.strip('/')}/{name}" if prefix.strip("/") else name)
        return sorted(out)

    @contextmanager
    def local_copy(self, relpath: str):
        """The object downloaded to a temporary file (removed afterwards), for streaming reads."""
        tmp = scratch_file("download")
        try:
            self.client.download_file(self.bucket, self.key(relpath), tmp)
            yield tmp
        finally:
            self.discard(tmp)

    @contextmanager
    def local_range(self, relpath: str, start: int, length: int):
        """(local path, offset): bytes [start, start + length) of the object, fetched with one ranged GET
        into a temporary file (removed afterwards)."""
        tmp = scratch_file("range")
        try:
            with open(tmp, "wb") as fh:
                if length:
                    body = self.client.get_object(Bucket=self.bucket, Key=self.key(relpath),
                                                  Range=f"bytes={start}-{start + length - 1}")["Body"]
                    for block in iter(lambda: body.read(1 << 20), b""):
                        fh.write(block)
            yield tmp, 0
        finally:
            self.discard(tmp)

    def delete_tree(self, prefix: str) -> None:
        """Delete every object under the folder `prefix` (`--overwrite`)."""
        folder = self.key(prefix) + "/"
        if folder == "/" or folder == (self.prefix + "/"):
            raise ValueError("refusing to delete the output root itself")
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            for start in range(0, len(keys), 1000):
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys[start:start + 1000], "Quiet": True})

    def clean_incomplete(self, prefix: str) -> int:
        """Abort multipart uploads a killed run left under `prefix` (they are invisible but cost storage)."""
        folder = self.key(prefix) + "/"
        aborted = 0
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=folder):
            for upload in page.get("Uploads", []):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                aborted += 1
        return aborted

    def list(self, prefix: str, pattern: str = "*") -> list[str]:
        """Relative paths of objects directly under the folder `prefix` whose names match `pattern`."""
        folder = self.key(prefix) + "/" if prefix.strip("/") else (self.prefix + "/" if self.prefix else "")
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder, Delimiter="/"):
            for item in page.get("Contents", []):
                name = item["Key"][len(folder):]
                if fnmatch.fnmatch(name, pattern):
                    out.append(f"{prefix.strip('/')}/{name}" if prefix.strip("/") else name)
        return sorted(out)


def open_existing(uri: str, fetch=None) -> "LocalStorage | S3Storage":
    """A storage to read from: a local folder must exist (nothing is created)."""
    if not uri.startswith("s3://") and "://" not in uri.replace("file://", ""):
        path = Path(os.path.expanduser(uri.removeprefix("file://")))
        if not path.is_dir():
            raise UserError(f"not a folder: {uri}")
    return open_storage(uri, fetch)


def open_storage(uri: str, fetch=None) -> "LocalStorage | S3Storage":
    if uri.startswith("s3://"):
        return S3Storage(uri, fetch)
    if "://" in uri and not uri.startswith("file://"):
        scheme = uri.split("://", 1)[0]
        raise UserError(f"unsupported output URI scheme '{scheme}://' (supported: local paths, s3://)")
    return LocalStorage(uri[len("file://"):] if uri.startswith("file://") else uri)
