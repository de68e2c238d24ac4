"""The detail pane: one clip's transcript, votes, distributions, waveform and candidates.

Everything is drawn as one width-aware Rich renderable (`DetailRenderable`), so the
aligned bars, the braille waveform and the candidate lines re-flow to the pane width when
the terminal is resized, and the widget's height follows its content inside a scrolling
container. The data comes from a worker (`ambiscope.tui.data.load_detail`); this module only draws.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from ambiscope.tui.data import ClipDetail, Waveform, votes_summary

EIGHTHS = " ▏▎▍▌▋▊▉█"
BRAILLE_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
KIND_TITLES = {
    "human": "human",
    "actor": "actor (self-report)",
    "synthetic": "synthetic",
    "self": "yours",
}


def bar(p: float, width: int) -> str:
    """A horizontal bar of `width` cells for p in [0, 1], in eighth-cell steps."""
    p = 0.0 if not np.isfinite(p) else min(max(p, 0.0), 1.0)
    eighths = round(p * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (EIGHTHS[part] if part and full < width else "")
    return text.ljust(width)


def prob(p: float | None) -> str:
    if p is None or not np.isfinite(p):
        return "  – "
    return f"{p:4.2f}"[-4:] if p < 1 else "1.00"


def num(value: float | None, fmt: str = ".3f") -> str:
    return "–" if value is None or not np.isfinite(value) else format(value, fmt)


def rebin(envelope: np.ndarray, n: int) -> np.ndarray:
    """(m, 2) min/max envelope to (n, 2), keeping extremes (min of mins, max of maxs)."""
    m = envelope.shape[0]
    edges = np.linspace(0, m, n + 1).astype(int)
    out = np.zeros((n, 2), dtype=np.float32)
    for i in range(n):
        a, b = edges[i], max(edges[i + 1], edges[i] + 1)
        a = min(a, m - 1)
        out[i, 0] = envelope[a:b, 0].min()
        out[i, 1] = envelope[a:b, 1].max()
    return out


def braille_waveform(envelope: np.ndarray, width: int, height: int = 3) -> list[str]:
    """Draw a min/max envelope as `height` lines of braille, 2 x 4 dots per cell."""
    width = max(width, 1)
    env = rebin(envelope, width * 2)
    peak = float(np.abs(env).max()) or 1.0
    env = env / peak
    rows = height * 4
    cells = np.zeros((height, width), dtype=np.int64)
    top = np.clip(np.floor((1 - env[:, 1]) / 2 * (rows - 1)), 0, rows - 1).astype(int)
    bottom = np.clip(np.ceil((1 - env[:, 0]) / 2 * (rows - 1)), 0, rows - 1).astype(int)
    for x in range(width * 2):
        col, sub = divmod(x, 2)
        for r in range(top[x], bottom[x] + 1):
            line, dot = divmod(r, 4)
            cells[line, col] |= BRAILLE_BITS[sub][dot]
    return ["".join(chr(0x2800 + int(v)) for v in line) for line in cells]


@dataclass(frozen=True)
class DetailStyles:
    title: Style
    dim: Style
    section: Style
    human: Style
    model: Style
    selected: Style
    error: Style
    warn: Style
    good: Style
    wave: Style


@dataclass(frozen=True)
class DistColumn:
    title: str
    dist: np.ndarray | None
    footer: tuple[str, ...]
    style: Style


class DetailRenderable:
    """Lays out a ClipDetail for the console width it is given."""

    def __init__(
        self,
        detail: ClipDetail | None,
        waveform: Waveform | None,
        message: str,
        styles: DetailStyles,
        vote_keys: bool = True,
    ) -> None:
        self.detail = detail
        self.waveform = waveform
        self.message = message
        self.s = styles
        self.vote_keys = vote_keys

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(options.max_width, 20)
        if self.detail is None:
            yield Text(self.message or "no clip selected", style=self.s.dim)
            return
        if self.message:
            yield Text(self.message, style=self.s.error)
        yield from self._header(width)
        yield from self._waveform(width)
        yield from self._distributions(width)
        yield from self._votes(width)
        yield from self._candidates(width)

    # ------------------------------------------------------------------ parts
    def _section(self, title: str, width: int) -> Text:
        return Text(f"── {title} " + "─" * max(width - len(title) - 4, 0), style=self.s.section)

    def _header(self, width: int) -> Iterable[Text]:
        d = self.detail
        assert d is not None
        c = d.clip
        facts = [d.dataset.name, c.split or "no split"]
        if c.speaker:
            facts.append(f"{c.speaker}{' ' + c.gender if c.gender else ''}")
        if c.duration:
            facts.append(f"{c.duration:.2f} s")
        if c.intended_label:
            facts.append(f"intended {c.intended_label}")
        title = Text(c.key, style=self.s.title)
        title.append("  " + " · ".join(facts), style=self.s.dim)
        yield title
        if c.transcript:
            yield Text(f"“{c.transcript}”", style=Style(italic=True))
        audit = Text()
        audit.append("flags ", style=self.s.dim)
        audit.append(", ".join(d.flags) or "–", style=self.s.warn if d.flags else self.s.dim)
        audit.append("   tags ", style=self.s.dim)
        audit.append(", ".join(d.tags) or "–")
        yield audit
        if d.note:
            note = Text("note ", style=self.s.dim)
            note.append(d.note)
            yield note

    def _waveform(self, width: int) -> Iterable[Text]:
        w = self.waveform
        d = self.detail
        assert d is not None
        if w is None or w.clip_id != d.clip.id:
            yield Text("audio: loading waveform…", style=self.s.dim)
            return
        if w.envelope is None:
            yield Text(f"audio unavailable: {w.error}", style=self.s.error)
            return
        for line in braille_waveform(w.envelope, width, 3):
            yield Text(line, style=self.s.wave, no_wrap=True, overflow="crop")
        left, right = "0 s", f"{w.duration:.2f} s · {w.sample_rate} Hz"
        axis = Text(left + right.rjust(max(width - len(left), 0)), style=self.s.dim, no_wrap=True)
        yield axis
        for warning in w.warnings:
            yield Text(f"audio: {warning}", style=self.s.warn)

    def _dist_columns(self) -> list[DistColumn]:
        d = self.detail
        assert d is not None
        cols = []
        h = d.human
        if h is not None and h.distribution is not None:
            level = h.ambiguity or "–"
            cols.append(
                DistColumn(
                    "human",
                    h.distribution,
                    (f"n {h.n_raters} raters", f"H {num(h.norm_entropy, '.2f')} {level}", ""),
                    self.s.human,
                )
            )
        else:
            cols.append(DistColumn("human", None, ("no votes", "", ""), self.s.human))
        for p in d.predictions:
            style = self.s.selected if p.strategy == d.strategy else self.s.model
            mark = "disagrees" if p.agree is False else ("agrees" if p.agree else "")
            cols.append(
                DistColumn(
                    p.strategy,
                    p.distribution,
                    (f"JS {num(p.js)}", f"BC {num(p.bc)}", f"H {num(p.entropy, '.2f')} {mark}"),
                    style,
                )
            )
        return cols

    def _distributions(self, width: int) -> Iterable[Text]:
        d = self.detail
        assert d is not None
        run = d.run
        title = "distributions"
        if run is not None:
            title += f" · run {run.label} ({run.mode}, N={run.n})"
        yield self._section(title, width)
        if run is None:
            yield Text(
                "no model runs on this dataset yet: press r to queue a sampling job, "
                "or run `ambiscope sample`",
                style=self.s.dim,
            )
        elif d.run_status is not None and d.run_status[0] == "failed":
            yield Text(f"run failed on this clip: {d.run_status[1]}", style=self.s.error)
        elif not d.predictions:
            yield Text("this run has no predictions for this clip yet", style=self.s.dim)
        labels = d.labels
        lw = min(max(len(x) for x in labels), 10)
        cols = self._dist_columns()
        number = 5
        avail = width - lw - 1
        per_block = max(1, min(len(cols), avail // (8 + number + 1)))
        for start in range(0, len(cols), per_block):
            block = cols[start : start + per_block]
            cw = max(avail // len(block), 8 + number + 1)
            bw = cw - number - 1
            head = Text(" " * (lw + 1))
            for col in block:
                head.append(col.title[: cw - 1].ljust(cw), style=col.style + Style(bold=True))
            yield head
            for i, label in enumerate(labels):
                line = Text(label[:lw].ljust(lw) + " ", no_wrap=True, overflow="crop")
                for col in block:
                    if col.dist is None:
                        line.append(" " * bw + "  –".ljust(number + 1), style=self.s.dim)
                        continue
                    p = float(col.dist[i]) if i < len(col.dist) else float("nan")
                    line.append(bar(p, bw), style=col.style)
                    line.append(" " + prob(p).ljust(number), style=self.s.dim if p < 0.005 else "")
                yield line
            for row in range(3):
                foot = Text(" " * (lw + 1), style=self.s.dim, no_wrap=True, overflow="crop")
                for col in block:
                    foot.append(col.footer[row][: cw - 1].ljust(cw), style=self.s.dim)
                if foot.plain.strip():
                    yield foot
        if self.vote_keys:
            keys = "  ".join(f"{i + 1} {name}" for i, name in enumerate(labels[:9]))
            yield Text(f"own vote: {keys}  0 clear", style=self.s.dim)

    def _votes(self, width: int) -> Iterable[Text]:
        d = self.detail
        assert d is not None
        yield self._section(f"votes ({len({v.annotator_id for v in d.votes})} annotators)", width)
        groups = votes_summary(d.votes)
        if not groups:
            yield Text("no votes on this clip", style=self.s.dim)
        for kind, votes in groups.items():
            by_rater: dict[str, list[str]] = {}
            for v in votes:
                label = v.label if v.rank == 0 else f"{v.label}²"
                by_rater.setdefault(v.annotator, []).append(label)
            line = Text(f"{KIND_TITLES.get(kind, kind)} ({len(by_rater)}): ", style=self.s.title)
            parts = [f"{rater} {'+'.join(labels)}" for rater, labels in by_rater.items()]
            line.append(" · ".join(parts), style=self.s.selected if kind == "self" else "")
            yield line

    def _candidates(self, width: int) -> Iterable[Text]:
        d = self.detail
        assert d is not None
        if not d.samples:
            return
        n_invalid = sum(not s.valid for s in d.samples)
        yield self._section(f"candidates ({len(d.samples)}, {n_invalid} invalid)", width)
        for s in d.samples:
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(f"{s.idx:>2} ")
            if s.valid:
                line.append("✓ ", style=self.s.good)
                line.append(f"{(s.label or 'dist'):<9} ")
            else:
                line.append("✗ ", style=self.s.error)
                line.append(f"{'invalid':<9} ", style=self.s.error)
            lp = "" if s.logprob_norm is None else f"lp {s.logprob_norm:+.2f} "
            vs = "" if s.verifier_score is None else f"v {s.verifier_score:.2f} "
            line.append(lp + vs, style=self.s.dim)
            raw = " ".join((s.raw_text or "").split())
            line.append(raw)
            if not s.valid and s.error:
                line.append(f"  ({s.error})", style=self.s.error)
            yield line


class DetailView(Widget):
    """Shows the highlighted clip (see module docstring)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "detail--title",
        "detail--dim",
        "detail--section",
        "detail--human",
        "detail--model",
        "detail--selected",
        "detail--error",
        "detail--warn",
        "detail--good",
        "detail--wave",
    }

    DEFAULT_CSS = """
    DetailView { height: auto; padding: 0 1; }
    DetailView > .detail--title { text-style: bold; }
    DetailView > .detail--dim { color: $text-muted; }
    DetailView > .detail--section { color: $text-accent; }
    DetailView > .detail--human { color: $text-success; }
    DetailView > .detail--model { color: $text-primary; }
    DetailView > .detail--selected { color: $text-accent; }
    DetailView > .detail--error { color: $text-error; }
    DetailView > .detail--warn { color: $text-warning; }
    DetailView > .detail--good { color: $text-success; }
    DetailView > .detail--wave { color: $text-secondary; }
    """

    detail: reactive[ClipDetail | None] = reactive(None, layout=True)
    waveform: reactive[Waveform | None] = reactive(None, layout=True)
    message: reactive[str] = reactive("no clip selected", layout=True)

    def _styles(self) -> DetailStyles:
        def get(name: str) -> Style:
            return self.get_component_rich_style(f"detail--{name}", partial=True)

        return DetailStyles(*(get(n) for n in DetailStyles.__dataclass_fields__))

    def render(self) -> DetailRenderable:
        return DetailRenderable(self.detail, self.waveform, self.message, self._styles())


def label_keys(labels: Sequence[str]) -> str:
    return " ".join(f"{i + 1}:{x}" for i, x in enumerate(labels[:9]))
