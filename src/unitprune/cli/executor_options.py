"""The options every long command shares: where its tasks run (``--workers``, ``--executor``,
``--ray-address``) and ``--resume`` (:mod:`unitprune.experiments.executor`)."""

from __future__ import annotations

import argparse

from .user_errors import CLIError

__all__ = ["add_executor_options", "executor_config"]


def add_executor_options(parser: argparse.ArgumentParser, workers: bool = True, default_workers: int | None = None
                         ) -> None:
    """Add the executor options to ``parser`` (``workers=False``: the command already has --workers;
    ``default_workers`` None: min(2, CPUs))."""
    group = parser.add_argument_group("where the tasks run (docs/cluster.md)")
    if workers:
        shown = "min(2, CPUs)" if default_workers is None else str(default_workers)
        group.add_argument("--workers", type=int, metavar="N", default=default_workers,
                           help=f"local worker processes (same results as 1; default: {shown})")
    group.add_argument("--executor", choices=("local", "ray"), default="local",
                       help="local: --workers processes on this machine; ray: Ray tasks (pip install "
                            "'unitprune[cluster]'), on the cluster of --ray-address or a local Ray instance")
    group.add_argument("--ray-address", metavar="ADDR",
                       help="address of a running Ray cluster (host:6379 as `ray start --head` prints, or auto)")
    group.add_argument("--resume", action="store_true",
                       help="continue the interrupted run in the run folder: skip its finished tasks (refused if "
                            "the folder was made with other settings)")


def executor_config(args: argparse.Namespace, threads: int = 1):
    """The :class:`~unitprune.experiments.executor.ExecutorConfig` of the options."""
    from ..experiments.executor import ExecutorConfig

    from .commands import sweep_workers

    workers = sweep_workers(args)
    if args.ray_address and args.executor != "ray":
        raise CLIError("--ray-address needs --executor ray")
    if args.executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise CLIError("--executor ray needs Ray: pip install 'unitprune[cluster]'") from None
    return ExecutorConfig(kind=args.executor, workers=workers, ray_address=args.ray_address, resume=args.resume,
                          threads=threads, progress=not args.no_progress)
