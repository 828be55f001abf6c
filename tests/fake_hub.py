"""A fake Hugging Face hub on loopback: the few endpoints huggingface_hub 2.4 calls.

- `GET /api/{models,datasets}/OWNER/NAME/refs`                     branches
- `GET /api/{models,datasets}/OWNER/NAME/tree/REV[/PATH]`          files with LFS sha256
- `POST /api/{models,datasets}/OWNER/NAME/paths-info/REV`          the same, for named paths
- `GET /api/{models,datasets}/OWNER/NAME[/revision/REV]`           repo info (sha, siblings)
- `GET /static/NAME`                                                any other file (a CSV)
- `HEAD|GET /[datasets/]OWNER/NAME/resolve/REV/FILE`               the bytes, with `X-Repo-Commit`,
  `ETag` (the sha256 for LFS files, the git blob id otherwise), `Content-Length`, Range support

Errors carry the hub's `X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound), which
huggingface_hub maps to its exception classes. A revision may serve other bytes than it
advertises (`corrupt`), and a file may be stalled half-way (`stall`) to kill a client
mid-download. Every GET of a file is counted (`gets`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".idx")
LFS_MIN = 1024  # larger files are LFS too, whatever their name


def is_lfs(path: str, data: bytes) -> bool:
    return path.endswith(LFS_SUFFIXES) or len(data) > LFS_MIN


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


@dataclasses.dataclass
class Revision:
    files: dict[str, bytes]
    corrupt: dict[str, bytes] = dataclasses.field(default_factory=dict)  # served instead

    @property
    def commit(self) -> str:
        digest = hashlib.sha1()
        for path in sorted(self.files):
            digest.update(path.encode() + b"\0" + hashlib.sha256(self.files[path]).digest())
        return digest.hexdigest()

    def entry(self, path: str) -> dict[str, Any]:
        data = self.files[path]
        out: dict[str, Any] = {"type": "file", "path": path, "size": len(data)}
        if is_lfs(path, data):
            sha = hashlib.sha256(data).hexdigest()
            out["oid"] = git_blob_id(f"version lfs\noid sha256:{sha}\nsize {len(data)}\n".encode())
            out["lfs"] = {"oid": sha, "size": len(data), "pointerSize": 130}
        else:
            out["oid"] = git_blob_id(data)
        return out

    def etag(self, path: str) -> str:
        data = self.files[path]
        return hashlib.sha256(data).hexdigest() if is_lfs(path, data) else git_blob_id(data)


@dataclasses.dataclass
class FakeHub:
    """repos: (kind "models"/"datasets", "OWNER/NAME") -> branch -> Revision."""

    repos: dict[tuple[str, str], dict[str, Revision]] = dataclasses.field(default_factory=dict)
    gets: Counter[tuple[str, str, str]] = dataclasses.field(default_factory=Counter)
    bytes_sent: int = 0
    static_gets: int = 0
    static: dict[str, bytes] = dataclasses.field(default_factory=dict)  # /static/NAME
    stall: set[tuple[str, str]] = dataclasses.field(default_factory=set)  # (branch, path)
    stalled: threading.Event = dataclasses.field(default_factory=threading.Event)
    release: threading.Event = dataclasses.field(default_factory=threading.Event)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def add_folder(self, kind: str, repo: str, branch: str, folder: Path) -> Revision:
        files = {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        rev = Revision(files=files)
        self.repos.setdefault((kind, repo), {})[branch] = rev
        return rev

    def find(self, kind: str, repo: str, rev: str) -> Revision | None:
        branches = self.repos[(kind, repo)]
        if rev in branches:
            return branches[rev]
        return next((r for r in branches.values() if r.commit == rev), None)


ROUTE_API = re.compile(
    r"^/api/(models|datasets)/([^/]+/[^/]+)(?:/(refs|tree|paths-info|revision)(?:/([^/]+)(/.*)?)?)?$"
)
ROUTE_RESOLVE = re.compile(r"^/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


class Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._route(head=False, body=self.rfile.read(length))

    def _route(self, *, head: bool, body: bytes = b"") -> None:
        path = unquote(urlsplit(self.path).path)
        if path.startswith("/static/") and path[8:] in self.hub.static:
            with self.hub.lock:
                self.hub.static_gets += 1
            return self._bytes(self.hub.static[path[8:]])
        if m := ROUTE_RESOLVE.match(path):
            kind = "datasets" if m.group(1) else "models"
            self._resolve(kind, m.group(2), m.group(3), m.group(4), head=head)
        elif m := ROUTE_API.match(path):
            self._api(m.group(1), m.group(2), m.group(3), m.group(4), m.group(5), body)
        else:
            self._error(404, "RepoNotFound", path)

    def _api(
        self, kind: str, repo: str, what: str | None, rev: str | None, sub: str | None, body: bytes
    ) -> None:
        if (kind, repo) not in self.hub.repos:
            return self._error(404, "RepoNotFound", repo)
        branches = self.hub.repos[(kind, repo)]
        if what == "refs":
            refs = [
                {"name": b, "ref": f"refs/heads/{b}", "targetCommit": r.commit}
                for b, r in branches.items()
            ]
            return self._json({"branches": refs, "converts": [], "tags": [], "pullRequests": []})
        found = self.hub.find(kind, repo, rev or "main")
        if found is None:
            return self._error(404, "RevisionNotFound", f"{repo}@{rev}")
        if what == "tree":
            prefix = (sub or "").strip("/")
            return self._json(self._listing(found, prefix))
        if what == "paths-info":
            wanted = _form_paths(body)
            entries = [found.entry(p) for p in wanted if p in found.files]
            dirs = {p for p in wanted for f in found.files if f.startswith(p.rstrip("/") + "/")}
            entries += [{"type": "directory", "path": d, "oid": "0" * 40} for d in sorted(dirs)]
            return self._json(entries)
        siblings = [{"rfilename": p} for p in sorted(found.files)]
        return self._json({"id": repo, "sha": found.commit, "siblings": siblings, "private": False})

    def _listing(self, rev: Revision, prefix: str) -> list[dict[str, Any]]:
        entries = [rev.entry(p) for p in sorted(rev.files) if p.startswith(prefix)]
        return entries

    def _resolve(self, kind: str, repo: str, rev: str, path: str, *, head: bool) -> None:
        if (kind, repo) not in self.hub.repos:
            return self._error(404, "RepoNotFound", repo)
        found = self.hub.find(kind, repo, rev)
        if found is None:
            return self._error(404, "RevisionNotFound", f"{repo}@{rev}")
        if path not in found.files:
            return self._error(404, "EntryNotFound", path, commit=found.commit)
        data = found.corrupt.get(path, found.files[path])
        start, end, status = 0, len(data), 200
        if m := re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range") or ""):
            start = int(m.group(1))
            end = min(int(m.group(2)) + 1, len(data)) if m.group(2) else len(data)
            status = 206
        self.send_response(status)
        self.send_header("X-Repo-Commit", found.commit)
        self.send_header("ETag", f'"{found.etag(path)}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        self.end_headers()
        if head:
            return None
        branch = next((b for b, r in self.hub.repos[(kind, repo)].items() if r is found), rev)
        with self.hub.lock:
            self.hub.gets[(repo, branch, path)] += 1
        self._send(data[start:end], stall=(branch, path) in self.hub.stall)
        return None

    def _send(self, data: bytes, *, stall: bool) -> None:
        half = len(data) // 2 if stall else len(data)
        self.wfile.write(data[:half])
        self.wfile.flush()
        with self.hub.lock:
            self.hub.bytes_sent += half
        if stall:
            self.hub.stalled.set()
            self.hub.release.wait(timeout=120)
            self.close_connection = True
            return
        with self.hub.lock:
            self.hub.bytes_sent += len(data) - half

    def _bytes(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, data: Any) -> None:
        payload = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, code: str, what: str, commit: str | None = None) -> None:
        payload = json.dumps({"error": f"{code}: {what}"}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", f"{code}: {what}")
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


def _form_paths(body: bytes) -> list[str]:
    """`paths` from a form-encoded or JSON paths-info body."""
    from urllib.parse import parse_qs

    text = body.decode()
    if text.startswith("{"):
        paths = json.loads(text).get("paths", [])
        return [paths] if isinstance(paths, str) else list(paths)
    return parse_qs(text).get("paths", [])


class Server:
    """`with Server(hub) as url:` serves `hub` on 127.0.0.1 in a daemon thread."""

    def __init__(self, hub: FakeHub) -> None:
        handler = type("BoundHandler", (Handler,), {"hub": hub})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
