"""Which file system holds a path, read from the kernel's mount table.

A workspace is SQLite in WAL mode: its lock state lives in a shared-memory file (`-shm`)
that only processes on one host share, and network file systems (NFS, SMB, SSHFS, ...)
do not honour the POSIX locks SQLite relies on, so two machines writing one workspace
through such a mount corrupt it without an error. `Workspace.open` therefore asks
`network_filesystem()` before it opens a file for writing and refuses unless this
process allows it: `--allow-network-fs` on the command line or the worker, which set
`$AMBISCOPE_ALLOW_NETWORK_FS=1` for this process and every process it starts (the
worker the TUI spawns, the app `ambiscope serve` runs).

The lookup itself is a pure function of a path and the mount table's text
(`filesystem_of`), so tests feed it real `/proc/self/mountinfo` lines. The live table is
`$AMBISCOPE_MOUNTINFO` when set (a file in mountinfo or /proc/mounts format: how tests
put a workspace "on NFS" for a whole command), else /proc/self/mountinfo, else
/proc/mounts. Where none can be read (not Linux) nothing is refused: this is a guard
against an easy mistake, not a promise.
"""

from __future__ import annotations

import os
import posixpath
import re
from typing import NamedTuple

ALLOW_ENV = "AMBISCOPE_ALLOW_NETWORK_FS"
"""Set to 1 to write workspaces on network file systems (what --allow-network-fs sets)."""

MOUNTINFO_ENV = "AMBISCOPE_MOUNTINFO"
"""A mount table file to read instead of the kernel's (tests; mountinfo or mounts format)."""

MOUNT_TABLES = ("/proc/self/mountinfo", "/proc/mounts")

NETWORK_FSTYPES = frozenset(
    {
        # file servers
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "coda", "9p", "davfs",
        # cluster and parallel file systems, mounted by many hosts at once
        "ceph", "glusterfs", "lustre", "gpfs", "beegfs", "orangefs", "pvfs2", "gfs2", "ocfs2",
        # the same over FUSE (the kernel names them fuse.<subtype>)
        "sshfs", "fuse.sshfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.goofys", "fuse.rclone",
        "fuse.davfs2", "fuse.glusterfs", "fuse.ceph-fuse", "fuse.juicefs", "fuse.mfs",
        "fuse.lizardfs", "fuse.blobfuse", "fuse.blobfuse2", "fuse.cvmfs",
    }
)  # fmt: skip
"""File system types whose locking or shared memory does not hold across hosts."""

_ESCAPE = re.compile(r"\\([0-7]{3})")


class Mount(NamedTuple):
    """One line of the mount table: what is mounted where."""

    fstype: str
    mount_point: str


def _unescape(field: str) -> str:
    r"""The kernel writes space, tab, newline and backslash in paths as \040 \011 \012 \134."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mount_table(text: str) -> list[Mount]:
    """The mounts in `text`, in table order (a later mount on the same point hides earlier).

    Reads both formats: /proc/self/mountinfo (`id parent dev root MOUNT opts [tags] - TYPE
    source ...`) and /proc/mounts (`source MOUNT TYPE opts 0 0`). A mountinfo line has a
    lone `-` after its optional tags; a mounts line never does, as its fields hold no
    lone `-` in those places (a mount point starts with `/`).
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" in fields[6:]:
            sep = fields.index("-", 6)
            if sep + 1 < len(fields):
                mounts.append(Mount(fields[sep + 1], _unescape(fields[4])))
        elif len(fields) >= 3:
            mounts.append(Mount(fields[2], _unescape(fields[1])))
    return mounts


def _under(path: str, mount_point: str) -> bool:
    if mount_point == "/":
        return path.startswith("/")
    return path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def filesystem_of(path: str | os.PathLike[str], table: str) -> Mount | None:
    """The mount holding absolute `path` according to mount table text `table`.

    The longest mount point that contains the path wins (`/data/nfs` over `/data` over
    `/`), a later line over an earlier one on the same point. `path` is taken as given
    (pass a real path: `network_filesystem` resolves symlinks first); None when no mount
    point contains it.
    """
    target = posixpath.normpath(os.fspath(path))
    best: Mount | None = None
    for mount in parse_mount_table(table):
        point = posixpath.normpath(mount.mount_point)
        if _under(target, point) and (best is None or len(point) >= len(best.mount_point)):
            best = Mount(mount.fstype, point)
    return best


def read_mount_table() -> str | None:
    """The live mount table's text ($AMBISCOPE_MOUNTINFO, else /proc), None if unreadable."""
    override = os.environ.get(MOUNTINFO_ENV)
    for name in (override,) if override else MOUNT_TABLES:
        try:
            with open(name, "rb") as handle:
                return os.fsdecode(handle.read())  # paths as os.path.realpath spells them
        except OSError:
            continue
    return None


def network_filesystem(path: str | os.PathLike[str], table: str | None = None) -> Mount | None:
    """The network mount holding `path` (symlinks resolved), else None.

    `table` is mount table text; default: the live table (`read_mount_table`). A path
    that does not exist yet is looked up by the folders it would be created in.
    """
    if table is None:
        table = read_mount_table()
        if table is None:
            return None
    mount = filesystem_of(os.path.realpath(path), table)
    return mount if mount is not None and mount.fstype in NETWORK_FSTYPES else None


def network_fs_allowed() -> bool:
    """Whether this process may write workspaces on network file systems ($ALLOW_ENV)."""
    return os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def allow_network_fs() -> None:
    """Allow writing on network file systems in this process and the ones it starts.

    An environment variable rather than a module flag, so the permission given once on
    the command line reaches every `Workspace.open` without being passed down, and the
    detached worker the TUI spawns inherits it with the rest of the environment.
    """
    os.environ[ALLOW_ENV] = "1"
