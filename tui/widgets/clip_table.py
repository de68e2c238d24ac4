"""A virtual clip table: the Line API draws only visible rows, pages arrive from workers.

A DataTable holds every row as widgets-side data; at 150k clips that costs seconds and
hundreds of MB before the first paint. This table knows only the row count and the pages
it has been given: `render_line` draws a visible row if its page is cached and otherwise a
placeholder, asking the screen for the page with `PageNeeded`. The screen fetches pages in
thread workers (by OFFSET first, by clip id once the ordered id list is known) and hands
them back with `set_page`. A `generation` number ties pages to the query that asked for
them, so an answer to a superseded sort or filter is dropped.

The header line stays fixed at the top; clicking a header asks for a sort by it.
"""

from __future__ import annotations

import math
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ambiscope.core.browse.query import BrowseRow

MAX_CACHED_PAGES = 40
MAX_CACHED_STRIPS = 1000


@dataclass(frozen=True)
class Column:
    """A table column: `id` is also the BrowseQuery sort key."""

    id: str
    header: str
    width: int
    align: str = "<"
    flex: bool = False
    model: bool = False  # empty without a selected run + strategy


COLUMNS: tuple[Column, ...] = (
    Column("key", "key", 20),
    Column("dataset", "dataset", 9),
    Column("split", "split", 5),
    Column("majority", "human", 7),
    Column("entropy", "H", 4, ">"),
    Column("ambiguity", "amb", 4),
    Column("model", "model", 7, model=True),
    Column("model_entropy", "Hm", 4, ">", model=True),
    Column("js", "JS", 4, ">", model=True),
    Column("flags", "fl", 2),
    Column("tags", "tags", 5, flex=True),
    Column("vote", "own", 7),
)

AMBIGUITY_SHORT = {"low": "low", "medium": "med", "high": "high"}


def fmt_num(value: float | None, width: int = 4) -> str:
    """Compact numbers for narrow columns: .312, 1.24, 12.3."""
    if value is None:
        return ""
    text = f"{value:.3f}"
    if text.startswith("0."):
        text = text[1:]
    return text[:width].rstrip(".")


def norm_entropy(bits: float | None, n_labels: int | None) -> float | None:
    """A model entropy in bits as a share of its maximum log2 k, the unit of the human `H`
    column (0-1), so `H` and `Hm` compare directly; None when k is unknown."""
    if bits is None or not math.isfinite(bits) or n_labels is None or n_labels < 2:
        return None
    return bits / math.log2(n_labels)


def cell_text(column: Column, row: BrowseRow, n_labels: int | None = None) -> str:
    """The cell's text; `n_labels` (the row's dataset's label count) normalises `Hm`."""
    cid = column.id
    if cid == "key":
        return row.key
    if cid == "dataset":
        return row.dataset
    if cid == "split":
        return row.split or ""
    if cid == "majority":
        return row.majority or ""
    if cid == "entropy":
        return fmt_num(row.norm_entropy, column.width)
    if cid == "ambiguity":
        return AMBIGUITY_SHORT.get(row.ambiguity or "", "")
    if cid == "model":
        return row.model_label or ""
    if cid == "model_entropy":
        return fmt_num(norm_entropy(row.model_entropy, n_labels), column.width)
    if cid == "js":
        return fmt_num(row.js, column.width)
    if cid == "flags":
        names = (row.flags or "").split(",") if row.flags else []
        return "".join(n[:1] for n in names)
    if cid == "tags":
        return (row.tags or "").replace(",", " ")
    if cid == "vote":
        return row.own_vote or ""
    return ""


def fit(text: str, width: int, align: str) -> str:
    if len(text) > width:
        return text[: max(width - 1, 0)] + "…" if width > 1 else text[:width]
    return text.rjust(width) if align == ">" else text.ljust(width)


class ClipTable(ScrollView, can_focus=True):
    """The browser's clip table (see module docstring)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "clip-table--header",
        "clip-table--sorted",
        "clip-table--cursor",
        "clip-table--loading",
        "clip-table--disagree",
        "clip-table--agree",
        "clip-table--high",
        "clip-table--medium",
        "clip-table--low",
        "clip-table--flag",
        "clip-table--own",
        "clip-table--dim",
    }

    DEFAULT_CSS = """
    ClipTable {
        overflow-y: scroll;
        scrollbar-size-vertical: 1;
        scrollbar-size-horizontal: 1;
    }
    ClipTable > .clip-table--header { text-style: bold; background: $panel; }
    ClipTable > .clip-table--sorted { text-style: bold underline; background: $panel; }
    ClipTable > .clip-table--cursor { background: $block-cursor-blurred-background; }
    ClipTable:focus > .clip-table--cursor {
        background: $block-cursor-background; color: $block-cursor-foreground;
    }
    ClipTable > .clip-table--loading { color: $text-muted; }
    ClipTable > .clip-table--dim { color: $text-muted; }
    ClipTable > .clip-table--disagree { color: $text-error; }
    ClipTable > .clip-table--agree { color: $text-success; }
    ClipTable > .clip-table--high { color: $text-warning; }
    ClipTable > .clip-table--medium { color: $foreground; }
    ClipTable > .clip-table--low { color: $text-muted; }
    ClipTable > .clip-table--flag { color: $text-warning; text-style: bold; }
    ClipTable > .clip-table--own { color: $text-accent; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "up", show=False),
        Binding("down,j", "cursor(1)", "down", show=False),
        Binding("pageup", "page(-1)", "page up", show=False),
        Binding("pagedown", "page(1)", "page down", show=False),
        Binding("home", "jump(0)", "first", show=False),
        Binding("end", "jump(-1)", "last", show=False),
    ]

    cursor_row: reactive[int] = reactive(0, always_update=True, init=False)

    class PageNeeded(Message):
        def __init__(self, table: ClipTable, generation: int, page: int) -> None:
            super().__init__()
            self.table = table
            self.generation = generation
            self.page = page

    class CursorMoved(Message):
        """The clip under the cursor changed; `navigating` when keys or the mouse moved it
        (more moves may follow), not when new rows arrived under a still cursor."""

        def __init__(
            self, table: ClipTable, row: int, clip_id: int | None, navigating: bool = False
        ) -> None:
            super().__init__()
            self.table = table
            self.row = row
            self.clip_id = clip_id
            self.navigating = navigating

    class SortRequested(Message):
        def __init__(self, table: ClipTable, column: str) -> None:
            super().__init__()
            self.table = table
            self.column = column

    def __init__(
        self,
        page_size: int = 100,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.page_size = page_size
        self.generation = 0
        self.row_count = 0
        self.counted = False
        self.ids: array | None = None
        self.pages: OrderedDict[int, list[BrowseRow]] = OrderedDict()
        self.stale: dict[int, list[BrowseRow]] = {}
        self.pending: set[int] = set()
        self.sort_column = "key"
        self.descending = False
        self.has_model = False
        self.hidden: set[str] = set()
        self.label_counts: dict[str, int] = {}  # dataset name -> labels (normalises Hm)
        self.empty_message = "loading…"
        self._last_posted: int | None = None
        self._layout: list[tuple[Column, int]] = []
        self._layout_width = -1
        # row strips by (row, is_cursor), valid while _strip_key (width and styles) holds
        self._strips: dict[tuple[int, bool], Strip] = {}
        self._strip_key: tuple[object, ...] = ()
        self._frame: _Frame | None = None

    # ------------------------------------------------------------------ state
    def new_query(self, generation: int, *, keep_position: bool) -> None:
        """Start showing a new query; with keep_position the old rows stay as placeholders."""
        self.generation = generation
        self.stale = dict(self.pages) if keep_position else {}
        self.pages.clear()
        self.pending.clear()
        self.ids = None
        self.counted = False
        self._strips.clear()
        if not keep_position:
            self._last_posted = None
            self.scroll_to(y=0, animate=False)
            self.set_reactive(ClipTable.cursor_row, 0)
        self._update_virtual_size()
        self.refresh()

    def set_count(self, generation: int, count: int) -> None:
        if generation != self.generation:
            return
        self.row_count = count
        self.counted = True
        self._strips.clear()
        if self.cursor_row >= count:
            self.set_reactive(ClipTable.cursor_row, max(count - 1, 0))
        self._update_virtual_size()
        self.refresh()
        self._post_cursor()

    def set_ids(self, generation: int, ids: array) -> None:
        if generation != self.generation:
            return
        self.ids = ids
        if len(ids) != self.row_count or not self.counted:
            self.set_count(generation, len(ids))
        self._post_cursor()

    def set_page(self, generation: int, page: int, rows: list[BrowseRow]) -> None:
        if generation != self.generation:
            return
        self.pending.discard(page)
        self.pages[page] = rows
        self.pages.move_to_end(page)
        self.stale.pop(page, None)
        while len(self.pages) > MAX_CACHED_PAGES:
            self.pages.popitem(last=False)
        self._strips.clear()
        if not self.counted and page == 0 and len(rows) < self.page_size:
            self.set_count(generation, len(rows))
        self.refresh()
        self._post_cursor()

    def page_failed(self, generation: int, page: int) -> None:
        if generation == self.generation:
            self.pending.discard(page)

    @property
    def first_page_ready(self) -> bool:
        top = self.cursor_row // self.page_size
        return top in self.pages or (self.counted and self.row_count == 0)

    def row_loaded(self, row: int) -> bool:
        return self.row(row) is not None or (self.counted and row >= self.row_count)

    def row(self, index: int) -> BrowseRow | None:
        page, offset = divmod(index, self.page_size)
        rows = self.pages.get(page)
        if rows is None or offset >= len(rows):
            return None
        return rows[offset]

    def clip_id_at(self, index: int) -> int | None:
        if self.ids is not None and 0 <= index < len(self.ids):
            return int(self.ids[index])
        row = self.row(index)
        if row is None:  # while a reload is in flight, the previous rows still count
            row = _stale_row(self.stale, index // self.page_size, index % self.page_size)
        return None if row is None else row.clip_id

    @property
    def current_clip_id(self) -> int | None:
        return self.clip_id_at(self.cursor_row)

    def set_display(
        self, *, sort: str, descending: bool, has_model: bool, hidden: set[str]
    ) -> None:
        self.sort_column, self.descending = sort, descending
        self.has_model = has_model
        self.hidden = hidden
        self._layout_width = -1
        self._strips.clear()
        self._update_virtual_size()
        self.refresh()

    def set_label_counts(self, counts: dict[str, int]) -> None:
        """Each dataset's label count, which turns `Hm` into normalised entropy."""
        self.label_counts = counts
        self._strips.clear()
        self.refresh()

    # ------------------------------------------------------------------ layout
    def _columns(self, width: int) -> list[tuple[Column, int]]:
        if width == self._layout_width:
            return self._layout
        cols = [c for c in COLUMNS if c.id not in self.hidden]
        fixed = sum(c.width for c in cols if not c.flex) + len(cols) - 1
        out = []
        for c in cols:
            w = max(c.width, width - fixed) if c.flex else c.width
            out.append((c, w))
        self._layout, self._layout_width = out, width
        return out

    def _update_virtual_size(self) -> None:
        # The minimum width (flex column at its minimum): no horizontal scrollbar unless the
        # fixed columns really overflow; rendering widens the flex column to the viewport.
        cols = [c for c in COLUMNS if c.id not in self.hidden]
        total = sum(c.width for c in cols) + len(cols) - 1
        self.virtual_size = Size(total, self.row_count + 1)

    def on_resize(self, event: events.Resize) -> None:
        self._layout_width = -1
        self._update_virtual_size()

    # ------------------------------------------------------------------ drawing
    def _style(self, name: str) -> Style:
        frame = self._frame
        if frame is not None:
            return frame.styles[name]
        return self.get_component_rich_style(name, partial=True)

    def render_lines(self, crop: Region) -> list[Strip]:
        # What every line needs (width, base and component styles, columns) is looked up
        # once per paint instead of once per line; row strips are reused while it holds,
        # so a cursor move or a one-row scroll draws one or two new rows, not all of them.
        width = self.scrollable_content_region.width
        base = self.rich_style
        styles = {name: self.get_component_rich_style(name, partial=True) for name in _STYLES}
        key = (width, base, *styles.values())
        if key != self._strip_key or len(self._strips) > MAX_CACHED_STRIPS:
            self._strips.clear()
            self._strip_key = key
        self._frame = _Frame(width, base, styles, self._columns(width))
        try:
            return super().render_lines(crop)
        finally:
            self._frame = None

    def render_line(self, y: int) -> Strip:
        frame = self._frame
        if frame is None:  # called outside a paint
            width = self.scrollable_content_region.width
            base = self.rich_style
            cols = self._columns(width)
        else:
            width, base, cols = frame.width, frame.base, frame.columns
        scroll_x, scroll_y = self.scroll_offset
        if y == 0:
            strip = self._header(cols, base)
        else:
            index = scroll_y + y - 1
            is_cursor = index == self.cursor_row
            cached = self._strips.get((index, is_cursor)) if frame is not None else None
            if cached is not None:
                strip = cached
            else:
                strip = self._row_strip(index, cols, base)
                if frame is not None and self.row(index) is not None:
                    self._strips[index, is_cursor] = strip  # placeholders ask for pages
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def _header(self, cols: list[tuple[Column, int]], base: Style) -> Strip:
        header = base + self._style("clip-table--header")
        sorted_style = base + self._style("clip-table--sorted")
        segments = []
        for i, (col, w) in enumerate(cols):
            label = col.header
            is_sorted = col.id == self.sort_column
            if is_sorted:
                label += "↓" if self.descending else "↑"
            segments.append(
                Segment(fit(label, w, col.align), sorted_style if is_sorted else header)
            )
            if i < len(cols) - 1:
                segments.append(Segment(" ", header))
        return Strip(segments).simplify()

    def _row_strip(self, index: int, cols: list[tuple[Column, int]], base: Style) -> Strip:
        total = sum(w for _, w in cols) + len(cols) - 1
        if index >= self.row_count:
            if index == 0 and self.counted:
                return Strip(
                    [
                        Segment(
                            fit(self.empty_message, total, "<"),
                            base + self._style("clip-table--dim"),
                        )
                    ]
                )
            if index == 0 and not self.counted:
                return Strip(
                    [
                        Segment(
                            fit("loading…", total, "<"), base + self._style("clip-table--loading")
                        )
                    ]
                )
            return Strip.blank(total, base)
        row = self.row(index)
        if row is None:
            page = index // self.page_size
            row = _stale_row(self.stale, page, index % self.page_size)
            self._want(page)
        is_cursor = index == self.cursor_row
        line_style = base + self._style("clip-table--cursor") if is_cursor else base
        if row is None:
            return Strip(
                [Segment(fit("…", total, "<"), line_style + self._style("clip-table--loading"))]
            )
        segments = []
        for i, (col, w) in enumerate(cols):
            style: Style | None
            if col.model and not self.has_model:
                text, style = "–", self._style("clip-table--dim")
            else:
                text = cell_text(col, row, self.label_counts.get(row.dataset))
                style = self._cell_style(col, row)
            cell = line_style + style if style else line_style
            if is_cursor and style:
                cell = line_style + Style(color=style.color, bold=style.bold)
            segments.append(Segment(fit(text, w, col.align), cell))
            if i < len(cols) - 1:
                segments.append(Segment(" ", line_style))
        return Strip(segments).simplify()

    def _cell_style(self, col: Column, row: BrowseRow) -> Style | None:
        if col.id == "model" and row.agree is not None:
            return self._style("clip-table--agree" if row.agree else "clip-table--disagree")
        if col.id == "js" and row.agree is False:
            return self._style("clip-table--disagree")
        if col.id == "ambiguity" and row.ambiguity:
            return self._style(f"clip-table--{row.ambiguity}")
        if col.id == "flags" and row.flags:
            return self._style("clip-table--flag")
        if col.id == "vote" and row.own_vote:
            return self._style("clip-table--own")
        return None

    def _want(self, page: int) -> None:
        if page in self.pending or page in self.pages:
            return
        if self.counted and page * self.page_size >= self.row_count:
            return
        self.pending.add(page)
        self.post_message(self.PageNeeded(self, self.generation, page))

    # ------------------------------------------------------------------ cursor
    @property
    def data_height(self) -> int:
        return max(self.scrollable_content_region.height - 1, 1)

    def watch_cursor_row(self, old: int, new: int) -> None:
        top = self.scroll_offset.y
        self._scroll_to_cursor()
        if self.scroll_offset.y == top:  # a scroll repaints everything by itself
            self.refresh_line(old + 1)  # (line 0 is the header)
            self.refresh_line(new + 1)
        else:
            self.refresh()
        self._post_cursor(navigating=True)

    def _scroll_to_cursor(self) -> None:
        top = round(self.scroll_y)
        height = self.data_height
        row = self.cursor_row
        if row < top:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= top + height:
            self.scroll_to(y=row - height + 1, animate=False, immediate=True)
        page = row // self.page_size
        self._want(page)
        # prefetch the neighbouring page in the direction of travel
        nxt = (row + height) // self.page_size
        if nxt != page:
            self._want(nxt)

    def _post_cursor(self, navigating: bool = False) -> None:
        clip_id = self.current_clip_id
        if clip_id is not None and clip_id != self._last_posted:
            self._last_posted = clip_id
            self.post_message(self.CursorMoved(self, self.cursor_row, clip_id, navigating))

    def move_cursor(self, row: int) -> None:
        if self.row_count == 0:
            return
        self.cursor_row = max(0, min(row, self.row_count - 1))

    def action_cursor(self, delta: int) -> None:
        self.move_cursor(self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self.cursor_row + direction * self.data_height)

    def action_jump(self, where: int) -> None:
        self.move_cursor(self.row_count - 1 if where < 0 else 0)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        self.focus()
        if offset.y == 0:
            x = offset.x + round(self.scroll_x)
            for col, w in self._columns(self.scrollable_content_region.width):
                if x < w + 1:
                    self.post_message(self.SortRequested(self, col.id))
                    return
                x -= w + 1
            return
        self.move_cursor(round(self.scroll_y) + offset.y - 1)


_STYLES = tuple(sorted(ClipTable.COMPONENT_CLASSES))


@dataclass(frozen=True, slots=True)
class _Frame:
    """What one paint of the table shares between its lines."""

    width: int
    base: Style
    styles: dict[str, Style]
    columns: list[tuple[Column, int]]


def _stale_row(stale: dict[int, list[BrowseRow]], page: int, offset: int) -> BrowseRow | None:
    rows = stale.get(page)
    return rows[offset] if rows is not None and offset < len(rows) else None
