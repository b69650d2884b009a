"""Untrusted text on its way out: the one place that makes a GitLab string safe to display or to write.

Everything GitLab sends (job names, refs, usernames, commit titles, tags, runner and project names, log lines) is
untrusted. Written raw to a terminal, ``ESC ] 0 ; pwned BEL`` retitles the window, ``ESC [ 2 J`` clears the
screen, ``ESC ] 8`` plants a link, U+009B is an 8-bit CSI on some terminals and U+202E reverses the text after
it. This module is the boundary:

- :func:`clean` for names and sentences: every character a terminal or a reader could mistake for something else
  (C0 controls except the tab/newline a caller allows, DEL, C1 controls, bidi overrides and isolates, invisible
  format characters, line/paragraph separators, lone surrogates) is shown as a visible escape: ``\\x1b``,
  ``\\u202e``; a byte that was not UTF-8 (decoded with ``surrogateescape``) as ``\\xff``. Nothing is silently
  dropped, so a hostile name stays recognisable, and the result holds no raw control character.
- :func:`clean_log` for log text: escape sequences are removed (SGR colour codes kept on request, for views
  that render colour), then :func:`clean` with tab and newline kept.
- :func:`safe_text` / :func:`safe_log_text`: the same as a Rich :class:`~rich.text.Text` for Textual and Rich
  (never parsed as markup, so ``[bold]x[/]`` shows literally).
- Format escaping for reports: :func:`csv_cell` (OWASP CSV injection), :func:`md_cell` / :func:`md_code`
  (Markdown tables), :func:`xml_text` (characters XML 1.0 can hold), :func:`openmetrics_label`.

Pure functions, no Textual import (the core may use it).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text

#: Code points never written raw: C0 (tab/newline decided per call), DEL, C1, soft hyphen, Arabic letter mark,
#: Mongolian vowel separator, zero-width space, LRM/RLM, line/paragraph separators, bidi embeddings/overrides
#: (U+202A-U+202E), word joiner and invisible operators, bidi isolates (U+2066-U+2069), deprecated format
#: characters, BOM/zero-width no-break space, interlinear annotations, lone surrogates, tag characters.
_UNSAFE_RANGES = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f"
    "\u00ad\u061c\u180e\u200b\u200e\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f"
    "\ufeff\ufff9-\ufffb\ud800-\udfff"
    "\U000e0000-\U000e007f"
)
_UNSAFE = re.compile(f"[{_UNSAFE_RANGES}]")
_UNSAFE_TAB = re.compile(f"[{_UNSAFE_RANGES}\t]")
_UNSAFE_NL = re.compile(f"[{_UNSAFE_RANGES}\n]")
_UNSAFE_TAB_NL = re.compile(f"[{_UNSAFE_RANGES}\t\n]")
#: (keep_newlines, keep_tabs) -> what :func:`clean` escapes
_PATTERNS = {
    (True, True): _UNSAFE,
    (True, False): _UNSAFE_TAB,
    (False, True): _UNSAFE_NL,
    (False, False): _UNSAFE_TAB_NL,
}

#: An escape sequence as a terminal parses it (7-bit and 8-bit introducers): CSI, OSC (ended by BEL or ST, or
#: unterminated to the end of the text), DCS/SOS/PM/APC strings, and the two-character ESC forms. A lone ESC at
#: the end matches too.
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI (unfinished at the end of the text included)
    r"|(?:\x1b\]|\x9d)[^\x07\x9c\x1b]*(?:\x07|\x9c|\x1b\\|(?=\x1b)|$)"  # OSC
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x9c\x1b]*(?:\x9c|\x1b\\|(?=\x1b)|$)"  # DCS, SOS, PM, APC
    r"|\x1b[ -/]*[0-~]?"  # nF, Fp, Fe, Fs; a lone ESC
)
#: An SGR (colour) sequence that log text may keep: at most 32 parameters of at most 5 digits (a colour takes five,
#: ``38;2;R;G;B``). A longer one goes like any other sequence: Rich reads each parameter with ``int()``, which
#: refuses more than 4,300 digits (a log line with one stopped the log view), and spends time on each.
_SGR = re.compile(r"\x1b\[(?:[0-9]{0,5}[;:]){0,31}[0-9]{0,5}m")

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _visible(m: re.Match[str]) -> str:
    ch = m.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    cp = ord(ch)
    if 0xDC80 <= cp <= 0xDCFF:  # a byte that was not UTF-8, decoded with surrogateescape
        return f"\\x{cp - 0xDC00:02x}"
    if cp <= 0xFF:
        return f"\\x{cp:02x}"
    if cp <= 0xFFFF:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"


#: What no store can hold: NUL (PostgreSQL's text refuses it) and lone surrogates (not UTF-8: SQLite and
#: PostgreSQL both refuse them; ``json.loads`` makes one of ``"\\ud800"``, and ``surrogateescape`` of bytes that
#: are not UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` with what no store can hold (:data:`_UNSTORABLE`) replaced by U+FFFD, the replacement character.
    For every string from GitLab, a CI file or a log before it is stored: one such character used to stop the
    sync at the store. (GitLab's own database holds neither in a name: they come from a proxy or a hostile server,
    or from bytes anyone who can push writes.)"""
    if text.isascii():
        return text.replace("\x00", "\ufffd") if "\x00" in text else text
    return _UNSTORABLE.sub("\ufffd", text)


def clean(text: str, *, keep_newlines: bool = False, keep_tabs: bool = False) -> str:
    """``text`` with every unsafe character shown as a visible escape (``\\x1b``, ``\\u202e``, ``\\n``).

    ``keep_newlines`` / ``keep_tabs`` let ``\\n`` / ``\\t`` through where a caller shows several lines or
    columns. ``\\r`` is always escaped (it moves the cursor back over what was written).
    """
    pattern = _PATTERNS[keep_newlines, keep_tabs]
    if pattern.search(text) is None:
        return text
    return pattern.sub(_visible, text)


def has_unsafe(text: str, *, allow: str = "\t\n") -> bool:
    """True when ``text`` holds a character :func:`clean` would escape (beyond those in ``allow``)."""
    return any(ch not in allow for ch in _UNSAFE_TAB_NL.findall(text))


def strip_sequences(text: str, *, keep_sgr: bool = False) -> str:
    """``text`` without terminal escape sequences; SGR colour codes (``ESC [ ... m``) stay when ``keep_sgr``."""
    if "\x1b" not in text and not any("\x90" <= ch <= "\x9f" for ch in text):
        return text
    if not keep_sgr:
        return _SEQUENCE.sub("", text)

    def keep(m: re.Match[str]) -> str:
        seq = m.group()
        return seq if _SGR.fullmatch(seq) else ""

    return _SEQUENCE.sub(keep, text)


def clean_log(text: str, *, keep_sgr: bool = False) -> str:
    """Log text for display: escape sequences removed (SGR kept when ``keep_sgr``), ``\\r`` and other unsafe
    characters escaped, tabs and newlines kept. With ``keep_sgr`` the only ESC left starts an SGR sequence."""
    text = text.replace("\r\n", "\n")
    stripped = strip_sequences(text, keep_sgr=keep_sgr)
    if not keep_sgr:
        return clean(stripped, keep_newlines=True, keep_tabs=True)
    parts: list[str] = []
    pos = 0
    for m in _SGR.finditer(stripped):
        parts.append(clean(stripped[pos : m.start()], keep_newlines=True, keep_tabs=True))
        parts.append(m.group())
        pos = m.end()
    parts.append(clean(stripped[pos:], keep_newlines=True, keep_tabs=True))
    return "".join(parts)


def safe_text(text: str, style: str = "", *, keep_newlines: bool = False) -> Text:
    """A Rich :class:`Text` of :func:`clean` ``text``: never parsed as markup, so ``[bold]`` shows literally."""
    from rich.text import Text

    return Text(clean(text, keep_newlines=keep_newlines), style=style)


def safe_log_text(text: str) -> Text:
    """Log text as a Rich :class:`Text` with its SGR colours and nothing else a terminal would act on."""
    from rich.text import Text

    return Text.from_ansi(clean_log(text, keep_sgr=True), end="")


def markup_escape(text: str) -> str:
    """:func:`clean` ``text`` escaped for Rich/Textual console markup (for the rare f-string with tags)."""
    from rich.markup import escape

    return escape(clean(text))


# ---------------------------------------------------------------------------------------------------------------
# Report formats
# ---------------------------------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A CSV cell that no spreadsheet runs as a formula (OWASP: a cell starting with ``= + - @``, tab or CR gets
    a leading ``'``); numbers stay numbers, so ``-1.5`` is written as it is."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    text = clean(str(value))
    if text.startswith(_FORMULA_START) or str(value).startswith(_FORMULA_START):
        return "'" + text
    return text


#: What can change the meaning of text inside a table cell: escapes, code, emphasis, the end of a link or image
#: text (``]``), the cell separator, HTML and entities, strikethrough. (``#``, ``+``, ``-`` only matter at the start
#: of a line, which a cell never is.)
_MD_SPECIAL = re.compile(r"([\\`*_\]|<>&~])")


def md_cell(value: object) -> str:
    """Text for a Markdown table cell or inline in a sentence: cleaned, Markdown and HTML metacharacters
    backslash-escaped (``|`` can never end the cell, ``<script>`` stays text), newlines shown as ``\\n``."""
    return _MD_SPECIAL.sub(r"\\\1", clean(str(value)))


def md_code(value: object) -> str:
    """An inline code span holding ``value`` literally: the fence is longer than any backtick run inside, and
    ``|`` (which ends a table cell even inside a code span on GitHub) is written as ``\\|``."""
    text = clean(str(value)).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


#: Characters XML 1.0 cannot hold at all (not even as a character reference).
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: object) -> str:
    """Text an XML 1.0 document can hold, also shown safely by a terminal that prints it: :func:`clean`
    (escapes, so nothing XML forbids or a terminal acts on is left), newlines kept. Markup escaping is the
    serialiser's job."""
    text = clean(str(value), keep_newlines=True)
    return _XML_FORBIDDEN.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def openmetrics_label(value: str) -> str:
    """A label value for the OpenMetrics text format: ``\\``, ``"`` and newline escaped as the exposition format
    requires, after :func:`clean` with newlines kept (they travel as the format's ``\\n``), so no control
    character reaches a scraper or a terminal."""
    return clean(value, keep_newlines=True).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
