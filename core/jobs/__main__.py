"""`python -m ambiscope.core.jobs --db PATH [options]`: run a worker without the front end.

This is what `ensure_worker` starts detached (the TUI, `enqueue --start-worker`); the
`ambiscope worker` command calls the same `run_worker` with the same options. argparse,
not click: core does not depend on the command-line framework.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ambiscope.core.jobs.kinds import JOB_MODULES_ENV
from ambiscope.core.jobs.policy import normalise_endpoint
from ambiscope.core.jobs.queue import DEFAULT_LEASE_S
from ambiscope.core.jobs.worker import WorkerConfig, run_worker
from ambiscope.db.errors import WorkspaceError
from ambiscope.db.mounts import ALLOW_ENV, allow_network_fs


def _endpoint(url: str) -> str:
    try:
        return normalise_endpoint(url)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ambiscope.core.jobs",
        description="Run background jobs of one workspace until stopped.",
    )
    parser.add_argument(
        "--db",
        default=os.environ.get("AMBISCOPE_DB") or "ambiscope.db",
        help="Workspace file (default: $AMBISCOPE_DB or ./ambiscope.db).",
    )
    parser.add_argument("--device", help="Device for every job, e.g. cuda:0.")
    parser.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="Run every job's model work on this Ray cluster (alone: a local instance).",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="Exit when nothing is queued or running (waits for jobs other workers hold).",
    )
    parser.add_argument("--max-jobs", type=int, help="Exit after this many jobs.")
    parser.add_argument("--lease", dest="lease_s", type=float, default=DEFAULT_LEASE_S)
    parser.add_argument("--poll", dest="poll_s", type=float, default=1.0)
    parser.add_argument("--idle-exit", dest="idle_exit_s", type=float)
    parser.add_argument("--unload-after", dest="unload_idle_s", type=float, default=300.0)
    parser.add_argument(
        "--import",
        dest="modules",
        action="append",
        default=[],
        metavar="MODULE",
        help=f"Import a module that registers job kinds (also ${JOB_MODULES_ENV}).",
    )
    parser.add_argument(
        "--allow-remote-code",
        action="store_true",
        help="Run jobs that ask for trust_remote_code (the model folder's own Python).",
    )
    parser.add_argument(
        "--allow-endpoint",
        dest="allow_endpoints",
        type=_endpoint,
        action="append",
        default=[],
        metavar="URL",
        help="Let jobs send requests to this base URL (repeatable).",
    )
    parser.add_argument(
        "--allow-key-env",
        dest="allow_key_envs",
        action="append",
        default=[],
        metavar="NAME",
        help="Let jobs send the value of this environment variable as an API key (repeatable).",
    )
    parser.add_argument(
        "--allow-dir",
        dest="allow_dirs",
        action="append",
        default=[],
        metavar="DIR",
        help="Let jobs read prompt files in this folder (the workspace's is always allowed).",
    )
    parser.add_argument(
        "--allow-network-fs",
        action="store_true",
        help="Write the workspace even on NFS/SMB/SSHFS (SQLite's locking breaks there: "
        f"only if one machine writes it; also ${ALLOW_ENV}=1).",
    )
    parser.add_argument("--heartbeat", dest="heartbeat_s", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--no-pid-check", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = vars(parse_args(argv))
    db = args.pop("db")
    if args.pop("allow_network_fs"):
        allow_network_fs()
    config = WorkerConfig(pid_check=not args.pop("no_pid_check"), **args)
    try:
        stats = run_worker(db, config)
    except WorkspaceError as exc:  # missing, foreign, on a network file system: one line
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"worker finished: {stats.summary()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
