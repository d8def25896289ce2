"""Run a command's independent tasks here or on a Ray cluster; keep every result as it lands; resume.

Every long command (``sweep``, ``demo``, ``domain-shift``, ``mcu-bench``, ``shrink``) cuts its work
into :class:`Task` objects (one method at one knob, one method on one target for a batch of
samples, ...) and runs them through :func:`open_runner`:

* ``kind="local"`` (the default): ``workers == 1`` runs the tasks one after the other in this
  process; more workers are ``spawn``-ed processes (a fresh interpreter: torch's thread pools are
  not fork-safe) that receive the shared objects (model, data) once each. A pool whose worker
  died is rebuilt and the unfinished tasks resubmitted (``retries`` times).
* ``kind="ray"``: tasks are Ray tasks (``ray_address``: an existing cluster; none: a local Ray
  instance with ``workers`` CPUs, or the one this process already started). The shared objects
  are put in Ray's object store once and deserialized once per worker process. A task whose
  worker died is retried by Ray (``max_retries=retries``). A task that needs an MCU toolchain
  checks it on its node first: :class:`NodeSetupError` names the node and the Debian packages.
  A task that writes files (``Task.workspace``) writes them in a temporary folder on its node;
  the folder comes back with the result and is unpacked into the same place of the run folder
  as a local run writes it.

:meth:`TaskRunner.run` takes the tasks that can start and, optionally, ``then(task, result)``,
which returns the tasks a result enables: they are submitted as soon as it lands, so a run whose
tasks depend on others has no barrier between its stages (``mcu-bench``: a method's simulator
tasks start when its own operating point is chosen). The runner keeps one task more in flight than
there are workers (Ray: the cluster's CPUs when the run starts, over ``threads``) and holds the
others itself, so that ``priority(task)`` picks which ready task starts next, highest first, when a
worker frees (``mcu-bench``: the tasks that others wait for, then the longest simulator tasks: no
long task left alone at the end of the run); without it, the order they were given.

The task function is ``fn(shared, *args)`` (plus ``workspace=PATH`` when the task has one): a
module-level function, the same one whichever executor runs it, with ``threads`` torch threads.
So every executor computes the same results; only wall times differ.

Results are persisted one file per task in ``RUN_DIR/tasks`` (atomic writes) as they land, next
to a ``manifest.json`` of the run's settings (:func:`unitprune.settings_manifest.check_manifest`). With
``resume`` a run continues from the finished tasks, and a folder made with other settings is
refused; without it, earlier task results in that folder are discarded.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import pickle
import re
import shutil
import socket
import tarfile
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from tqdm.auto import tqdm

from ..settings_manifest import check_manifest, write_atomic

logger = logging.getLogger(__name__)

__all__ = ["ExecutorConfig", "Task", "TaskRunner", "open_runner", "executor_session", "NodeSetupError",
           "RunFolderError", "EXECUTORS", "TASKS_DIR", "fingerprint"]

#: The executors :class:`ExecutorConfig` knows.
EXECUTORS = ("local", "ray")
#: Folder of a run that holds the task results and their manifest.
TASKS_DIR = "tasks"
_FORMAT = 1
_KEY = re.compile(r"^[A-Za-z0-9_.+=-]+$")


class RunFolderError(ValueError):
    """The task folder of a run cannot be used (other settings, not ours, nothing to resume)."""


try:  # a node without a toolchain is the same error as this machine without it (callers catch ToolMissing)
    from ..mcu.targets import ToolMissing as _ToolMissing
except ImportError:  # pragma: no cover - the targets package is part of unitprune
    _ToolMissing = RuntimeError


class NodeSetupError(_ToolMissing):
    """A task's node lacks a tool the task needs (names the node and the Debian packages)."""


@dataclass(frozen=True)
class ExecutorConfig:
    """Where and how the tasks of a command run (module docstring).

    Attributes:
        kind: ``local`` or ``ray``.
        workers: local worker processes (1: in this process); for a local Ray instance its CPUs.
        ray_address: address of a running Ray cluster (``ray start --head`` prints it; ``auto``
            finds the one on this machine); None: a local instance.
        resume: continue the run in the folder from its finished tasks.
        retries: times a task whose worker died is run again.
        threads: torch threads per task.
        progress: one progress bar for the whole run.
    """

    kind: str = "local"
    workers: int = 1
    ray_address: str | None = None
    resume: bool = False
    retries: int = 3
    threads: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.kind!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.retries < 0 or self.threads < 1:
            raise ValueError(f"retries must be >= 0 and threads >= 1, got {self.retries} and {self.threads}")
        if self.ray_address is not None and self.kind != "ray":
            raise ValueError("--ray-address needs --executor ray")

    def describe(self) -> dict:
        """What a results document records about the executor (not a setting of the results)."""
        return {"kind": self.kind, "workers": self.workers, "ray_address": self.ray_address, "resume": self.resume}


@dataclass(frozen=True)
class Task:
    """One unit of work.

    Attributes:
        key: unique within a run, letters, digits and ``_.+=-`` (it names the result's file).
        fn: ``fn(shared, *args)`` returning a picklable result; a module-level function.
        args: the task's own arguments (small; the big shared objects go in ``shared``).
        workspace: a folder of the run folder the task writes files into, passed as
            ``workspace=PATH``; it is emptied before the task runs unless ``keep_workspace``.
        keep_workspace: the task reuses what an earlier run left there (e.g. a trained checkpoint).
        tools: MCU targets whose toolchain the task's node must have (checked before it runs).
    """

    key: str
    fn: Callable[..., Any]
    args: tuple = ()
    workspace: str | None = None
    keep_workspace: bool = False
    tools: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise ValueError(f"task key {self.key!r}: use letters, digits and _.+=- only")


def fingerprint(*objects) -> str:
    """A SHA-256 of tensors, modules (their state_dict), datasets (their tensors) and JSON-like values:
    what a manifest records so that a run folder is never resumed on another model or data."""
    import hashlib
    import json

    digest = hashlib.sha256()

    def add(value) -> None:
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.numpy().tobytes() if tensor.dtype != torch.bfloat16 else tensor.float().numpy().tobytes())
        elif isinstance(value, torch.nn.Module):
            for name, tensor in value.state_dict().items():
                digest.update(name.encode())
                add(tensor)
        elif hasattr(value, "tensors"):  # TensorDataset
            for tensor in value.tensors:
                add(tensor)
        elif isinstance(value, (list, tuple)):
            for item in value:
                add(item)
        else:
            digest.update(json.dumps(value, sort_keys=True, default=str).encode())

    for item in objects:
        add(item)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------
# The task folder of a run
# ----------------------------------------------------------------------------------------------

class _TaskStore:
    """``RUN_DIR/tasks``: ``manifest.json`` (the settings) and one ``KEY.pkl`` per finished task."""

    def __init__(self, run_dir: Path, settings: dict, resume: bool):
        self.run_dir = Path(run_dir)
        self.folder = self.run_dir / TASKS_DIR
        manifest = self.folder / "manifest.json"
        if manifest.is_file():
            if resume:
                check_manifest(manifest, settings, _FORMAT, RunFolderError, f"the run folder {self.run_dir}",
                               "Resume it with the settings it was made with, or choose another run folder.")
            else:
                self._clear()
        elif self.folder.exists() and any(self.folder.iterdir()):
            raise RunFolderError(f"{self.folder} holds files but no manifest.json: not task results of unitprune; "
                                 "nothing there is touched. Choose another run folder.")
        elif resume:
            logger.warning("--resume: %s holds no earlier run; starting a new one", self.run_dir)
        self.folder.mkdir(parents=True, exist_ok=True)
        if not manifest.is_file():
            import json

            write_atomic(manifest, json.dumps({"format": _FORMAT, "settings": settings}, indent=2) + "\n")

    def _clear(self) -> None:
        for path in self.folder.glob("*.pkl"):
            path.unlink()
        (self.folder / "manifest.json").unlink()

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.pkl"

    def load(self, key: str) -> tuple[bool, Any]:
        path = self.path(key)
        if not path.is_file():
            return False, None
        with path.open("rb") as file:
            return True, pickle.load(file)  # our own run folder, written by save()

    def save(self, key: str, value: Any) -> None:
        write_atomic(self.path(key), pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


# ----------------------------------------------------------------------------------------------
# What runs on a worker (any executor)
# ----------------------------------------------------------------------------------------------

@contextmanager
def _threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_node(tools: tuple[str, ...]) -> None:
    if not tools:
        return
    from ..mcu import targets

    for target in tools:
        try:
            targets.check_tools(target)
        except targets.ToolMissing as exc:
            raise NodeSetupError(f"node {socket.gethostname()} ({_node_ip()}) cannot run {target} tasks: {exc} "
                                 "(on that node: `make mcu-tools`)") from None


def _node_ip() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001  (not in a Ray worker)
        return socket.gethostbyname(socket.gethostname())


def _run_task(shared, fn, args, threads: int, tools: tuple[str, ...], workspace: Path | None):
    _check_node(tools)
    with _threads(threads):
        if workspace is None:
            return fn(shared, *args)
        return fn(shared, *args, workspace=workspace)


def _next(todo: deque, priority: Callable[[Task], Any] | None) -> Task:
    """Take the ready task that starts next from ``todo`` (:meth:`TaskRunner.run`)."""
    if priority is None or len(todo) == 1:
        return todo.popleft()
    best = 0
    best_value = priority(todo[0])
    for index in range(1, len(todo)):
        value = priority(todo[index])
        if value > best_value:
            best, best_value = index, value
    task = todo[best]
    del todo[best]
    return task


def _pack(folder: Path) -> bytes:
    """A task's workspace as an uncompressed tar: the firmware builds of a simulator task are a few MB,
    which gzip would take a second of the task's CPU to compress; shipped, they cost less."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buffer.getvalue()


def _unpack(data: bytes, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        archive.extractall(folder, filter="data")


_WORKER_SHARED: dict[str, Any] = {}  # per worker process: the shared objects of the current run


def _init_local_worker(shared) -> None:
    _WORKER_SHARED.clear()
    _WORKER_SHARED["local"] = shared


def _local_worker_task(fn, args, threads, tools, workspace):
    try:
        return _run_task(_WORKER_SHARED["local"], fn, args, threads, tools, workspace)
    except Exception as error:  # noqa: BLE001
        raise _picklable(error) from None


def _picklable(error: Exception) -> Exception:
    """``error``, or a RuntimeError naming its type and message when it cannot cross back to the
    parent process (an exception whose pickle does not load there would break the whole pool and
    read as a dead worker)."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(error).__module__}.{type(error).__name__}: {error}")


def _ray_worker_task(shared_box, fn, args, threads, tools, seed_files: bytes | None, wants_workspace: bool):
    """A Ray task: the shared objects (deserialized once per worker), a node-local workspace."""
    import ray

    ref = shared_box[0]
    if _WORKER_SHARED.get("ray_ref") != ref.hex():
        _WORKER_SHARED.clear()
        _WORKER_SHARED["ray"] = ray.get(ref)
        _WORKER_SHARED["ray_ref"] = ref.hex()
    shared = _WORKER_SHARED["ray"]
    if not wants_workspace:
        return _run_task(shared, fn, args, threads, tools, None), None
    with tempfile.TemporaryDirectory(prefix="unitprune-task-") as temporary:
        workspace = Path(temporary) / "workspace"
        workspace.mkdir()
        if seed_files is not None:
            _unpack(seed_files, workspace)
        result = _run_task(shared, fn, args, threads, tools, workspace)
        return result, _pack(workspace)


# ----------------------------------------------------------------------------------------------
# The runner
# ----------------------------------------------------------------------------------------------

@dataclass
class TaskRunner:
    """Runs lists of tasks with one executor, one progress bar and one task folder (see :func:`open_runner`)."""

    config: ExecutorConfig
    shared: Any
    run_dir: Path | None
    store: _TaskStore | None
    bar: Any
    ran: list[str] = field(default_factory=list)  # keys run in this session (not loaded from the folder)
    _pool: Any = None
    _ray_shared: Any = None
    _ray_started: bool = False
    _keys: set[str] = field(default_factory=set)  # every task key of this run so far

    def run(self, tasks: list[Task], then: Callable[[Task, Any], list[Task]] | None = None,
            priority: Callable[[Task], Any] | None = None) -> dict[str, Any]:
        """Run ``tasks`` (those not finished in the task folder); return ``{key: result}`` in the order
        the tasks were given.

        ``then(task, result)``, called in this process as each task's result is in (landed, or
        loaded from the task folder), returns further tasks (possibly none): they are submitted at
        once, while the others still run, and run in this same call (their results are returned
        too). So a task that depends on others is started as soon as those are in, with no barrier
        between stages of a run.

        ``priority(task)`` (any comparable value, asked whenever a task is to start, so it may
        depend on the results landed so far): the ready task with the highest starts next; ties,
        and every task without ``priority``, in the order they were given or returned by ``then``.
        The order changes wall times only: every task computes the same result wherever and
        whenever it runs."""
        results: dict[str, Any] = {}
        order: list[str] = []
        todo: deque[Task] = deque()
        self._admit(tasks, then, results, order, todo)
        if self.config.kind == "ray":
            self._run_ray(todo, then, priority, results, order)
        elif self.config.workers > 1 and len(todo) + (then is not None) > 1:
            self._run_pool(todo, then, priority, results, order)
        else:
            while todo:
                task = _next(todo, priority)
                value = _run_task(self.shared, task.fn, task.args, self.config.threads, task.tools,
                                  self._local_workspace(task))
                self._landed(task, value, then, results, order, todo)
        return {key: results[key] for key in order}

    def _admit(self, tasks: list[Task], then, results: dict, order: list[str], todo: deque) -> None:
        """Queue ``tasks`` in ``todo``; those finished in the task folder are loaded instead (and
        their ``then`` followed)."""
        pending = deque(tasks)
        loaded = 0
        while pending:
            task = pending.popleft()
            if task.key in self._keys:
                raise ValueError(f"task key {task.key!r} repeats")
            if task.workspace is not None and self.run_dir is None:
                raise ValueError(f"task {task.key} writes files (workspace) but the run has no folder")
            self._keys.add(task.key)
            order.append(task.key)
            self.bar.total = (self.bar.total or 0) + 1
            found, value = self.store.load(task.key) if self.store else (False, None)
            if not found:
                todo.append(task)
                continue
            results[task.key] = value
            loaded += 1
            self.bar.update(1)
            if then is not None:
                pending.extend(then(task, value))
        self.bar.refresh()
        if loaded:
            logger.info("resume: %d tasks already done", loaded)

    def _landed(self, task: Task, value, then, results: dict, order: list[str], todo: deque) -> None:
        if self.store is not None:
            self.store.save(task.key, value)
        results[task.key] = value
        self.ran.append(task.key)
        self.bar.set_postfix_str(task.key, refresh=False)
        self.bar.update(1)
        if then is not None:
            self._admit(then(task, value), then, results, order, todo)

    def _local_workspace(self, task: Task) -> Path | None:
        if task.workspace is None:
            return None
        folder = self.run_dir / task.workspace
        if folder.exists() and not task.keep_workspace:
            shutil.rmtree(folder)  # what an unfinished attempt of this task left in our run folder
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _run_pool(self, todo: deque, then, priority, results: dict, order: list[str]) -> None:
        attempts = 0
        running: dict[Any, Task] = {}
        while todo or running:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(max_workers=self.config.workers,
                                                 mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_init_local_worker, initargs=(self.shared,))
            try:
                while todo and len(running) <= self.config.workers:  # one more than the workers: none waits
                    task = _next(todo, priority)
                    try:
                        future = self._pool.submit(_local_worker_task, task.fn, task.args, self.config.threads,
                                                   task.tools, self._local_workspace(task))
                    except BaseException:
                        todo.appendleft(task)  # a pool broken by a dead worker refuses it: run it later
                        raise
                    running[future] = task
                done, _ = wait(set(running), return_when=FIRST_COMPLETED)
                for future in done:
                    value = future.result()
                    task = running.pop(future)
                    self._landed(task, value, then, results, order, todo)
            except BrokenProcessPool:
                attempts += 1
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
                unfinished = [t for t in running.values() if t.key not in results]
                running = {}
                todo.extendleft(reversed(unfinished))
                if attempts > self.config.retries:
                    raise RuntimeError(f"a worker process died {attempts} times; unfinished tasks: "
                                       f"{', '.join(t.key for t in todo)}") from None
                logger.warning("a worker process died; running %d unfinished tasks again (attempt %d of %d)",
                               len(unfinished), attempts + 1, self.config.retries + 1)
            except BaseException:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
                raise

    def _run_ray(self, todo: deque, then, priority, results: dict, order: list[str]) -> None:
        import ray

        remote = ray.remote(max_retries=self.config.retries, num_cpus=self.config.threads)(_ray_worker_task)
        slots = max(1, int(ray.cluster_resources().get("CPU", self.config.workers)) // self.config.threads)
        running: dict[Any, Task] = {}
        try:
            while todo or running:
                while todo and len(running) <= slots:  # one more than the CPUs: none waits for this process
                    task = _next(todo, priority)
                    seed = None
                    if task.workspace is not None and task.keep_workspace and (self.run_dir / task.workspace).is_dir():
                        seed = _pack(self.run_dir / task.workspace)
                    ref = remote.remote([self._ray_shared], task.fn, task.args, self.config.threads, task.tools, seed,
                                        task.workspace is not None)
                    running[ref] = task
                done, _ = ray.wait(list(running), num_returns=1)
                for ref in done:
                    task = running.pop(ref)
                    try:
                        value, files = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        cause = getattr(exc, "cause", None)
                        raise (cause if isinstance(cause, BaseException) else exc) from None
                    if files is not None:
                        folder = self.run_dir / task.workspace
                        if folder.exists():
                            shutil.rmtree(folder)
                        _unpack(files, folder)
                    self._landed(task, value, then, results, order, todo)
        except BaseException:
            for ref in running:
                ray.cancel(ref, force=False)
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._ray_started:
            import ray

            ray.shutdown()
        self.bar.close()


@contextmanager
def open_runner(config: ExecutorConfig | None, shared: Any, *, run_dir: str | Path | None = None,
                settings: dict | None = None, desc: str = "tasks") -> Iterator[TaskRunner]:
    """A :class:`TaskRunner` for one run: its executor started (Ray: connected, ``shared`` put in
    the object store once), its task folder ``RUN_DIR/tasks`` checked against ``settings`` (none
    without ``run_dir``: nothing persisted, no resume), one progress bar; all closed on exit."""
    config = config or ExecutorConfig()
    run_dir = None if run_dir is None else Path(run_dir).absolute()
    if config.resume and run_dir is None:
        raise ValueError("resume needs a run folder")
    store = _TaskStore(run_dir, settings or {}, config.resume) if run_dir is not None else None
    bar = tqdm(total=0, desc=desc, disable=not config.progress)
    runner = TaskRunner(config=config, shared=shared, run_dir=run_dir, store=store, bar=bar)
    try:
        if config.kind == "ray":
            started = time.perf_counter()
            runner._ray_started = _start_ray(config)
            runner._ray_shared = _put_shared(shared)
            logger.info("ray: connected and shared objects put in %.2f s", time.perf_counter() - started)
        yield runner
    finally:
        runner.close()


@contextmanager
def executor_session(config: ExecutorConfig | None, warm: tuple[str, ...] = ()) -> Iterator[None]:
    """For a whole command (Ray; nothing for the local executor): connect to Ray (or start the local
    instance) now and start one task per CPU of the cluster that imports the modules ``warm``, not
    awaited, so that the worker processes boot (Python, Ray, torch, the task modules) while this
    process loads the model and the data. The runners opened inside use this connection and its
    workers; it is closed at the end if this call opened it."""
    if config is None or config.kind != "ray":
        yield
        return
    import ray

    started = _start_ray(config)
    try:
        cpus = int(ray.cluster_resources().get("CPU", config.workers))
        remote = ray.remote(num_cpus=config.threads, max_retries=0)(_warm_worker)
        for _ in range(max(1, cpus // config.threads)):
            remote.remote(tuple(warm))  # its result is not needed: the reference is dropped
        yield
    finally:
        if started:
            ray.shutdown()


def _warm_worker(modules: tuple[str, ...]) -> None:
    import importlib

    for name in modules:
        importlib.import_module(name)


def _start_ray(config: ExecutorConfig) -> bool:
    """Connect to (or start) Ray; True if this call started it (and so shuts it down)."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("--executor ray needs Ray: pip install 'unitprune[cluster]'") from None
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
    if config.ray_address:
        ray.init(address=config.ray_address, **options)
    else:
        ray.init(num_cpus=config.workers, include_dashboard=False, **options)
    return True


def _put_shared(shared):
    import ray

    return ray.put(shared)

