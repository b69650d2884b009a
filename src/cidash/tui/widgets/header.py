"""The status header: project, last refresh ("12 s ago"), rate-limit headroom, polling and the stale state."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from cidash.models import RateLimitState
from cidash.textsafe import clean


class StatusHeader(Static):
    """One line at the top. ``stale`` (a reason) shows that the last refresh failed while keeping the data."""

    project: reactive[str] = reactive("")
    last_refresh: reactive[datetime | None] = reactive(None)
    now: reactive[datetime | None] = reactive(None)
    rate_limit: reactive[RateLimitState | None] = reactive(None)
    stale: reactive[str | None] = reactive(None)
    activity: reactive[str] = reactive("")
    paused: reactive[bool] = reactive(False)
    source: reactive[str] = reactive("")
    notice: reactive[str] = reactive("")  # a lasting condition, e.g. "actions disabled: read-only mode"

    def render(self) -> Text:
        text = Text()
        text.append(" cidash ", style="bold reverse")
        text.append(f" {clean(self.project or 'no project')} ", style="bold")
        if self.source:
            text.append(f"({clean(self.source)}) ", style="dim")
        if self.last_refresh is not None and self.now is not None:
            import humanize  # here: a start paints "not refreshed yet" first (its import is ~2 ms before that paint)

            ago = humanize.naturaldelta(max(self.now - self.last_refresh, self.now - self.now))
            text.append(f"· refreshed {ago} ago ")
        else:
            text.append("· not refreshed yet ", style="dim")
        rl = self.rate_limit
        if rl is not None and rl.remaining is not None:
            limit = f"/{rl.limit}" if rl.limit else ""
            style = "bold red" if rl.limit and rl.remaining < rl.limit * 0.1 else ""
            text.append(f"· API {rl.remaining}{limit} left ", style=style)
        if self.paused:
            text.append("· polling paused ", style="yellow")
        if self.activity:
            text.append(f"· {clean(self.activity)} ", style="italic cyan")
        if self.notice:
            text.append(f"· {clean(self.notice)} ", style="dim")
        if self.stale:
            text.append(f" stale: last refresh failed ({clean(self.stale)}) ", style="bold white on dark_red")
        return text
