"""Network file system detection (db/mounts.py) and Workspace.open's guard (issue 14, item 6).

The mount tables are real /proc/self/mountinfo and /proc/mounts lines as the kernel
writes them; the workspace tests point $AMBISCOPE_MOUNTINFO at such a file declaring
the test's temporary folder an NFS mount.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ambiscope.db import Workspace, WorkspaceError
from ambiscope.db.mounts import (
    ALLOW_ENV,
    MOUNTINFO_ENV,
    Mount,
    allow_network_fs,
    filesystem_of,
    network_filesystem,
    network_fs_allowed,
    parse_mount_table,
    read_mount_table,
)

MOUNTINFO = """\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
25 24 0:23 / /dev/shm rw,nosuid,nodev shared:3 - tmpfs tmpfs rw,size=24683584k
60 27 8:17 / /data rw,relatime shared:40 - ext4 /dev/sdb1 rw
61 60 0:45 / /data/nfs rw,relatime shared:41 - nfs4 fs1:/export/data rw,vers=4.2,rsize=1048576
62 61 8:33 / /data/nfs/scratch rw,relatime shared:42 - ext4 /dev/sdc1 rw
63 27 0:50 / /mnt/smb rw,relatime - cifs //nas/share rw,vers=3.1.1,cache=strict
64 27 0:51 / /home/u/remote rw,nosuid,nodev,relatime shared:90 - fuse.sshfs u@h:/data rw
65 27 0:52 / /mnt/team\\040share rw,relatime - cifs //nas/team rw,vers=3.0
"""

CONTAINER = """\
350 300 0:60 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
351 350 0:61 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
360 350 0:45 /export/ws /workspace rw,relatime - nfs4 fs1:/export rw,vers=4.2
"""

PROC_MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
fs1:/export /mnt/nfs nfs rw,relatime,vers=3 0 0
tmpfs /tmp tmpfs rw,nosuid,nodev 0 0
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/home/u/study.db", ("ext4", "/")),
        ("/dev/shm/ws.db", ("tmpfs", "/dev/shm")),
        ("/data/ws.db", ("ext4", "/data")),
        ("/data/nfs/ws.db", ("nfs4", "/data/nfs")),
        ("/data/nfs", ("nfs4", "/data/nfs")),
        ("/data/nfs/scratch/ws.db", ("ext4", "/data/nfs/scratch")),  # nested: longest wins
        ("/data/nfsx/ws.db", ("ext4", "/data")),  # a prefix only at a folder boundary
        ("/mnt/smb/a/b/ws.db", ("cifs", "/mnt/smb")),
        ("/home/u/remote/ws.db", ("fuse.sshfs", "/home/u/remote")),
        ("/mnt/team share/ws.db", ("cifs", "/mnt/team share")),  # \040 in the table
        ("/mnt/team/ws.db", ("ext4", "/")),
        ("/data/./nfs/../nfs/ws.db", ("nfs4", "/data/nfs")),
    ],
)
def test_filesystem_of_mountinfo(path: str, expected: tuple[str, str]) -> None:
    assert filesystem_of(path, MOUNTINFO) == expected


def test_container_overlay_root_and_bind_mounted_nfs() -> None:
    assert filesystem_of("/app/ws.db", CONTAINER) == Mount("overlay", "/")
    assert filesystem_of("/workspace/ws.db", CONTAINER) == Mount("nfs4", "/workspace")


def test_proc_mounts_format_and_overmount() -> None:
    assert filesystem_of("/mnt/nfs/ws.db", PROC_MOUNTS) == Mount("nfs", "/mnt/nfs")
    assert filesystem_of("/tmp/ws.db", PROC_MOUNTS) == Mount("tmpfs", "/tmp")
    hidden = PROC_MOUNTS + "/dev/sdb1 /mnt/nfs ext4 rw 0 0\n"  # mounted over the NFS share
    assert filesystem_of("/mnt/nfs/ws.db", hidden) == Mount("ext4", "/mnt/nfs")


def test_parse_skips_blank_and_short_lines() -> None:
    assert parse_mount_table("\n\nrubbish\n" + PROC_MOUNTS)[0] == Mount("ext4", "/")
    assert filesystem_of("/x", "") is None


@pytest.mark.parametrize(
    ("path", "network"),
    [
        ("/data/nfs/ws.db", "nfs4"),
        ("/mnt/smb/ws.db", "cifs"),
        ("/home/u/remote/ws.db", "fuse.sshfs"),
        ("/mnt/team share/ws.db", "cifs"),
        ("/data/nfs/scratch/ws.db", None),
        ("/dev/shm/ws.db", None),
        ("/data/ws.db", None),
    ],
)
def test_network_filesystem_on_a_given_table(path: str, network: str | None) -> None:
    mount = network_filesystem(path, MOUNTINFO)
    assert (mount.fstype if mount else None) == network


def test_this_machine_repository_is_not_on_a_network_fs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real mount table: the checkout is on a local disk here."""
    monkeypatch.delenv(MOUNTINFO_ENV, raising=False)
    table = read_mount_table()
    if table is None:
        pytest.skip("no /proc mount table on this system")
    here = os.path.realpath(__file__)
    assert filesystem_of(here, table) is not None
    assert network_filesystem(here) is None


def test_symlink_is_resolved_before_lookup(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    table = f"1 0 0:1 / / rw - ext4 /dev/vda rw\n2 1 0:2 / {real} rw - nfs4 fs1:/x rw\n"
    assert network_filesystem(tmp_path / "link" / "new" / "ws.db", table) == Mount(
        "nfs4", str(real)
    )


# ------------------------------------------------------------- Workspace.open
@pytest.fixture
def on_nfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder the live mount table ($AMBISCOPE_MOUNTINFO) says is an NFS mount."""
    folder = tmp_path / "share"
    folder.mkdir()
    table = tmp_path / "mountinfo"
    escaped = os.path.realpath(folder).replace(" ", "\\040")
    table.write_text(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        f"61 27 0:45 / {escaped} rw,relatime - nfs4 fs1:/export rw,vers=4.2\n"
    )
    monkeypatch.setenv(MOUNTINFO_ENV, str(table))
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    return folder


def test_open_for_writing_on_nfs_is_refused_and_creates_nothing(on_nfs: Path) -> None:
    path = on_nfs / "new" / "ws.db"
    with pytest.raises(WorkspaceError) as err:
        Workspace.open(path, create=True)
    message = str(err.value)
    assert "\n" not in message
    assert "nfs4" in message and "--ray" in message and "--allow-network-fs" in message
    assert "WAL" in message and "locking" in message
    assert not (on_nfs / "new").exists()


def test_existing_workspace_on_nfs(on_nfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = on_nfs / "ws.db"
    Workspace.open(path, create=True, allow_network_fs=True).close()
    with pytest.raises(WorkspaceError, match="network file system"):
        Workspace.open(path)
    with Workspace.open(path, readonly=True) as ws:  # reading stays allowed
        assert ws.readonly and ws.schema_version >= 1
    with Workspace.open(path, allow_network_fs=True) as ws:
        assert not ws.readonly
    monkeypatch.setenv(ALLOW_ENV, "1")
    Workspace.open(path).close()
    with pytest.raises(WorkspaceError, match="network file system"):
        Workspace.open(path, allow_network_fs=False)  # an explicit False wins over the env
    monkeypatch.setenv(ALLOW_ENV, "0")
    with pytest.raises(WorkspaceError, match="network file system"):
        Workspace.open(path)


def test_local_folder_beside_the_share_opens(on_nfs: Path) -> None:
    Workspace.open(on_nfs.parent / "local.db", create=True).close()


def test_allow_network_fs_sets_the_inherited_permission(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_ENV, "0")  # restored by monkeypatch after the test
    assert not network_fs_allowed()
    allow_network_fs()
    assert network_fs_allowed() and os.environ[ALLOW_ENV] == "1"
