"""The detail pane: one clip's transcript, votes, distributions, waveform and candidates.

Everything is drawn as one width-aware Rich renderable (`DetailRenderable`), so the
aligned bars, the braille waveform and the candidate lines re-flow to the pane width when
the terminal is resized, and the widget's height follows its content inside a scrolling
container. The data comes from a worker (`ambiscope.tui.data.load_detail`); this module only draws.

One unit and one scale on screen: entropies are normalised (0-1, the table's `H`), and
every block of bars shares one bar width. Each label row starts with the number key that
votes for it; in a short pane (80x24) the bars and that legend come first and the
waveform and candidates move below the fold (`DetailRenderable`). `DetailPane` is the
focusable scroll container the browser's Tab cycle reaches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widget import Widget

from ambiscope.db import VoteRow
from ambiscope.tui.data import ClipDetail, Waveform, vote_counts, votes_summary
from ambiscope.tui.widgets.clip_table import norm_entropy

EIGHTHS = " ▏▎▍▌▋▊▉█"
BRAILLE_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
KIND_TITLES = {
    "human": "human",
    "actor": "actor (self-report)",
    "review": "review (re-annotation)",
    "synthetic": "synthetic",
    "self": "yours",
}
VOTE_KEY_W = 2  # "1 " before a label row
NUMBER_W = 5  # " 0.25" after a bar
MIN_COL_W = 8 + NUMBER_W + 1  # a column's bar never gets narrower than 8 cells


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


def short(value: float | None) -> str:
    """`.61`, `1.00`, `–`: two decimals without the leading zero, for compact footers."""
    text = num(value, ".2f")
    return text[1:] if text.startswith("0.") else text


def weight_text(weight: float) -> str:
    """A vote count or weight without noise: 9, 0.5, 1.33."""
    return f"{round(weight, 2):g}"


def vote_count_text(n_votes: float, n_raters: int) -> str:
    """`9 votes`, with the raters when they differ from the votes (an anonymous weighted
    tally such as CREMA-D's is one stored rater, so its rater count says nothing)."""
    text = f"{weight_text(n_votes)} votes"
    if n_raters > 1 and n_raters != round(n_votes):
        text += f" · {n_raters} raters"
    return text


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


@dataclass(frozen=True)
class BarLayout:
    """One bar geometry for every block of a detail, so a 0.50 bar is never drawn longer
    than a 1.00 bar when the strategy columns wrap onto a second block."""

    key_w: int  # "1 " before a label: the key that votes for it
    label_w: int
    col_w: int
    bar_w: int
    per_block: int

    @classmethod
    def fit(cls, width: int, labels: Sequence[str], n_cols: int, vote_keys: bool) -> BarLayout:
        key_w = VOTE_KEY_W if vote_keys else 0
        label_w = min(max((len(x) for x in labels), default=1), 10)
        avail = width - key_w - label_w - 1
        per_block = max(1, min(n_cols, avail // MIN_COL_W))
        col_w = max(avail // per_block, MIN_COL_W)
        return cls(key_w, label_w, col_w, col_w - NUMBER_W - 1, per_block)


class DetailRenderable:
    """Lays out a ClipDetail for the console width it is given.

    With `fit_height` (the pane's visible height) too small for everything above the
    votes, the distributions come first in a compact form, so every label's bar and its
    vote key stay on screen; the waveform and the candidates yield their place and move
    below the fold, where scrolling reaches them.
    """

    def __init__(
        self,
        detail: ClipDetail | None,
        waveform: Waveform | None,
        message: str,
        styles: DetailStyles,
        vote_keys: bool = True,
        fit_height: int | None = None,
    ) -> None:
        self.detail = detail
        self.waveform = waveform
        self.message = message
        self.s = styles
        self.vote_keys = vote_keys
        self.fit_height = fit_height

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(options.max_width, 20)
        if self.detail is None:
            yield Text(self.message or "no clip selected", style=self.s.dim)
            return
        if self.message:
            yield Text(self.message, style=self.s.error)
        yield from self._arranged(width, console, options)

    def _arranged(self, width: int, console: Console, options: ConsoleOptions) -> list[Text]:
        header = list(self._header(width))
        wave = list(self._waveform(width))
        dist = list(self._distributions(width))
        votes, candidates = list(self._votes(width)), list(self._candidates(width))
        fit = self.fit_height
        if fit is None or _height(console, options, [*header, *wave, *dist]) <= fit:
            return [*header, *wave, *dist, *votes, *candidates]
        return self._compact(width, fit, header, [*votes, *wave, *candidates], console, options)

    def _compact(
        self,
        width: int,
        fit: int,
        header: list[Text],
        below: list[Text],
        console: Console,
        options: ConsoleOptions,
    ) -> list[Text]:
        """Title, the first block of bars and the vote legend on screen whatever the
        height; then, as room allows, its footer, the section line and the header's other
        lines; whatever does not fit follows them, before `below`."""
        (bars, foot), *more = self._blocks(width, compact=True)
        intro = self._dist_intro(width)
        legend = self._legend(width, short=True)
        room = fit - _height(console, options, [header[0], *bars, *legend])
        optional = [foot, intro, *([line] for line in header[1:])]
        shown: list[list[Text]] = []
        for lines in optional:
            need = _height(console, options, lines)
            if need <= room:
                room -= need
                shown.append(lines)

        def pick(lines: list[Text], on_screen: bool) -> list[Text]:
            return lines if any(lines is s for s in shown) == on_screen else []

        extras = [line for lines in optional[2:] for line in pick(lines, True)]
        hidden = [line for lines in optional[2:] for line in pick(lines, False)]
        rest = [line for block_bars, block_foot in more for line in (*block_bars, *block_foot)]
        return [
            header[0],
            *extras,
            *pick(intro, True),
            *bars,
            *pick(foot, True),
            *legend,
            *pick(foot, False),
            *pick(intro, False),
            *hidden,
            *rest,
            *below,
        ]

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

    def _dist_columns(self, compact: bool) -> list[DistColumn]:
        d = self.detail
        assert d is not None
        cols = []
        h = d.human
        if h is not None and h.distribution is not None:
            level = h.ambiguity or "–"
            votes = vote_count_text(h.n_votes, h.n_raters)
            footer = (
                (f"{votes} H {short(h.norm_entropy)} {level}",)
                if compact
                else (votes, f"H {num(h.norm_entropy, '.2f')} {level}", "")
            )
            cols.append(DistColumn("human", h.distribution, footer, self.s.human))
        else:
            cols.append(DistColumn("human", None, ("no votes", "", ""), self.s.human))
        k = len(d.labels)
        for p in d.predictions:
            style = self.s.selected if p.strategy == d.strategy else self.s.model
            mark = "disagrees" if p.agree is False else ("agrees" if p.agree else "")
            h_norm = norm_entropy(p.entropy, k)
            if compact:
                title = f"{p.strategy} {'✗' if p.agree is False else '✓' if p.agree else ''}"
                footer = (f"JS {short(p.js)} BC {short(p.bc)} H {short(h_norm)}",)
            else:
                title = p.strategy
                footer = (f"JS {num(p.js)}", f"BC {num(p.bc)}", f"H {num(h_norm, '.2f')} {mark}")
            cols.append(DistColumn(title.rstrip(), p.distribution, footer, style))
        return cols

    def _distributions(self, width: int) -> list[Text]:
        """The section in full: title, bars and footers of every block, vote legend."""
        blocks = [line for bars, foot in self._blocks(width) for line in (*bars, *foot)]
        return [*self._dist_intro(width), *blocks, *self._legend(width, short=False)]

    def _dist_intro(self, width: int) -> list[Text]:
        d = self.detail
        assert d is not None
        run = d.run
        title = "distributions"
        if run is not None:
            title += f" · run {run.label} ({run.mode}, N={run.n}) · H = entropy 0-1"
        lines = [self._section(title, width)]
        if run is None:
            lines.append(
                Text(
                    "no model runs on this dataset yet: press r to queue a sampling job, "
                    "or run `ambiscope sample`",
                    style=self.s.dim,
                )
            )
        elif d.run_status is not None and d.run_status[0] == "failed":
            lines.append(Text(f"run failed on this clip: {d.run_status[1]}", style=self.s.error))
        elif not d.predictions:
            lines.append(Text("this run has no predictions for this clip yet", style=self.s.dim))
        return lines

    def _blocks(self, width: int, compact: bool = False) -> list[tuple[list[Text], list[Text]]]:
        """(bars with their column titles, footers) per block of columns; the human and
        the selected strategy come first (load_detail orders the strategies)."""
        d = self.detail
        assert d is not None
        cols = self._dist_columns(compact)
        layout = BarLayout.fit(width, d.labels, len(cols), self.vote_keys)
        blocks = (cols[i : i + layout.per_block] for i in range(0, len(cols), layout.per_block))
        return [(self._bars(block, layout), self._footers(block, layout)) for block in blocks]

    def _legend(self, width: int, short: bool) -> list[Text]:
        """`own vote: 1 neutral  2 happy …`; where that would wrap in a short pane, a
        one-line pointer to the numbers that start the label rows."""
        d = self.detail
        assert d is not None
        if not self.vote_keys:
            return []
        keys = "  ".join(f"{i + 1} {name}" for i, name in enumerate(d.labels[:9]))
        text = f"own vote: {keys}  0 clear"
        if short and len(text) > width:
            last = min(len(d.labels), 9)
            text = f"own vote: press the number before a label (1-{last}) · 0 clears"
        return [Text(text, style=self.s.dim)]

    def _bars(self, block: Sequence[DistColumn], layout: BarLayout) -> list[Text]:
        d = self.detail
        assert d is not None
        cw, bw = layout.col_w, layout.bar_w
        head = Text(" " * (layout.key_w + layout.label_w + 1))
        for col in block:
            head.append(col.title[: cw - 1].ljust(cw), style=col.style + Style(bold=True))
        lines = [head]
        for i, label in enumerate(d.labels):
            key = f"{i + 1}" if i < 9 else ""
            line = Text(key.ljust(layout.key_w)[: layout.key_w], no_wrap=True, overflow="crop")
            line.append(label[: layout.label_w].ljust(layout.label_w) + " ")
            for col in block:
                if col.dist is None:
                    line.append(" " * bw + "  –".ljust(NUMBER_W + 1), style=self.s.dim)
                    continue
                p = float(col.dist[i]) if i < len(col.dist) else float("nan")
                line.append(bar(p, bw), style=col.style)
                line.append(" " + prob(p).ljust(NUMBER_W), style=self.s.dim if p < 0.005 else "")
            lines.append(line)
        return lines

    def _footers(self, block: Sequence[DistColumn], layout: BarLayout) -> list[Text]:
        lines = []
        for row in range(len(block[0].footer)):
            pad = " " * (layout.key_w + layout.label_w + 1)
            foot = Text(pad, style=self.s.dim, no_wrap=True, overflow="crop")
            for col in block:
                text = col.footer[row] if row < len(col.footer) else ""
                foot.append(text[: layout.col_w - 1].ljust(layout.col_w), style=self.s.dim)
            if foot.plain.strip():
                lines.append(foot)
        return lines

    def _votes(self, width: int) -> Iterable[Text]:
        d = self.detail
        assert d is not None
        yield self._section("votes", width)
        groups = votes_summary(d.votes)
        if not groups:
            yield Text("no votes on this clip", style=self.s.dim)
        for kind, votes in groups.items():
            yield from self._vote_group(kind, votes)

    def _vote_group(self, kind: str, votes: Sequence[VoteRow]) -> Iterable[Text]:
        """`human · 9 votes: angry 6 · disgust 2 · neutral 1`, then who voted what when
        the votes come from several named raters (an anonymous weighted tally has none)."""
        counts = vote_counts(votes)
        total = sum(w for _, w in counts)
        line = Text(f"{KIND_TITLES.get(kind, kind)} · ", style=self.s.title)
        line.append(f"{weight_text(total)} vote{'s' if total != 1 else ''}: ")
        style = self.s.selected if kind == "self" else Style()
        line.append(" · ".join(f"{label} {weight_text(w)}" for label, w in counts), style=style)
        secondary = sorted({v.label for v in votes if v.rank > 0})
        if secondary:
            line.append(f"  (secondary: {', '.join(secondary)})", style=self.s.dim)
        yield line
        by_rater: dict[str, list[str]] = {}
        for v in votes:
            by_rater.setdefault(v.annotator, []).append(v.label if v.rank == 0 else f"{v.label}²")
        if len(by_rater) > 1:
            parts = [f"{rater} {'/'.join(labels)}" for rater, labels in by_rater.items()]
            yield Text(f"  {len(by_rater)} raters: " + " · ".join(parts), style=self.s.dim)

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


def _height(console: Console, options: ConsoleOptions, lines: Sequence[Text]) -> int:
    """Terminal rows the lines take at this width (long ones wrap); the widget's own
    height in `options` would pad every line to it."""
    free = options.reset_height()
    return sum(len(console.render_lines(line, free, pad=False)) for line in lines)


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
        pane = self.parent
        fit = pane.scrollable_content_region.height if isinstance(pane, DetailPane) else None
        return DetailRenderable(
            self.detail, self.waveform, self.message, self._styles(), fit_height=fit or None
        )


class DetailPane(VerticalScroll, can_focus=True):
    """The detail's scrolling pane: with focus, j/k (and the arrows, PgUp/PgDn,
    Home/End of a scroll container) scroll it instead of moving the table's cursor; a
    new height re-lays the detail, whose order depends on what fits (DetailRenderable)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "scroll_down", "scroll down", show=False),
        Binding("k", "scroll_up", "scroll up", show=False),
    ]

    def on_resize(self) -> None:
        for view in self.query(DetailView):
            view.refresh(layout=True)
