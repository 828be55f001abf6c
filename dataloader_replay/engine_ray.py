"""The Ray engine's plumbing: connecting, bounded ordered task submission, one-line errors.

Data processing (`dedup`, `prepare`) runs on `local` (one process) or `ray`. On Ray the driver
streams the input in chunks, at most `workers` tasks run at once, and results are consumed in
input order, so the output does not depend on the number of workers or on scheduling.
`ray` is imported lazily: the local engine never needs it.

Failures: a user error raised inside a task (a bad line of the input) is re-raised in the
driver as the same error, one line; a worker process that dies is retried `max_retries` times
(tasks are deterministic, so a retry produces the same output), after which the run fails with
one line naming the stage. Test hook: if the file named by the environment variable
`PYTHIA_SUITE_RAY_KILL_FILE` exists in a worker's environment and holds a stage name, the first
worker to reach that stage claims the file and exits abruptly (a lost worker).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite_core import USER_ERRORS, ConfigError, DataError

log = logging.getLogger(__name__)
KILL_ENV = "PYTHIA_SUITE_RAY_KILL_FILE"
CONNECT_TIMEOUT_S = 10.0
START_TIMEOUT_S = 180.0  # a local Ray's start-up, on a loaded machine


@dataclass(frozen=True, kw_only=True)
class RayOptions:
    """Where and how wide: `address` None starts a local Ray on 127.0.0.1; "auto" joins a running
    one; "HOST:PORT" or "ray://HOST:PORT" a remote one. `workers`: tasks at once (default: the
    cluster's CPUs)."""

    address: str | None = None
    workers: int | None = None
    max_retries: int = 3

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers: must be a positive integer, got {self.workers}")
        if self.max_retries < 0:
            raise ConfigError(f"--retries: must be 0 or more, got {self.max_retries}")


def _check_reachable(address: str) -> None:
    """Fail in seconds, with one line, when nothing listens at `address`."""
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DataError(f"--address {address}: no Ray cluster answers ({reason})") from None


def _join(address: str, attempts: int = 3) -> None:
    """`ray.init(address)`, tried again after a connection error (a slow GCS)."""
    import ray

    for attempt in range(1, attempts + 1):
        try:
            ray.init(address=address, log_to_driver=False)
            return
        except ConnectionError:
            ray.shutdown()
            if attempt == attempts:
                raise
            time.sleep(2.0)


# Ray advertises the machine's address even when asked for 127.0.0.1
# (`ray._private.services.resolve_ip_for_localhost`) unless its cluster mode is off, which it
# reads once, when `ray` is first imported. A cluster this process starts for itself is on
# loopback only: its servers listen on 127.0.0.1 and its traffic stays there.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def loopback_only() -> None:
    """Keep a Ray started by this process on 127.0.0.1 (call before `ray` is imported)."""
    for name, value in LOOPBACK_ENV.items():
        os.environ.setdefault(name, value)


def connect(options: RayOptions) -> int:
    """Join (or start) the Ray cluster; return the number of tasks to run at once."""
    if options.address is None:
        loopback_only()
    import ray

    if options.address not in (None, "auto"):
        _check_reachable(options.address)
    if not ray.is_initialized():
        try:
            if options.address is None:
                start_local_ray(num_cpus=options.workers)
            else:
                # the GCS of a loaded or distant cluster can take longer than Ray's 5 s
                os.environ.setdefault("RAY_gcs_rpc_server_connect_timeout_s", "60")
                _join(options.address)
        except (ConnectionError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"--address {options.address}: {first}") from None
    cpus = int(ray.cluster_resources().get("CPU", 1))
    workers = options.workers or cpus
    if workers > cpus:
        raise ConfigError(f"--workers {workers}: the Ray cluster has {cpus} CPUs")
    return workers


def _raylet_died() -> bool:
    """Whether a raylet this process started has exited (a failed start: stop waiting)."""
    import psutil

    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if p.name() == "raylet" and p.status() == psutil.STATUS_ZOMBIE:
                return True
    return False


def start_local_ray(num_cpus: int | None) -> None:
    """Start a one-machine Ray cluster in this process (no dashboard) on 127.0.0.1 (see
    `loopback_only`, which must have run before `ray` was imported).

    On a loaded machine two of Ray's start-up waits can run out. The node must appear in the
    GCS within a fixed 30 s (`ray._private.node.Node` polls `ray._private.services.get_node`):
    `get_node` is wrapped while `ray.init` runs so that each poll keeps trying for up to
    `START_TIMEOUT_S` (ray is pinned to 2.60.0, which polls it by module attribute). The raylet
    gives its Python agents a fixed ~15 s to write their ports, which no setting raises: then
    the start fails, the processes it spawned are ended (by pid) and the error propagates, for
    the caller to retry.
    """
    import psutil
    import ray
    from ray._private import services

    original = services.get_node

    def patient_get_node(*args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                return original(*args, **kwargs)
            except RuntimeError:
                if time.monotonic() > deadline or _raylet_died():
                    raise
                time.sleep(0.5)

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    services.get_node = patient_get_node
    try:
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    except Exception:
        ray.shutdown()
        for p in psutil.Process().children(recursive=True):
            if p.pid not in before:
                with contextlib.suppress(psutil.Error):
                    p.kill()
        raise
    finally:
        services.get_node = original


def get(refs: Any, stage: str) -> Any:
    """`ray.get` that turns task failures into the suite's one-line errors."""
    import ray
    from ray.exceptions import RayError, RayTaskError

    try:
        return ray.get(refs)
    except RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, USER_ERRORS):
            try:
                error = type(cause)(str(cause))
            except TypeError:  # a constructor that takes other arguments
                error = DataError(str(cause))
            raise error from None
        raise DataError(f"ray: {stage} failed: {type(cause).__name__}: {cause}") from None
    except RayError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DataError(
            f"ray: {stage}: a worker was lost and its retries ran out "
            f"({type(exc).__name__}: {first})"
        ) from None


def bounded(refs: Iterable[Any], workers: int) -> Iterator[Any]:
    """Pass task handles through, waiting so that at most `workers` of them are unfinished."""
    import ray

    pending: list[Any] = []
    for ref in refs:
        first = ref[0] if isinstance(ref, Sequence) else ref
        pending.append(first)
        while len(pending) >= workers:
            _, pending = ray.wait(pending, num_returns=1)
        yield ref


def chaos(stage: str) -> None:
    """The lost-worker test hook (see the module docstring)."""
    path = os.environ.get(KILL_ENV)
    if not path or not os.path.exists(path):
        return
    try:
        if Path(path).read_text().strip() != stage:
            return
        os.rename(path, path + ".claimed")  # exactly one worker claims it
    except OSError:
        return
    os._exit(1)


def ordered(refs: Iterable[Any], workers: int, stage: str) -> Iterator[Any]:
    """Results of the tasks `refs` (submitted lazily) in submission order, at most `workers`
    submitted and not yet consumed at once."""
    from collections import deque

    queue: deque[Any] = deque()
    for ref in refs:
        queue.append(ref)
        if len(queue) >= workers:
            yield get(queue.popleft(), stage)
    while queue:
        yield get(queue.popleft(), stage)


def marker_path(output: Path) -> Path:
    """The marker a run keeps beside `output` while it works; it names the engine."""
    return output.with_name(f".{output.name}.running.json")


@contextlib.contextmanager
def claimed(output: Path, engine: str) -> Iterator[None]:
    """Hold the running marker of `output` while the block runs. A run that raises removes it
    (its temporaries go too); only a killed run leaves it, and then a resume with another
    engine is refused (its leftovers are that engine's to clear)."""
    import json

    marker = marker_path(output)
    if marker.exists():
        try:
            previous = json.loads(marker.read_text()).get("engine")
        except (ValueError, AttributeError):
            previous = None
        if previous != engine:
            raise ConfigError(
                f"{marker}: an interrupted run with --engine {previous} left this; resume "
                f"with --engine {previous} or remove the file"
            )
        log.info("%s: resuming an interrupted %s run (recomputing)", output, engine)
    output.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"engine": engine}) + "\n")
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)
