"""Dedup and prepare at scale: local engine vs Ray (1 and 2 workers) vs datatrove's MinHash.

The corpus is real text nobody here wrote: licence and copyright files (/usr/share/common-
licenses, /usr/share/doc/*/copyright), manual pages (zcat), and Python standard-library sources,
in a seeded order, cut to a size in MB (`--mb`), and again at 10x that size. Every engine runs
as its own process (Ray drivers join one cluster of `--cores` CPUs started here on loopback).

Printed per run: wall time, MB/s per core (input MB / wall s / cores used), MB per CPU-second
(all processes of the run, Ray workers included: the figure that survives a shared machine),
and the peak RSS of each process (driver, Ray workers). Precision / recall of the removed
documents against the exact rule (Jaccard >= threshold of the shingle sets, in input order,
computed here without LSH by an exact prefix-filter join), for ours (exact and estimated
verification) and datatrove (installed in a separate virtualenv under bench/out; its own
normalisation and 14 x 8 bands, union-find clusters). Then `prepare` local vs Ray.

    python bench/bench_dedup_scale.py               # --mb 4: 4 MB and 40 MB
    python bench/bench_dedup_scale.py --mb 16       # 16 MB and 160 MB (the README's figures)
    python bench/bench_dedup_scale.py --mb 1 --quick  # no 10x, no datatrove

The exact reference is cached per corpus under bench/out (it does not depend on the engine).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "dedup_scale"
DT_VENV = ROOT / "bench" / "out" / "dt-venv"
DATATROVE = ["datatrove[io,processing]==0.10.1", "spacy==3.8.18"]  # spacy: its "en" word tokenizer
THRESHOLD = 0.87
PY = sys.executable
CLI = [PY, "-c", "import sys; from pythia_suite.cli import main; sys.exit(main(sys.argv[1:]))"]
sys.path.insert(0, str(ROOT))


def cpu_features() -> str:
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags |= set(line.split(":", 1)[1].split())
    model = next(
        (
            x.split(":", 1)[1].strip()
            for x in Path("/proc/cpuinfo").read_text().splitlines()
            if x.startswith("model name")
        ),
        "?",
    )
    have = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16") if f in flags]
    return f"{model}; {os.cpu_count()} cores; features: {' '.join(have) or 'none'}"


def _sources() -> list[tuple[str, str]]:
    """(name, text) of every real document found on this machine: licence and copyright files
    in path order (related packages sit together, as in a crawl), then manual pages and Python
    sources in a seeded random order."""
    docs = []
    paths = sorted(Path("/usr/share/common-licenses").glob("*"))
    paths += sorted(Path("/usr/share/doc").glob("*/copyright"))
    rest = sorted(
        p for p in Path("/usr/lib/python3.11").rglob("*.py") if "site-packages" not in p.parts
    )
    rest += sorted(Path("/usr/share/man").rglob("*.gz"))
    random.Random(0).shuffle(rest)
    for p in paths + rest:
        try:
            data = p.read_bytes()
            docs.append((str(p), (gzip.decompress(data) if p.suffix == ".gz" else data).decode()))
        except (OSError, UnicodeDecodeError, EOFError):
            continue
    return [(n, t) for n, t in docs if t.strip()]


def write_corpus(path: Path, docs: list[tuple[str, str]], mb: float) -> int:
    """The first `mb` MB of the seeded order as Pile-schema jsonl; returns documents."""
    size, n = 0, 0
    with open(path, "w") as fh:
        for name, text in docs:
            line = json.dumps(
                {"text": text, "meta": {"pile_set_name": "real", "id": name}, "id": name}
            )
            fh.write(line + "\n")
            size += len(line) + 1
            n += 1
            if size >= mb * 1e6:
                break
    return n


# ---- the exact rule, without LSH (prefix-filter set-similarity join) ----


def exact_removed(path: Path, threshold: float = THRESHOLD) -> set[str]:
    """Ids the stated rule removes: in input order, a document is removed if an earlier kept one
    has exact Jaccard >= threshold. Candidates by the AllPairs prefix filter (exact: two sets
    with J >= t share a token among their first |s| - ceil(t |s|) + 1 rarest tokens); only kept
    documents are indexed (a removed one never matters to the rule). Cached per corpus digest
    under bench/out, as it does not depend on the engine."""
    import hashlib

    from pythia_suite.corpus.minhash import jaccard, shingle_set

    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    cache = OUT / f"truth_{digest}_{threshold}.json"
    if cache.exists():
        return set(json.loads(cache.read_text()))
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    sets = [shingle_set(r["text"]) for r in rows]
    freq = Counter(s for st in sets for s in st)
    index: dict[str, list[int]] = {}
    removed: set[str] = set()
    for i, st in enumerate(sets):
        ordered = sorted(st, key=lambda s: (freq[s], s))
        prefix = ordered[: len(st) - math.ceil(threshold * len(st)) + 1]
        cands = {j for s in prefix for j in index.get(s, ())}
        if any(
            threshold * len(sets[j]) <= len(st) <= len(sets[j]) / threshold
            and jaccard(sets[j], st) >= threshold
            for j in sorted(cands)
        ):
            removed.add(rows[i]["meta"]["id"])
            continue
        for s in prefix:
            index.setdefault(s, []).append(i)
    cache.write_text(json.dumps(sorted(removed)))
    return removed


def score(removed: set[str], truth: set[str]) -> tuple[float, float]:
    tp = len(removed & truth)
    return (tp / len(removed) if removed else 1.0), (tp / len(truth) if truth else 1.0)


# ---- running one engine as its own process, watching every process it uses ----


@dataclass(kw_only=True)
class Run:
    name: str
    mb: float
    cores: int
    wall: float = 0.0
    cpu: float = 0.0  # CPU seconds of the driver and of the Ray workers during the run
    engine: float = 0.0  # seconds inside the engine (its log), without start-up and joining
    peak: dict[str, float] = field(default_factory=dict)  # role -> peak RSS MB

    def line(self) -> str:
        peaks = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(self.peak.items()))
        inner = f" (engine {self.engine:.1f} s)" if self.engine else ""
        return (
            f"{self.name:<28} {self.wall:7.1f} s{inner}  "
            f"{self.mb / self.wall / self.cores:6.2f} MB/s/core"
            f"  {self.mb / max(self.cpu, 1e-9):6.2f} MB/CPU-s  peak RSS MB: {peaks}"
        )


def _ray_workers(raylet: psutil.Process | None) -> list[psutil.Process]:
    if raylet is None:
        return []
    out = []
    for p in _children(raylet):
        try:
            if p.cmdline()[:1] and "ray::" in p.cmdline()[0]:
                out.append(p)
        except psutil.Error:
            continue
    return out


def _cpu(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def run_process(run: Run, argv: list[str], raylet: psutil.Process | None, env: dict) -> Run:
    """Run `argv`; sample RSS of it, its children and the Ray workers every 50 ms."""
    before = _cpu(_ray_workers(raylet))
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    last: dict[int, float] = {}
    while proc.poll() is None:
        procs = [("driver", root)] + [("driver", c) for c in _children(root)]
        procs += [("ray worker", w) for w in _ray_workers(raylet)]
        for role, p in procs:
            try:
                rss = p.memory_info().rss / 2**20
                t = p.cpu_times()
                last[p.pid] = t.user + t.system + getattr(t, "children_user", 0.0)
            except psutil.Error:
                continue
            run.peak[role] = max(run.peak.get(role, 0.0), rss)
        time.sleep(0.05)
    run.wall = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{run.name}: exit {proc.returncode}: {err[-2000:]}")
    found = re.findall(r"engine time ([0-9.]+) s", err)
    run.engine = float(found[-1]) if found else 0.0
    after = _cpu(_ray_workers(raylet))
    workers = sum(v - before.get(k, 0.0) for k, v in after.items())
    run.cpu = max(last.get(proc.pid, 0.0), 1e-9) + max(workers, 0.0)
    return run


def _children(p: psutil.Process) -> list[psutil.Process]:
    try:
        return p.children(recursive=True)
    except psutil.Error:
        return []


DT_SCRIPT = """
import sys, glob, gzip, json
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupSignature,
    MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig
folder, name, work = sys.argv[1:4]
cfg = MinhashConfig(hash_config=HashConfig(precision=64), num_buckets=14, hashes_per_bucket=8)
def reader():
    return JsonlReader(folder, glob_pattern=name, id_key="id")
def ex(pipeline, tasks, tag):
    LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1,
                          logging_dir=f"{work}/logs_{tag}").run()
ex([reader(), MinhashDedupSignature(output_folder=f"{work}/sigs", config=cfg)], 1, "sig")
ex([MinhashDedupBuckets(input_folder=f"{work}/sigs", output_folder=f"{work}/buckets",
    config=cfg)], cfg.num_buckets, "buckets")
ex([MinhashDedupCluster(input_folder=f"{work}/buckets", output_folder=f"{work}/remove",
    config=cfg)], 1, "cluster")
ex([reader(), MinhashDedupFilter(input_folder=f"{work}/remove",
    exclusion_writer=JsonlWriter(f"{work}/removed")), JsonlWriter(f"{work}/kept")], 1, "filter")
ids = [json.loads(x)["id"] for f in sorted(glob.glob(f"{work}/removed/*.gz"))
       for x in gzip.open(f, "rt")]
json.dump(ids, open(f"{work}/removed_ids.json", "w"))
"""


def datatrove_python() -> Path:
    """The datatrove virtualenv's interpreter (created and installed on first use)."""
    py = DT_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DT_VENV)], check=True)
    probe = subprocess.run([str(py), "-c", "import datatrove, spacy"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(py), "-m", "pip", "install", "-q", *DATATROVE], check=True)
    return py


def run_datatrove(corpus: Path, mb: float, env: dict) -> tuple[Run, set[str]]:
    work = OUT / f"datatrove_{corpus.stem}"
    subprocess.run(["rm", "-rf", str(work)], check=True)
    script = OUT / "dt_run.py"
    script.write_text(DT_SCRIPT)
    argv = [str(datatrove_python()), str(script), str(corpus.parent), corpus.name, str(work)]
    dt_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    run = run_process(Run(name="datatrove (1 task)", mb=mb, cores=1), argv, None, dt_env)
    return run, set(json.loads((work / "removed_ids.json").read_text()))


# ---- the runs ----


def ours(
    corpus: Path,
    mb: float,
    env: dict,
    raylet: psutil.Process | None,
    address: str,
    workers: int | None,
    verify: str = "exact",
) -> tuple[Run, set[str]]:
    out = OUT / f"{corpus.stem}_{workers or 'local'}_{verify}" / "deduped.jsonl"
    subprocess.run(["rm", "-rf", str(out.parent)], check=True)
    argv = [
        *CLI,
        "dedup",
        str(corpus),
        "--out",
        str(out),
        "--verify",
        verify,
    ]
    if workers:
        argv += ["--engine", "ray", "--address", address, "--workers", str(workers)]
    name = f"ours {f'ray {workers} worker(s)' if workers else 'local'} ({verify})"
    watched = raylet if workers else None  # a local run uses no Ray worker
    run = run_process(Run(name=name, mb=mb, cores=workers or 1), argv, watched, env)
    report = json.loads(out.with_name(out.name + ".report.json").read_text())
    return run, {r["id"] for g in report["groups"] for r in g["removed"]}


def prepare_runs(
    corpus: Path, mb: float, env: dict, raylet: psutil.Process | None, address: str
) -> list[Run]:
    tok = OUT / "tokenizer.json"
    if not tok.exists():
        subprocess.run(
            [
                *CLI,
                "tokenizer",
                "train",
                str(corpus),
                "--vocab-size",
                "4096",
                "--out",
                str(tok),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
    runs = []
    for workers in (None, 1, 2):
        out = OUT / f"prepared_{workers or 'local'}"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        argv = [
            *CLI,
            "prepare",
            str(corpus),
            "--tokenizer",
            str(tok),
            "--out",
            str(out),
            "--seq-length",
            "128",
            "--batch-size",
            "4",
            "--steps",
            "8",
        ]
        if workers:
            argv += ["--engine", "ray", "--address", address, "--workers", str(workers)]
        name = f"prepare {f'ray {workers} worker(s)' if workers else 'local'}"
        runs.append(run_process(Run(name=name, mb=mb, cores=workers or 1), argv, raylet, env))
    same = [
        (OUT / "prepared_local" / "train.bin").read_bytes()
        == (OUT / f"prepared_{w}" / "train.bin").read_bytes()
        for w in (1, 2)
    ]
    print(f"  prepare outputs identical local vs ray 1, 2: {same}")
    return runs


def start_ray(cores: int) -> tuple[str, psutil.Process | None]:
    import ray

    from dataloader_replay.engine_ray import start_local_ray

    for attempt in range(1, 7):  # a loaded machine can miss Ray's fixed start-up waits
        try:
            start_local_ray(num_cpus=cores)
            break
        except Exception:
            if attempt == 6:
                raise
    address = ray.get_runtime_context().gcs_address
    me = psutil.Process()
    raylet = next((p for p in me.children(recursive=True) if p.name() == "raylet"), None)
    return address, raylet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=4.0, help="base corpus size in MB")
    parser.add_argument("--cores", type=int, default=2, help="Ray cluster CPUs")
    parser.add_argument("--quick", action="store_true", help="no 10x corpus, no datatrove")
    parser.add_argument("--no-datatrove", action="store_true", help="skip datatrove")
    parser.add_argument("--no-prepare", action="store_true", help="skip the prepare runs")
    args = parser.parse_args()
    print(f"CPU: {cpu_features()}")
    print(
        f"load average at start: {os.getloadavg()} -- on a shared machine wall-clock rates are "
        "noisy, MB per CPU-second less so"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    docs = _sources()
    address, raylet = start_ray(args.cores)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # after the start: Ray's auth mode is in it
    sizes = [args.mb] if args.quick else [args.mb, 10 * args.mb]
    warm = OUT / "warm.jsonl"
    write_corpus(warm, docs, 0.05)
    ours(warm, 0.05, env, raylet, address, args.cores)  # spawn the workers once
    fixed = {w: ours(warm, 0.05, env, raylet, address, w)[0].wall for w in (1, 2)}
    print(f"fixed cost of a Ray run (a 0.05 MB corpus: start-up, joining): {fixed}")
    peaks: dict[str, dict[float, float]] = {}
    for mb in sizes:
        corpus = OUT / f"real_{mb:g}MB.jsonl"
        n = write_corpus(corpus, docs, mb)
        t = time.perf_counter()
        truth = exact_removed(corpus)
        print(
            f"\n== {mb:g} MB, {n:,} documents; exact rule removes {len(truth):,} "
            f"(reference join {time.perf_counter() - t:.0f} s) =="
        )
        results = [ours(corpus, mb, env, raylet, address, None)]
        if mb == args.mb:
            results.append(ours(corpus, mb, env, raylet, address, None, "estimate"))
        results += [ours(corpus, mb, env, raylet, address, w) for w in (1, 2)]
        if mb == args.mb and not (args.quick or args.no_datatrove):
            results.append(run_datatrove(corpus, mb, env))
        report(results, truth, fixed)
        for run, _ in results:
            for role, value in run.peak.items():
                peaks.setdefault(f"{run.name}: {role}", {})[mb] = value
        if mb == args.mb and not args.no_prepare:
            for r in prepare_runs(corpus, mb, env, raylet, address):
                print("  " + r.line())
    print("\npeak RSS MB per process as the corpus grows: " + ", ".join(f"{m:g} MB" for m in sizes))
    for name, by in peaks.items():
        print(f"  {name:<45} " + " -> ".join(f"{by.get(m, float('nan')):,.0f}" for m in sizes))


def report(results: list[tuple[Run, set[str]]], truth: set[str], fixed: dict[int, float]) -> None:
    for run, removed in results:
        p, r = score(removed, truth)
        print(f"  {run.line()}  removed {len(removed):,} precision {p:.3f} recall {r:.3f}")
    by = {run.name: run for run, _ in results}
    one, two = by.get("ours ray 1 worker(s) (exact)"), by.get("ours ray 2 worker(s) (exact)")
    local = by.get("ours local (exact)")
    if one and two:
        print(
            f"  ray 2 workers / 1 worker, MB/s: {one.wall / two.wall:.2f}x end to end, "
            f"{one.engine / max(two.engine, 1e-9):.2f}x in the engine (without the fixed cost "
            f"of a run: process start, joining the cluster; {fixed[1]:.1f} s / {fixed[2]:.1f} s "
            "for a 0.05 MB corpus)"
        )
    if one and local:
        print(
            f"  ray 1 worker / local, MB/s: {local.wall / one.wall:.2f}x end to end, "
            f"{local.engine / max(one.engine, 1e-9):.2f}x in the engine"
        )
    dt = by.get("datatrove (1 task)")
    if dt and local:
        print(
            f"  ours local / datatrove, MB/s per core: {dt.wall / local.wall:.2f}x; "
            f"MB per CPU-s: {dt.cpu / local.cpu:.2f}x"
        )


if __name__ == "__main__":
    main()
