"""Issue 16 finding 9: `ambiscope demo` (and `sample`) progress in a redirected log.

A `\\r` redraw is right on a terminal and wrong in a log file, where every redraw piles
onto one line; redirected, the printer writes one plain line per tenth of the work.
"""

from __future__ import annotations

import io

import pytest

from ambiscope.core.scaling.loop import RunProgress
from ambiscope.tui.cli.options import progress_printer


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _feed(total: int) -> None:
    show = progress_printer()
    for done in range(total + 1):
        show(RunProgress(done, total, 0, 1.0 + done, None))


def test_redirected_progress_is_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    _feed(40)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    # 0/40, then each tenth: 4/40, 8/40, ..., 40/40
    assert [line.split()[1] for line in lines] == [f"{4 * i}/40" for i in range(11)]
    assert lines[-1].startswith("[" + "#" * 24 + "]")


def test_terminal_progress_redraws_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    _feed(3)
    out = terminal.getvalue()
    assert out.startswith("\r[") and out.endswith(
        "3/3 clips   0.75 clips/s  ETA     0s  failed 0\n"
    )
    assert out.count("\n") == 1  # one line, redrawn
