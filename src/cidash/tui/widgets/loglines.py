"""The dense job-log view: one row per folded section (with its duration), line numbers, per-line timestamps
when the log has them, a cursor, search highlights. A ``ScrollView`` that renders only the rows on screen
(the Line API), so a 20 000-line log costs what 36 rows cost."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from cidash.textsafe import clean, safe_log_text
from cidash.tui.logview import LogSection, Row, anchor_index, has_stamps, initially_folded, visible_rows


def fmt_duration(seconds: int | None) -> str:
    """Seconds in one unit, right-aligned (the column lines up)."""
    return "     …" if seconds is None else f"{seconds:>4} s"


class LogLines(ScrollView, can_focus=True):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "cursor(1)", "Down", show=False),
        Binding("k,up", "cursor(-1)", "Up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("g,home", "go_top", "Top", show=False),
        Binding("G,end", "go_bottom", "Bottom", show=False),
        Binding("enter,space", "fold", "Fold", show=False),
    ]

    DEFAULT_CSS = """
    LogLines { height: 1fr; }
    """

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.sections: list[LogSection] = []
        self.folded: set[int] = set()
        self.rows: list[Row] = []
        self.cursor = 0
        self.needle = ""
        self.empty_text = ""
        self._cache: dict[Row, Text] = {}
        self._gutter = 1
        self._stamps = False
        self._name_width = 0

    # -- content ----------------------------------------------------------------------------------------------

    def load(self, sections: list[LogSection], *, empty: str = "", keep: bool = False) -> None:
        """Show ``sections``. ``keep`` (a refresh of the same log): folds, cursor and scroll stay, and a cursor on
        the last row follows new lines (tailing)."""
        at_end = keep and self.rows and self.cursor >= len(self.rows) - 1
        old_folded = set(self.folded)
        old_count = len(self.sections)
        self.sections = sections
        self.empty_text = empty
        self._cache.clear()
        if keep:
            fresh = initially_folded(sections)
            self.folded = {i for i in fresh if i < old_count and i in old_folded} | {i for i in fresh if i >= old_count}
        else:
            self.folded = initially_folded(sections)
        last = max((n for s in sections for n in (s.numbers[-1:] or [s.header_number])), default=1)
        self._gutter = len(str(last))
        self._stamps = has_stamps(sections)
        self._name_width = min(max((len(s.name) for s in sections), default=0), 24)
        self._relayout(self.rows[self.cursor] if keep and self.rows else None)
        if at_end:
            self.action_go_bottom()
        elif not keep:
            self.cursor = 0
            self.scroll_to(0, 0, animate=False)

    def _relayout(self, cursor_row: Row | None, top_row: Row | None = None) -> None:
        self.rows = visible_rows(self.sections, self.folded)
        width = max((self._row_width(r) for r in self.rows[:5000]), default=0)
        self.virtual_size = Size(width, max(len(self.rows), 1))
        if cursor_row is not None:
            self.cursor = anchor_index(self.rows, cursor_row)
        self.cursor = min(self.cursor, max(len(self.rows) - 1, 0))
        if top_row is not None:
            self.scroll_to(y=anchor_index(self.rows, top_row), animate=False)
        self.refresh()

    def _row_width(self, row: Row) -> int:
        si, li = row
        s = self.sections[si]
        prefix = self._gutter + 2 + (9 if self._stamps else 0)
        return prefix + (len(s.name) + len(s.header) + 12 if li < 0 else len(s.lines[li]))

    def set_needle(self, needle: str) -> None:
        self.needle = needle
        self._cache.clear()
        self.refresh()

    # -- rendering --------------------------------------------------------------------------------------------

    def _text(self, row: Row) -> Text:
        cached = self._cache.get(row)
        if cached is not None:
            return cached
        si, li = row
        s = self.sections[si]
        text = Text(no_wrap=True, end="")
        if li < 0:
            number, stamp = s.header_number, s.header_stamp
        else:
            number, stamp = s.numbers[li], s.stamps[li]
        text.append(f"{number or '':>{self._gutter}} ", style="dim")
        if self._stamps:
            text.append(f"{stamp or '':8} ", style="dim cyan")
        if li < 0:
            mark = "▶" if si in self.folded else "▼"
            text.append(f"{mark} ", style="bold")
            text.append(clean(s.name).ljust(self._name_width), style="bold")
            text.append(f" {fmt_duration(s.duration)}  ", style="yellow" if (s.duration or 0) >= 60 else "dim")
            text.append_text(safe_log_text(s.header))
            if si in self.folded and s.lines:
                count = len(s.lines)
                text.append(f"  ({count} line{'' if count == 1 else 's'})", style="dim")
        else:
            text.append("  " if s.name else "")
            text.append_text(safe_log_text(s.lines[li]))
        if self.needle:
            text.highlight_words([self.needle], "black on yellow", case_sensitive=False)
        self._cache[row] = text
        return text

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        base = self.rich_style
        if not self.rows:
            if y == 0 and self.empty_text:
                segs = list(Text(" " + self.empty_text, style="italic").render(self.app.console))
                return Strip(segs).crop_extend(0, width, base)
            return Strip.blank(width, base)
        if index >= len(self.rows):
            return Strip.blank(width, base)
        text = self._text(self.rows[index])
        segments = list(text.render(self.app.console))
        strip = Strip(segments).crop_extend(scroll_x, scroll_x + width, base)
        if index == self.cursor and self.has_focus:
            strip = strip.apply_style(Style(reverse=True))
        elif index == self.cursor:
            strip = strip.apply_style(Style(underline=True))
        return strip.apply_style(base) if not segments else strip

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # -- moving -----------------------------------------------------------------------------------------------

    def move_to(self, index: int, *, top: bool = False) -> None:
        if not self.rows:
            return
        self.cursor = max(0, min(index, len(self.rows) - 1))
        height = self.scrollable_content_region.height or 1
        y = self.scroll_offset.y
        if top or self.cursor < y:
            self.scroll_to(y=max(self.cursor - (height // 3 if top else 0), 0), animate=False)
        elif self.cursor >= y + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False)
        self.refresh()

    def action_cursor(self, delta: int) -> None:
        self.move_to(self.cursor + delta)

    def action_page(self, delta: int) -> None:
        self.move_to(self.cursor + delta * max(self.scrollable_content_region.height - 1, 1))

    def action_go_top(self) -> None:
        self.move_to(0)

    def action_go_bottom(self) -> None:
        self.move_to(len(self.rows) - 1)

    def action_fold(self) -> None:
        if not self.rows:
            return
        si, _ = self.rows[self.cursor]
        if not self.sections[si].name:
            return
        self.folded ^= {si}
        self._relayout((si, -1), self._top_row())

    def _top_row(self) -> Row | None:
        y = self.scroll_offset.y
        return self.rows[y] if 0 <= y < len(self.rows) else None

    def fold_all(self, folded: bool) -> None:
        """Fold or unfold every section; the row at the top of the view stays at the top (+ keeps its place)."""
        top = self._top_row()
        cursor = self.rows[self.cursor] if self.rows else None
        self.folded = {i for i, s in enumerate(self.sections) if s.name} if folded else set()
        self._relayout(cursor, top)

    def reveal(self, row: Row) -> None:
        """Unfold ``row``'s section and put the cursor on it."""
        si, _ = row
        if si in self.folded and row[1] >= 0:
            self.folded.discard(si)
            self._relayout(None)
        self.move_to(anchor_index(self.rows, row), top=True)

    def on_click(self, event: object) -> None:
        offset = getattr(event, "y", None)
        if isinstance(offset, int):
            index = self.scroll_offset.y + offset
            if 0 <= index < len(self.rows):
                if index == self.cursor:
                    self.action_fold()
                else:
                    self.move_to(index)
