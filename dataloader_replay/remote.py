"""Rows by HTTP range request: `hf://datasets/OWNER/NAME[@REVISION]` and `http(s)://` mirrors.

The sharded layout (`shards.py`) reads through `HttpFiles`, so replaying one step asks the
server for the idx header, that step's idx entries and the batch's byte range(s), never a
whole file. Clients are existing ones: huggingface_hub lists a hub repository (tree API) and
resolves its revision to a commit (`X-Repo-Commit`, honouring `HF_ENDPOINT`, the token and
`HF_HUB_OFFLINE`); fsspec's `HTTPFileSystem` gives the HTTP session (aiohttp), HEAD sizes and
an index page's links for a plain mirror. A ranged GET must answer 206 with the asked
`Content-Range` before its body is read: a server that ignores Range (200, the whole file) is
refused, not downloaded (fsspec's own `HTTPFile` would read the start of such a response).

Each range is cached on disk under a name content-addressed by (URL, revision, range)
(`--cache DIR`, default `platformdirs.user_cache_path("pythia-suite")/ranges`), written to a
temporary name and renamed. Failures are retried with exponential backoff, resuming after the
bytes already received; connections and reads time out. Offline, only the cache is read and a
missing range is named.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from tqdm import tqdm

from suite_core import DataError
from suite_core.atomic import write_atomic

log = logging.getLogger(__name__)
HF_SPEC = re.compile(r"^hf://datasets/(?P<repo>[^/@]+/[^/@]+)(?:@(?P<rev>[^/]+))?/?$")
RESOLVE = re.compile(r"/datasets/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[0-9a-f]{40})/?$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
CHUNK = 1 << 20
PROGRESS_BYTES = 16 << 20  # a progress bar for ranges at least this large


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    attempts: int = 4  # tries per range, the first included
    backoff: float = 0.25  # seconds before the second try, doubled each time
    connect_timeout: float = 20.0
    read_timeout: float = 60.0  # between two reads of the body


RETRY = RetryPolicy()


class _Retry(Exception):
    """A transient failure (5xx, 429, a short body): try the range again."""


def default_cache() -> Path:
    import platformdirs

    return platformdirs.user_cache_path("pythia-suite") / "ranges"


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _key(*parts: object) -> str:
    return hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()


@dataclass(frozen=True)
class RangeCache:
    """Ranges and listings on disk, content-addressed by URL, revision and range."""

    root: Path

    def range_path(self, url: str, revision: str, start: int, end: int) -> Path:
        key = _key(url, revision, start, end)
        return self.root / "ranges" / key[:2] / key

    def listing_path(self, spec: str) -> Path:
        return self.root / "listings" / f"{_key(spec)}.json"

    def read_listing(self, spec: str) -> dict[str, Any] | None:
        path = self.listing_path(spec)
        if not path.is_file():
            return None
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except ValueError:
            raise DataError(f"{path}: not a listing (damaged cache; remove it)") from None

    def write_listing(self, spec: str, listing: dict[str, Any]) -> None:
        write_atomic(self.listing_path(spec), json.dumps(listing, sort_keys=True).encode())


@dataclass(frozen=True, kw_only=True)
class RemoteFile:
    url: str
    size: int
    revision: str  # a commit, an ETag, or the size: what names this version of the file


@dataclass(kw_only=True)
class HttpFiles:
    """Files of one remote dataset, read by cached range requests."""

    where: str
    files: dict[str, RemoteFile]
    cache: RangeCache
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    offline: bool = False
    retry: RetryPolicy = RETRY
    transferred: int = 0  # body bytes received from the server
    requests: int = 0
    _fs: Any = field(default=None, repr=False)

    def locate(self, name: str) -> str:
        """The file's URL; a name the listing lacks (an expected shard) is named under `where`."""
        known = self.files.get(name)
        return known.url if known is not None else f"{self.where.rstrip('/')}/{name}"

    def read_into(self, name: str, start: int, out: np.ndarray) -> None:
        f = self.files[name]
        end = start + out.size
        if end > f.size:
            raise DataError(f"{f.url}: field 'size': {f.size} bytes, reading [{start}, {end})")
        path = self.cache.range_path(f.url, f.revision, start, end)
        if path.is_file() and path.stat().st_size == out.size:
            out[:] = np.fromfile(path, np.uint8)
            return
        if self.offline:
            raise DataError(
                f"{f.url}: bytes {start}-{end - 1} are not in the cache {self.cache.root} "
                "and HF_HUB_OFFLINE is set"
            )
        if path.exists():
            log.warning("%s: incomplete cached range, fetching it again", path)
        self._fetch(f.url, start, out)
        write_atomic(path, out.tobytes())

    def read_pieces(self, pieces: list[tuple[str, int, np.ndarray]]) -> None:
        for name, start, out in pieces:
            self.read_into(name, start, out)

    def _fetch(self, url: str, start: int, out: np.ndarray) -> None:
        got, attempt = 0, 0
        big = out.size >= PROGRESS_BYTES
        with tqdm(
            total=out.size,
            unit="B",
            unit_scale=True,
            desc=url.rsplit("/", 1)[-1],
            disable=None if big else True,
            leave=False,
        ) as bar:
            while got < out.size:
                progress = [0]
                try:
                    self._run(self._get(url, start + got, out[got:], progress, bar))
                    got = out.size
                except (TimeoutError, _Retry, OSError, aiohttp.ClientError) as exc:
                    got += progress[0]
                    attempt += 1
                    if attempt >= self.retry.attempts:
                        raise DataError(
                            f"{url}: bytes {start}-{start + out.size - 1}: {_reason(exc)} "
                            f"(after {attempt} attempts)"
                        ) from None
                    log.warning("%s: %s; retrying from byte %d", url, _reason(exc), start + got)
                    time.sleep(self.retry.backoff * 2 ** (attempt - 1))

    async def _get(
        self, url: str, start: int, out: np.ndarray, progress: list[int], bar: tqdm
    ) -> None:
        session = await self.fs().set_session()
        end = start + out.size - 1
        self.requests += 1
        headers = {**self.headers, "Range": f"bytes={start}-{end}"}
        async with session.get(url, headers=headers) as r:
            _check_range_response(url, r.status, r.headers.get("Content-Range"), start, end)
            pos = 0
            async for chunk in r.content.iter_chunked(CHUNK):
                n = min(len(chunk), out.size - pos)
                out[pos : pos + n] = np.frombuffer(chunk, np.uint8, n)
                pos += n
                self.transferred += len(chunk)
                progress[0] = pos
                bar.update(n)
            if pos < out.size:
                raise _Retry(f"the connection closed after {pos} of {out.size} bytes")

    def fs(self) -> Any:
        if self._fs is None:
            self._fs = http_filesystem(self.headers, self.retry)
        return self._fs

    def _run(self, coro: Any) -> Any:
        from fsspec.asyn import sync

        return sync(self.fs().loop, lambda: coro)


def _check_range_response(
    url: str, status: int, content_range: str | None, start: int, end: int
) -> None:
    if status == 200:
        raise DataError(
            f"{url}: the server ignored the Range request (HTTP 200, the whole file); "
            "refusing to download it (a mirror must support range requests)"
        )
    if status in (429,) or status >= 500:
        raise _Retry(f"HTTP {status}")
    if status == 404:
        raise DataError(f"{url}: HTTP 404 Not Found")
    if status != 206:
        raise DataError(f"{url}: HTTP {status} for bytes {start}-{end}")
    m = CONTENT_RANGE.match(content_range or "")
    if not m or (int(m[1]), int(m[2])) != (start, end):
        raise DataError(
            f"{url}: field 'Content-Range': {content_range!r}, asked for bytes {start}-{end}"
        )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def http_filesystem(headers: dict[str, str], retry: RetryPolicy) -> Any:
    """fsspec's HTTPFileSystem with timeouts (a fresh instance: its session is ours)."""
    from fsspec.implementations.http import HTTPFileSystem

    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=retry.connect_timeout, sock_read=retry.read_timeout
    )
    return HTTPFileSystem(
        headers=headers, client_kwargs={"timeout": timeout}, skip_instance_cache=True
    )


@dataclass(frozen=True, kw_only=True)
class Listing:
    """What a remote dataset holds: file sizes and versions, cached for offline use."""

    base: str  # the URL the file names are appended to
    files: dict[str, int]
    revisions: dict[str, str]  # name -> commit / ETag / size: the version a cache key names
    repo_id: str | None = None
    commit: str | None = None
    identity: str | None = None  # the idx's sha256 (hub), else a hash of URL, ETag and size

    def as_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def open_remote(spec: str, *, cache: Path | None) -> tuple[HttpFiles, dict[str, int | None], Any]:
    """(files, name -> size, origin) of `hf://datasets/OWNER/NAME[@REV]` or an http(s) base."""
    from dataloader_replay.shards import Origin

    store = RangeCache(Path(cache) if cache is not None else default_cache())
    headers: dict[str, str] = {}
    if spec.startswith("hf://"):
        endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
        token = _hf_token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        key, fetch = f"{endpoint} {spec}", lambda: hf_listing(spec, endpoint, token)
    else:
        key, fetch = spec, lambda: http_listing(spec)
    listing = _cached_listing(store, key, fetch, spec)
    files = {
        name: RemoteFile(url=listing.base + name, size=size, revision=listing.revisions[name])
        for name, size in listing.files.items()
    }
    http = HttpFiles(where=spec, files=files, cache=store, headers=headers, offline=offline())
    origin = Origin(repo_id=listing.repo_id, revision=listing.commit, identity=listing.identity)
    return http, dict(listing.files), origin


def _cached_listing(store: RangeCache, key: str, fetch: Any, spec: str) -> Listing:
    if offline():
        cached = store.read_listing(key)
        if cached is None:
            raise DataError(
                f"{spec}: HF_HUB_OFFLINE is set and the cache {store.root} holds no listing "
                "of it (open it once online)"
            )
        return Listing(**cached)
    listing: Listing = fetch()
    store.write_listing(key, listing.as_json())
    return listing


def _hf_token() -> str | None:
    from huggingface_hub import get_token

    return get_token()


def hf_listing(spec: str, endpoint: str, token: str | None) -> Listing:
    """List a hub dataset at a revision and resolve the revision to its commit."""
    from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    m = HF_SPEC.match(spec)
    if not m:
        raise DataError(f"{spec}: expected hf://datasets/OWNER/NAME[@REVISION]")
    repo, rev = m["repo"], m["rev"] or "main"
    try:
        tree = HfApi(endpoint=endpoint, token=token).list_repo_tree(
            repo, repo_type="dataset", revision=rev
        )
        entries = [e for e in tree if hasattr(e, "size") and "/" not in e.path]
        idx = next((e.path for e in entries if e.path.endswith(".idx")), None)
        commit = rev if COMMIT.match(rev) or idx is None else None
        if commit is None:
            url = hf_hub_url(repo, str(idx), repo_type="dataset", revision=rev, endpoint=endpoint)
            commit = get_hf_file_metadata(url, token=token).commit_hash
    except RevisionNotFoundError:
        raise DataError(f"{spec}: revision {rev!r} does not exist at {endpoint}") from None
    except RepositoryNotFoundError:
        raise DataError(f"{spec}: no dataset {repo!r} at {endpoint}") from None
    except Exception as exc:  # connection refused, DNS, TLS, HTTP errors from huggingface_hub
        if not _is_network_error(exc):
            raise
        raise DataError(f"{spec}: {endpoint} unreachable or failing ({_reason(exc)})") from None
    if commit is None:
        raise DataError(f"{spec}: the hub did not state the commit of revision {rev!r}")
    files = {e.path: int(e.size) for e in entries}
    sha = {e.path: str(e.lfs.sha256) for e in entries if getattr(e, "lfs", None)}  # type: ignore[union-attr]
    return Listing(
        base=f"{endpoint}/datasets/{repo}/resolve/{commit}/",
        files=files,
        revisions=dict.fromkeys(files, commit),
        repo_id=repo,
        commit=commit,
        identity=sha.get(str(idx)) if idx else None,
    )


def _is_network_error(exc: BaseException) -> bool:
    from huggingface_hub.errors import HfHubHTTPError

    try:
        import httpx2

        transport: tuple[type[BaseException], ...] = (httpx2.HTTPError,)
    except ImportError:  # older huggingface_hub: requests
        transport = ()
    return isinstance(exc, (HfHubHTTPError, OSError, *transport))


def http_listing(spec: str) -> Listing:
    """A mirror's files from its index page (links), sizes and ETags by HEAD, via fsspec."""
    from dataloader_replay.shards import SHARD_NAME

    base = spec if spec.endswith("/") else spec + "/"
    fs = http_filesystem({}, RETRY)
    try:
        links = fs.ls(base, detail=False)
        names = sorted({link[len(base) :] for link in links if link.startswith(base)})
        names = [n for n in names if SHARD_NAME.match(n) or n.endswith(".idx")]
        infos = {n: fs.info(base + n) for n in names}
    except FileNotFoundError:
        raise DataError(f"{base}: HTTP 404 Not Found (no index page of the files)") from None
    except (TimeoutError, OSError, aiohttp.ClientError) as exc:
        raise DataError(f"{base}: unreachable ({_reason(exc)})") from None
    files = {n: int(i["size"]) for n, i in infos.items() if i.get("size") is not None}
    revisions = {n: str(infos[n].get("ETag") or f"size:{files[n]}") for n in files}
    m = RESOLVE.search(base.rstrip("/"))
    idx = next((n for n in files if n.endswith(".idx")), None)
    return Listing(
        base=base,
        files=files,
        revisions=revisions,
        repo_id=m["repo"] if m else None,
        commit=m["rev"] if m else None,
        identity=_key(base + idx, revisions[idx], files[idx]) if idx else None,
    )
