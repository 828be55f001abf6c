"""`checkpoints fetch`: published checkpoints from the Hugging Face hub, verified before use.

`plan_fetch` reads only metadata: the repo's branches (`stepN`), and for each wanted revision
its file tree with the sha256 of every LFS file (and the git blob id of every other file).
From that it names the missing revisions, the revisions whose weight files share their sha256
with an earlier step's (flagged, never downloaded twice), and the revisions the hub table
(`hub_reports`) reports as bad. `fetch` downloads through `huggingface_hub.hf_hub_download`,
so the Hugging Face cache is used and filled (`HF_HOME`, `HF_ENDPOINT`, token, offline mode
as usual; a killed fetch keeps the files it completed), checks every file's bytes against the
metadata, and only then moves a revision into `DIR/stepN` (built as a temporary folder and
renamed). A file whose bytes differ is removed from the cache and its revision is not placed.
`DIR/fetch.json` names the repository the folder holds. With `HF_HUB_OFFLINE` the plan is
read from the cache (`refs/stepN`, snapshot links to blobs named by their sha256 / git blob id)
and the cached files are verified and placed the same way. Weights are only ever read as
safetensors (a revision that publishes only pickles is converted with
`torch.load(weights_only=True)`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from checkpoints_index import hub
from checkpoints_index.hub_reports import Report, reports_for
from checkpoints_index.layout import CATALOG, CHECKPOINTS, MODEL_FILE, STEP_DIR
from checkpoints_index.schedule import checkpoint_steps
from suite_core import CheckpointError
from suite_core.atomic import write_atomic
from suite_core.hashing import CHUNK, sha256_file
from suite_core.layout import RunLayout

log = logging.getLogger(__name__)

FETCH_FILE = "fetch.json"
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
PICKLES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
OTHER_FORMATS = (".h5", ".msgpack", ".onnx", ".ot", ".gguf", ".tflite")
SKIPPED = (".gitattributes",)
TMP_PREFIX = ".fetch-"
UNBOUNDED = 1 << 62  # a last step past any listed one
T = TypeVar("T")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RemoteFile:
    """One file of a revision as the hub's tree lists it."""

    path: str
    size: int
    sha256: str | None  # LFS files: the sha256 of the bytes
    blob_id: str  # the git blob id (for LFS files, of the pointer)

    @property
    def is_weights(self) -> bool:
        return self.path.endswith(".safetensors") or self.path.endswith(PICKLES)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PlannedRevision:
    step: int
    revision: str
    commit: str
    files: tuple[RemoteFile, ...]
    duplicate_of: int | None = None  # an earlier step whose weight files have the same sha256
    reports: tuple[Report, ...] = ()

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def download_size(self) -> int:
        """Bytes this revision adds (a duplicate adds only its non-weight files)."""
        if self.duplicate_of is None:
            return self.size
        return sum(f.size for f in self.files if not f.is_weights)

    @property
    def weights_key(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((f.path, f.sha256 or f.blob_id) for f in self.files if f.is_weights))


@dataclasses.dataclass(frozen=True, kw_only=True)
class FetchPlan:
    repo_id: str
    model: str | None  # the hub table's row (e.g. "pythia-70m-deduped"), None for other repos
    endpoint: str | None
    revisions: tuple[PlannedRevision, ...]
    missing: tuple[int, ...]  # wanted steps the repo has no branch for

    @property
    def size(self) -> int:
        return sum(r.download_size for r in self.revisions)

    @property
    def where(self) -> str:
        """The repo's URL (the endpoint given, else HF_ENDPOINT's / the hub's)."""
        from huggingface_hub import constants

        return f"{(self.endpoint or constants.ENDPOINT).rstrip('/')}/{self.repo_id}"

    def lines(self) -> list[str]:
        """The plan as text: one line per revision (size, flags), then the totals."""
        out = [f"{self.repo_id}: {len(self.revisions)} revisions"]
        for rev in self.revisions:
            flags = []
            if rev.duplicate_of is not None:
                flags.append(f"duplicate of step{rev.duplicate_of} (weights not downloaded twice)")
            flags += [f"reported {r.kind}: {r.url}" for r in rev.reports]
            note = f"  # {'; '.join(flags)}" if flags else ""
            out.append(
                f"{rev.revision}  {rev.commit[:12]}  {len(rev.files)} files  "
                f"{rev.size:,} bytes{note}"
            )
        for step in self.missing:
            out.append(f"step{step}  MISSING: no such revision in {self.repo_id}")
        out.append(f"total to download: {self.size:,} bytes ({self.size / 1e6:,.1f} MB)")
        return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class Corrupt:
    step: int
    path: str
    expected: str
    actual: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class FetchResult:
    out_dir: Path
    placed: tuple[int, ...]  # steps now in DIR/stepN (downloaded, or found there complete)
    duplicates: dict[int, int]  # step -> the earlier step with the same weights
    skipped_reported: tuple[int, ...]
    corrupt: tuple[Corrupt, ...]


def resolve_model(model: str) -> tuple[str, str | None]:
    """(repo id, hub table row or None) for a family row like `pythia-70m-deduped` or OWNER/NAME."""
    try:
        row = hub.parse_model(model).repo_name
    except ValueError:
        if not REPO_ID.match(model):
            raise CheckpointError(
                f"model {model!r}: expected a Pythia row (pythia-SIZE[-deduped]) or OWNER/NAME"
            ) from None
        return model, None
    for note in hub.parse_model(model).notes:
        log.warning("%s", note)
    return f"{hub.ORG}/{row}", row


def plan_fetch(
    repo_id: str,
    steps: str | Sequence[int],
    *,
    revision_prefix: str = "step",
    endpoint: str | None = None,
) -> FetchPlan:
    """The revisions of `steps` (a rule such as `pythia`, or a list) with their files and flags.

    `repo_id` may be a Pythia row of the hub table or any OWNER/NAME. `pythia` and `log+every:K`
    run to the repo's last `stepN` branch (143000 for the Pythia rows); a `steps:` list is taken
    as listed. Reads metadata only (offline: the HF cache).
    """
    from huggingface_hub import HfApi

    repo_id, model = resolve_model(repo_id)
    api = HfApi(endpoint=endpoint)
    where = f"{api.endpoint}/{repo_id}"
    offline = _offline()  # HF_HUB_OFFLINE: the plan from what the HF cache holds
    if offline:
        refs = cached_refs(repo_id)
    else:
        listed = _hub_call(where, lambda: api.list_repo_refs(repo_id)).branches
        refs = {b.name: b.target_commit for b in listed}
    pattern = re.compile(rf"^{re.escape(revision_prefix)}(0|[1-9][0-9]*)$")
    branches = {int(m.group(1)): c for b, c in refs.items() if (m := pattern.match(b))}
    if isinstance(steps, str):
        if not branches:
            raise CheckpointError(f"{where}: no {revision_prefix}N branches")
        wanted = requested_steps(steps, max(branches))  # Pythia's last: PYTHIA_STEPS
    else:
        wanted = sorted(set(steps))
    revisions = [
        PlannedRevision(
            step=step,
            revision=f"{revision_prefix}{step}",
            commit=branches[step],
            files=_wanted_files(
                cached_files(repo_id, branches[step])
                if offline
                else _hub_files(api, f"{where}@{revision_prefix}{step}", repo_id, branches[step])
            ),
            reports=tuple(reports_for(model, step)) if model else (),
        )
        for step in wanted
        if step in branches
    ]
    return FetchPlan(
        repo_id=repo_id,
        model=model,
        endpoint=endpoint,
        revisions=flag_duplicates(revisions),
        missing=tuple(s for s in wanted if s not in branches),
    )


def _hub_files(api: Any, where: str, repo_id: str, commit: str) -> list[RemoteFile]:
    """The files of one commit as the hub's tree lists them (LFS sha256 included)."""
    entries = _hub_call(
        where, lambda: list(api.list_repo_tree(repo_id, revision=commit, recursive=True))
    )
    return [_remote_file(e) for e in entries if hasattr(e, "blob_id")]


def flag_duplicates(revisions: list[PlannedRevision]) -> tuple[PlannedRevision, ...]:
    """Each revision whose weight files (by sha256) equal an earlier step's, marked as its
    duplicate."""
    first: dict[tuple[tuple[str, str], ...], int] = {}
    out = []
    for rev in revisions:
        earlier = first.setdefault(rev.weights_key, rev.step)
        out.append(dataclasses.replace(rev, duplicate_of=None if earlier == rev.step else earlier))
    return tuple(out)


def requested_steps(rule: str, last: int) -> list[int]:
    """The steps of `rule`: `pythia` / `log+every:K` up to the repo's `last` branch (included);
    a `steps:` list exactly as listed (steps past `last` are kept, to be named missing)."""
    if rule.strip().startswith("steps:"):
        return [s for s in checkpoint_steps(rule, UNBOUNDED) if s != UNBOUNDED]
    return checkpoint_steps(rule, last)


def _remote_file(entry: Any) -> RemoteFile:
    """A `huggingface_hub.hf_api.RepoFile` as a RemoteFile."""
    lfs = getattr(entry, "lfs", None)
    return RemoteFile(
        path=entry.path,
        size=int(entry.size),
        sha256=lfs.sha256 if lfs else None,
        blob_id=entry.blob_id,
    )


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def _cache_root(cache_dir: Path | None = None) -> Path:
    from huggingface_hub import constants

    return Path(cache_dir if cache_dir is not None else constants.HF_HUB_CACHE)


def _cache_folder(repo_id: str, cache_dir: Path | None = None) -> Path:
    return _cache_root(cache_dir) / f"models--{repo_id.replace('/', '--')}"


def sweep_leftovers(repo_id: str, etag: str, cache_dir: Path | None = None) -> int:
    """Remove the partial files a killed download left in the cache (`blobs/ETAG.*.incomplete`:
    huggingface_hub 2.4 never reuses them). Under huggingface_hub's own lock for that blob, so a
    download in progress elsewhere is waited for, never cut short. Returns how many went."""
    from huggingface_hub.utils import WeakFileLock

    folder = _cache_folder(repo_id, cache_dir)
    if not list((folder / "blobs").glob(f"{etag}.*.incomplete")):
        return 0
    lock = _cache_root(cache_dir) / ".locks" / folder.name / f"{etag}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(lock):
        leftovers = list((folder / "blobs").glob(f"{etag}.*.incomplete"))
        for path in leftovers:
            log.info("%s: removing the partial file of an interrupted download", path)
            path.unlink(missing_ok=True)
    return len(leftovers)


def cached_refs(repo_id: str) -> dict[str, str]:
    """Branch -> commit as the HF cache recorded them (offline mode)."""
    refs = _cache_folder(repo_id) / "refs"
    if not refs.is_dir():
        raise CheckpointError(
            f"{refs}: HF_HUB_OFFLINE is set and the Hugging Face cache holds nothing of {repo_id}"
        )
    return {p.name: p.read_text().strip() for p in sorted(refs.iterdir()) if p.is_file()}


def cached_files(repo_id: str, commit: str) -> list[RemoteFile]:
    """The files of a cached snapshot, each with the digest its blob is named by: the sha256
    for LFS files, the git blob id for the others (what the hub's ETag was)."""
    snapshot = _cache_folder(repo_id) / "snapshots" / commit
    files = []
    for path in sorted(p for p in snapshot.rglob("*") if p.is_file()):
        blob = path.resolve().name
        if not path.is_symlink() or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", blob):
            raise CheckpointError(
                f"{path}: not a cache link to a named blob; cannot verify offline"
            )
        files.append(
            RemoteFile(
                path=path.relative_to(snapshot).as_posix(),
                size=path.stat().st_size,
                sha256=blob if len(blob) == 64 else None,
                blob_id=blob,
            )
        )
    return files


def _wanted_files(files: list[RemoteFile]) -> tuple[RemoteFile, ...]:
    """The files worth fetching: safetensors weights (pickles only when there are none)."""
    has_safetensors = any(f.path.endswith(".safetensors") for f in files)
    keep = [
        f
        for f in files
        if not f.path.endswith(OTHER_FORMATS)
        and f.path.rsplit("/", 1)[-1] not in SKIPPED
        and not (has_safetensors and f.path.endswith(PICKLES))
    ]
    return tuple(sorted(keep, key=lambda f: f.path))


def _hub_call(where: str, call: Callable[[], T]) -> T:
    """Run one hub request; its failures become one-line CheckpointErrors naming `where`."""
    import httpx2
    from huggingface_hub.errors import (
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return call()
    except RevisionNotFoundError:
        raise CheckpointError(f"{where}: no such revision") from None
    except RepositoryNotFoundError:
        raise CheckpointError(f"{where}: no such model repository (or no access)") from None
    except OfflineModeIsEnabled:
        raise CheckpointError(f"{where}: HF_HUB_OFFLINE is set; fetch needs the hub") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise CheckpointError(f"{where}: HTTP {status} from the hub") from None
    except httpx2.HTTPError as exc:
        raise CheckpointError(f"{where}: unreachable ({type(exc).__name__}: {exc})") from None


def git_blob_id(path: Path) -> str:
    """The git blob id (sha1 of `blob SIZE\\0` + bytes) that the hub lists for non-LFS files."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_digest(path: Path, remote: RemoteFile) -> str:
    """The digest of a local file in the form the hub's metadata gives for `remote`."""
    if remote.sha256 is None:
        return git_blob_id(path)
    return sha256_file(path)


def fetch(
    plan: FetchPlan, out_dir: Path, *, skip_reported: bool = False, cache_dir: Path | None = None
) -> FetchResult:
    """Download, verify and place every revision of `plan` into `out_dir/stepN`.

    `cache_dir` overrides the Hugging Face cache (default: `HF_HUB_CACHE`, under `HF_HOME`).
    Raises CheckpointError (nothing downloaded) for missing revisions or an `out_dir` that
    holds another model. Corrupt files do not stop the other revisions: they are returned.
    """
    out_dir = Path(out_dir)
    if plan.missing:
        names = ", ".join(f"step{s}" for s in plan.missing)
        raise CheckpointError(f"{plan.where}: no revision {names}")
    _claim(out_dir, plan.repo_id)
    for stale in out_dir.glob(f"{TMP_PREFIX}*"):
        log.warning("%s: removing the leftover of an interrupted fetch", stale)
        shutil.rmtree(stale, ignore_errors=True)
    placed, skipped, corrupt = [], [], []
    verified: dict[tuple[str, str], Path] = {}  # (path, sha256) -> a verified local copy
    duplicates = {r.step: r.duplicate_of for r in plan.revisions if r.duplicate_of is not None}
    for rev in plan.revisions:
        for report in rev.reports:
            log.warning(
                "%s@%s: reported %s: %s (%s)%s",
                plan.repo_id,
                rev.revision,
                report.kind,
                report.summary,
                report.url,
                " -- skipped" if skip_reported else "",
            )
        if rev.reports and skip_reported:
            skipped.append(rev.step)
            continue
        bad = _fetch_revision(plan, rev, out_dir, verified, cache_dir)
        corrupt += bad
        if not bad:
            placed.append(rev.step)
            _record(out_dir, rev)
    return FetchResult(
        out_dir=out_dir,
        placed=tuple(placed),
        duplicates=duplicates,
        skipped_reported=tuple(skipped),
        corrupt=tuple(corrupt),
    )


def _claim(out_dir: Path, repo_id: str) -> None:
    """Refuse a folder holding another model or a run; record which repo `out_dir` holds."""
    if out_dir.exists() and not out_dir.is_dir():
        raise CheckpointError(f"{out_dir}: not a directory")
    if (out_dir / CHECKPOINTS).is_dir() or RunLayout(out_dir).is_run():
        raise CheckpointError(f"{out_dir}: a training run's directory, not a fetch folder")
    record = out_dir / FETCH_FILE
    if record.is_file():
        try:
            held = json.loads(record.read_text(encoding="utf-8"))["repo_id"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{record}: not a fetch record ({exc})") from None
        if held != repo_id:
            raise CheckpointError(f"{record}: the folder holds {held}, not {repo_id}")
        return
    if out_dir.is_dir():
        held_steps = [p.name for p in out_dir.iterdir() if STEP_DIR.match(p.name)]
        if held_steps or (out_dir / CATALOG).exists():
            raise CheckpointError(
                f"{out_dir}: holds checkpoints ({', '.join(sorted(held_steps)[:3]) or CATALOG}) "
                f"that were not fetched from {repo_id} (no {FETCH_FILE})"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(record, {"repo_id": repo_id})


def _record(out_dir: Path, rev: PlannedRevision) -> None:
    """Add a placed revision (its commit and file digests) to `out_dir/fetch.json`."""
    record = out_dir / FETCH_FILE
    data = json.loads(record.read_text(encoding="utf-8"))
    data.setdefault("revisions", {})[f"step{rev.step}"] = {
        "revision": rev.revision,
        "commit": rev.commit,
        "files": {f.path: f.sha256 or f.blob_id for f in rev.files},
    }
    _write_json(record, data)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _fetch_revision(
    plan: FetchPlan,
    rev: PlannedRevision,
    out_dir: Path,
    verified: dict[tuple[str, str], Path],
    cache_dir: Path | None,
) -> list[Corrupt]:
    """Place one revision in `out_dir/stepN` (already there and intact: nothing to do)."""
    final = out_dir / f"step{rev.step}"
    if final.is_dir():
        bad = _check_placed(rev, final)
        if bad:
            raise CheckpointError(
                f"{final / bad[0].path}: sha256 {bad[0].actual[:12]}... differs from "
                f"{plan.repo_id}@{rev.revision}'s {bad[0].expected[:12]}... (another model?)"
            )
        for f in rev.files:
            verified.setdefault((f.path, f.sha256 or f.blob_id), final / f.path)
        log.info("%s: already fetched and intact", final)
        return []
    sources, corrupt = {}, []
    for remote in rev.files:
        key = (remote.path, remote.sha256 or remote.blob_id)
        # The cache keeps one blob per sha256: a duplicate's weights are linked, not fetched
        # again (and its snapshot stays complete for offline use).
        local = _download(plan, rev, remote, cache_dir)
        if key in verified and os.path.samefile(local, verified[key]):
            sources[remote.path] = local  # the same blob, verified already
            continue
        actual = file_digest(local, remote)
        expected = remote.sha256 or remote.blob_id
        if actual != expected:
            log.error(
                "%s@%s/%s: bytes hash to %s, the hub's metadata says %s: removed from the cache",
                plan.repo_id,
                rev.revision,
                remote.path,
                actual,
                expected,
            )
            _drop_from_cache(local)
            corrupt.append(
                Corrupt(step=rev.step, path=remote.path, expected=expected, actual=actual)
            )
            continue
        verified[key] = sources[remote.path] = local
    if corrupt:
        return corrupt
    _place(sources, final)
    log.info("%s: %d files verified and placed", final, len(sources))
    return []


def _download(
    plan: FetchPlan, rev: PlannedRevision, remote: RemoteFile, cache_dir: Path | None
) -> Path:
    """hf_hub_download one file of `rev` into the HF cache; checks the branch did not move."""
    from huggingface_hub import hf_hub_download

    where = f"{plan.where}@{rev.revision}/{remote.path}"
    sweep_leftovers(plan.repo_id, remote.sha256 or remote.blob_id, cache_dir)
    local = Path(
        _hub_call(
            where,
            lambda: hf_hub_download(
                plan.repo_id,
                remote.path,
                revision=rev.revision,
                endpoint=plan.endpoint,
                cache_dir=cache_dir,
            ),
        )
    )
    parts = local.parts
    commit = parts[parts.index("snapshots") + 1] if "snapshots" in parts else rev.commit
    if commit != rev.commit:
        raise CheckpointError(
            f"{where}: the branch moved from {rev.commit[:12]} to {commit[:12]} during the "
            "fetch; run it again"
        )
    return local


def _drop_from_cache(local: Path) -> None:
    """Remove a bad file (its cache blob and snapshot link) so that a rerun downloads it again."""
    blob = local.resolve()
    local.unlink(missing_ok=True)
    blob.unlink(missing_ok=True)


def _check_placed(rev: PlannedRevision, folder: Path) -> list[Corrupt]:
    """The files of an existing `stepN` folder that differ from the plan."""
    bad = []
    for remote in rev.files:
        expected = remote.sha256 or remote.blob_id
        path = folder / remote.path
        if not path.is_file() and remote.path.endswith(PICKLES) and (folder / MODEL_FILE).is_file():
            continue  # converted to safetensors when it was placed
        actual = file_digest(path, remote) if path.is_file() else "missing"
        if actual != expected:
            bad.append(Corrupt(step=rev.step, path=remote.path, expected=expected, actual=actual))
    return bad


def _place(sources: dict[str, Path], final: Path) -> None:
    """Build `final` under a temporary name (hard links to the cache where possible), rename."""
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{final.name}-", dir=final.parent))
    try:
        for name, source in sources.items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source.resolve(), target)
            except OSError:
                shutil.copyfile(source, target)
            os.chmod(target, 0o444)  # read-only: a hard link shares its bytes with the cache
        if not any(n.endswith(".safetensors") for n in sources):
            _convert_pickles(tmp, [n for n in sources if n.endswith(PICKLES)])
        os.chmod(tmp, 0o755)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _convert_pickles(folder: Path, names: list[str]) -> None:
    """A pickle-only revision: `torch.load(weights_only=True)` into `model.safetensors`."""
    import torch
    from safetensors.torch import save_file

    if len(names) != 1:
        raise CheckpointError(
            f"{folder.name}: {len(names)} pickled weight files and no safetensors; only a single "
            "pickle is converted"
        )
    path = folder / names[0]
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (any unpickling refusal is the user's bad file)
        raise CheckpointError(f"{path}: not a weights-only pickle ({exc})") from None
    save_file({k: v.contiguous().clone() for k, v in state.items()}, str(folder / MODEL_FILE))
    path.unlink()
