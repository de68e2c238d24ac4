"""A normal (non-editable) install works: one `ambiscope` namespace, data files shipped.

`make` installs the project editable, which hides packaging mistakes: a wheel that drops
generic top-level names (`core`, `db`) into site-packages, or leaves out the TUI's
stylesheet or the migrations, still passes every other test. Here the wheel is built from
a copy of the sources, installed into a fresh virtualenv that reuses this environment's
dependencies through a path file (no network), and used from outside the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("core", "db", "tui")


def _run(args: list[str | Path], cwd: Path, timeout: float = 300) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMBISCOPE_DB")}
    out = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, f"{args}: {out.stdout[-1500:]}\n{out.stderr[-1500:]}"
    return out.stdout


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {
        "ambiscope." + ".".join(init.parent.relative_to(ROOT).parts)
        for layer in LAYERS
        for init in (ROOT / layer).rglob("__init__.py")
    }
    assert listed == on_disk


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the ambiscope wheel installed; returns its bin/ folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for name in (*LAYERS, "pyproject.toml", "README.md"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, src / name)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            tmp / "dist",
            src,
        ],
        cwd=tmp,
    )
    (wheel,) = (tmp / "dist").glob("ambiscope-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp)
    python = venv / "bin" / "python"
    site = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=tmp
        ).strip()
    )
    # Reuse this environment's dependencies (and nothing of ambiscope: an editable
    # install's finder lives in a .pth file, and .pth files are not read from here).
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            wheel,
        ],
        cwd=tmp,
    )
    return venv / "bin"


def test_wheel_has_one_top_level_name_and_ships_data(installed: Path) -> None:
    (wheel,) = (installed.parent.parent / "dist").glob("ambiscope-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert zf.read(top_level).decode().split() == ["ambiscope"]
    roots = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert roots == {"ambiscope"}
    assert "ambiscope/tui/app.tcss" in names
    assert any(n.startswith("ambiscope/db/migrations/") and n.endswith(".sql") for n in names)


def test_installed_command_and_app_run_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    assert "Usage: ambiscope" in _run([installed / "ambiscope", "--help"], cwd=tmp_path)
    _run([installed / "ambiscope", "--db", tmp_path / "w.db", "init"], cwd=tmp_path)
    probe = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "import ambiscope.tui\n"
        "from ambiscope.tui.app import AmbiscopeApp\n"
        "from ambiscope.tui.settings import Settings\n"
        f"venv = Path({str(installed.parent)!r})\n"
        "here = Path(ambiscope.tui.__file__).resolve()\n"
        "assert venv in here.parents, here\n"
        "assert (here.parent / 'app.tcss').is_file()\n"
        "async def main():\n"
        "    app = AmbiscopeApp(Path('w.db'), settings=Settings(user='t'),\n"
        "                       poll_interval=0.0, save_user_settings=False)\n"
        "    async with app.run_test(size=(80, 24)) as pilot:\n"
        "        await pilot.pause(0.5)\n"
        "        assert app.stylesheet.rules, 'no stylesheet rules loaded'\n"
        "        print('started', len(app.stylesheet.rules))\n"
        "asyncio.run(main())\n"
    )
    assert "started" in _run([installed / "python", "-c", probe], cwd=tmp_path)
