"""A small Hugging Face-hub-shaped HTTP server on 127.0.0.1, for tests and benches.

Layout on disk (`root`): `root/{datasets|models}/OWNER/NAME/COMMIT/FILES...` and branch refs
`root/{datasets|models}/OWNER/NAME/refs/BRANCH` (a text file holding the commit). Served:

- `GET|HEAD /datasets/OWNER/NAME/resolve/REV/PATH` (models: `/OWNER/NAME/resolve/REV/PATH`):
  the file, with `Range: bytes=a-b` answered 206 + `Content-Range`; headers `X-Repo-Commit`,
  `ETag` (the sha256, as the hub gives for LFS files), `Accept-Ranges: bytes`. A missing repo,
  revision or file answers 404 with the hub's `X-Error-Code` (RepoNotFound, RevisionNotFound,
  EntryNotFound), so huggingface_hub raises its own errors.
- `GET .../resolve/REV/` (a trailing slash): an HTML index page of links (a plain mirror).
- `GET /api/{datasets|models}/OWNER/NAME/tree/REV[/PATH]`: the hub's tree JSON (files with
  `size`, `oid`, `lfs: {oid: sha256, size, pointerSize}`), recursive.
- `GET /api/{datasets|models}/OWNER/NAME/revision/REV`: `{"id", "sha", "siblings"}`.

Faults (`server.faults`, settable while running): `ignore_range` (answer 200 with the whole
file), `drop_after` (close the connection after that many body bytes, for the next `drops`
ranged GETs longer than that), `status` (answer every resolve with this status). `server.stats` counts body
bytes sent and records each request. Helper `fetch` extends this for model checkpoints.

Use: `with HubServer(root) as hub: hub.url`; `publish(root, "datasets", "o/n", files, branch=)`.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

RESOLVE = re.compile(
    r"^/(?:(?P<kind>datasets)/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.*)$"
)
API = re.compile(
    r"^/api/(?P<kind>datasets|models)/(?P<repo>[^/]+/[^/]+)/(?P<what>tree|revision)/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"
)
RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class Faults:
    ignore_range: bool = False
    drop_after: int | None = None
    drops: int = 0  # how many ranged GETs still drop
    status: int | None = None


@dataclass
class Stats:
    body_bytes: int = 0
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, Range
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reset(self) -> None:
        with self.lock:
            self.body_bytes = 0
            self.requests.clear()


def digest_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def publish(
    root: Path,
    kind: str,
    repo_id: str,
    files: dict[str, Path],
    *,
    commit: str,
    branch: str = "main",
) -> Path:
    """Copy `files` (name -> source path) to `root/kind/repo_id/commit/`, point `branch` at it."""
    folder = root / kind / repo_id / commit
    folder.mkdir(parents=True, exist_ok=True)
    for name, src in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, folder / name)
    refs = root / kind / repo_id / "refs"
    refs.mkdir(exist_ok=True)
    (refs / branch).write_text(commit)
    return folder


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-body (a refused or dropped range) is not news


class HubServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.faults = Faults()
        self.stats = Stats()
        self._sha: dict[Path, str] = {}
        handler = type("Handler", (_Handler,), {"hub": self})
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)

    def commit_of(self, kind: str, repo: str, rev: str) -> str | None:
        base = self.root / kind / repo
        if (base / rev).is_dir() and rev != "refs":
            return rev
        ref = base / "refs" / rev
        return ref.read_text().strip() if ref.is_file() else None

    def sha256(self, path: Path) -> str:
        if path not in self._sha:
            self._sha[path] = digest_of(path)
        return self._sha[path]


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        with self.hub.stats.lock:
            self.hub.stats.requests.append((self.command, path, self.headers.get("Range")))
        if m := API.match(path):
            return self._api(m)
        if m := RESOLVE.match(path):
            return self._resolve(m, body=body)
        self._error(404, "RepoNotFound")

    def _error(self, status: int, code: str | None = None) -> None:
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _json(self, value: Any) -> None:
        data = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _folder(self, kind: str | None, repo: str, rev: str) -> tuple[Path | None, str | None]:
        kind = kind or "models"
        if not (self.hub.root / kind / repo).is_dir():
            self._error(404, "RepoNotFound")
            return None, None
        commit = self.hub.commit_of(kind, repo, rev)
        if commit is None:
            self._error(404, "RevisionNotFound")
            return None, None
        return self.hub.root / kind / repo / commit, commit

    def _api(self, m: re.Match[str]) -> None:
        folder, commit = self._folder(m["kind"], m["repo"], m["rev"])
        if folder is None:
            return
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        if m["what"] == "revision":
            siblings = [{"rfilename": str(p.relative_to(folder))} for p in files]
            return self._json({"id": m["repo"], "sha": commit, "siblings": siblings})
        under = folder / (m["path"] or "")
        entries = []
        for p in files:
            if under in p.parents:
                sha, size = self.hub.sha256(p), p.stat().st_size
                lfs = {"oid": sha, "size": size, "pointerSize": 134}
                entries.append(
                    {
                        "type": "file",
                        "path": str(p.relative_to(folder)),
                        "size": size,
                        "oid": sha[:40],
                        "lfs": lfs,
                    }
                )
        self._json(entries)

    def _resolve(self, m: re.Match[str], *, body: bool) -> None:
        folder, commit = self._folder(m["kind"], m["repo"], m["rev"])
        if folder is None:
            return
        if self.hub.faults.status is not None:
            return self._error(self.hub.faults.status)
        if m["path"] == "" or m["path"].endswith("/"):
            return self._index(folder / m["path"], body=body)
        file = folder / m["path"]
        if not file.is_file():
            return self._error(404, "EntryNotFound")
        self._file(file, str(commit), body=body)

    def _index(self, folder: Path, *, body: bool) -> None:
        links = "".join(
            f'<a href="{html.escape(p.name)}">{html.escape(p.name)}</a>\n'
            for p in sorted(folder.iterdir())
            if p.is_file()
        )
        data = f"<html><body>\n{links}</body></html>\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _file(self, file: Path, commit: str, *, body: bool) -> None:
        size = file.stat().st_size
        faults = self.hub.faults
        r = RANGE.match(self.headers.get("Range") or "")
        start, end = 0, size - 1
        if r and not faults.ignore_range:
            start, end = int(r[1]), min(int(r[2]) if r[2] else size - 1, size - 1)
            if start >= size or start > end:
                return self._error(416)
        self.send_response(206 if r and not faults.ignore_range else 200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if r and not faults.ignore_range:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("X-Repo-Commit", commit)
        self.send_header("ETag", f'"{self.hub.sha256(file)}"')
        self.end_headers()
        if body:
            self._send_body(file, start, end + 1, dropping=bool(r) and faults.drops > 0)

    def _send_body(self, file: Path, start: int, end: int, *, dropping: bool) -> None:
        faults = self.hub.faults
        limit = end
        if dropping and faults.drop_after is not None and start + faults.drop_after < end:
            faults.drops -= 1
            limit = start + faults.drop_after
        with open(file, "rb") as fh:
            fh.seek(start)
            at = start
            try:
                while at < limit:
                    chunk = fh.read(min(1 << 20, limit - at))
                    with self.hub.stats.lock:  # counted before the client can have it
                        self.hub.stats.body_bytes += len(chunk)
                    self.wfile.write(chunk)
                    at += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
        if limit < end:  # drop the connection mid-body
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
