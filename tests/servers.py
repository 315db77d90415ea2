"""Real servers on 127.0.0.1 for the fetch tests: an HTTP file server with Range support that can
inject 503s and cut responses mid-body, and moto's S3 server (ThreadedMotoServer)."""

from __future__ import annotations

import os
import random
import socket
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client that drops a cut connection is what these tests do: no traceback on stderr for it."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FlakyFileServer:
    """Serves files under `root`. With `fail_rate` a request is answered 503 (with Retry-After: 0);
    with `cut_rate` a body is cut off after a random part. Decisions come from a seeded RNG, and every
    event is counted in `self.events`."""

    def __init__(self, root: Path, fail_rate: float = 0.0, cut_rate: float = 0.0, seed: int = 0,
                 missing: set[str] | None = None, cut_first: bool = False):
        self.root = Path(root)
        self.fail_rate = fail_rate
        self.cut_rate = cut_rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.missing = missing or set()
        self.cut_first = cut_first      # cut the first full response of every file: a resume is certain
        self._served: set[str] = set()
        self.events = {"requests": 0, "503": 0, "cut": 0, "range": 0, "404": 0}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                server._serve(self)

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _roll(self) -> tuple[bool, bool, float]:
        with self.lock:
            self.events["requests"] += 1
            return self.rng.random() < self.fail_rate, self.rng.random() < self.cut_rate, self.rng.random()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        fail, cut, fraction = self._roll()
        rel = handler.path.split("?", 1)[0].lstrip("/")
        path = (self.root / rel).resolve()
        if rel in self.missing or not path.is_file() or self.root.resolve() not in path.parents:
            with self.lock:
                self.events["404"] += 1
            handler.send_response(404)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if fail:
            with self.lock:
                self.events["503"] += 1
            # S3's throttling answer; an HTTP client sees a plain 503 with Retry-After
            body = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
                    b'<Message>Please reduce your request rate.</Message></Error>')
            handler.send_response(503)
            handler.send_header("Retry-After", "0")
            handler.send_header("Content-Type", "application/xml")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        data = path.read_bytes()
        with self.lock:
            if self.cut_first and rel not in self._served and not handler.headers.get("Range"):
                cut, fraction = True, 0.5
            self._served.add(rel)
        start = 0
        range_header = handler.headers.get("Range")
        if range_header and range_header.startswith("bytes="):
            start = int(range_header[6:].split("-", 1)[0])
            with self.lock:
                self.events["range"] += 1
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            handler.send_response(200)
        body = data[start:]
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Content-Type", "application/octet-stream")
        handler.end_headers()
        if cut and len(body) > 10:
            with self.lock:
                self.events["cut"] += 1
            handler.wfile.write(body[: int(len(body) * fraction * 0.9)])
            handler.wfile.flush()
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        handler.wfile.write(body)

    def __enter__(self) -> "FlakyFileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def moto_s3() -> Iterator[str]:
    """moto in server mode on 127.0.0.1; sets AWS_ENDPOINT_URL and fake credentials; yields the endpoint."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                           "AWS_DEFAULT_REGION")}
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing-key-id",
                       "AWS_SECRET_ACCESS_KEY": "testing-secret-key-SENSITIVE", "AWS_DEFAULT_REGION": "us-east-1"})
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
