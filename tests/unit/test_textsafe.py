"""cidash.textsafe: untrusted text made safe for a terminal, a Textual view and each report format."""

from __future__ import annotations

import csv
import io
import re
import sys
import unicodedata
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from rich.console import Console
from rich.text import Text

from cidash.textsafe import (
    clean,
    clean_log,
    csv_cell,
    has_unsafe,
    markup_escape,
    md_cell,
    md_code,
    openmetrics_label,
    safe_log_text,
    safe_text,
    strip_sequences,
    xml_text,
)

BIDI_CONTROLS = {"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"}

#: Code points a terminal acts on or a reader is fooled by: what must never come out of clean() raw.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u200e\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def _unsafe_code_points() -> list[str]:
    out = []
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cs", "Zl", "Zp") or unicodedata.bidirectional(ch) in BIDI_CONTROLS:
            out.append(ch)
    return out


def test_clean_escapes_every_control_bidi_separator_and_surrogate_that_unicode_knows() -> None:
    unsafe = _unsafe_code_points()
    assert len(unsafe) > 2000  # C0, C1, surrogates, separators, the nine bidi controls
    for ch in unsafe:
        out = clean(ch)
        assert out != ch and out.startswith("\\"), repr(ch)
        assert out.isascii() and out.isprintable(), repr(ch)


def test_clean_shows_what_was_there() -> None:
    assert clean("a\x1b]0;pwned\x07b") == "a\\x1b]0;pwned\\x07b"
    assert clean("x\u202ey") == "x\\u202ey"
    assert clean("\x9b2J") == "\\x9b2J"
    assert clean("tab\there\nnl\rcr") == "tab\\there\\nnl\\rcr"
    assert clean("tab\there\nnl", keep_newlines=True, keep_tabs=True) == "tab\there\nnl"
    # a byte that was not UTF-8, decoded with surrogateescape, shows as that byte
    assert clean(b"\xffok".decode("utf-8", "surrogateescape")) == "\\xffok"
    assert clean("tag\U000e0041") == "tag\\U000e0041"


def test_clean_leaves_ordinary_text_alone() -> None:
    for text in ("build-ci-image", "test 1/2", "feature/naïve-ünïcode", "日本語のブランチ", "emoji 👩‍💻 zwj", "ر ی"):
        assert clean(text) == text
        assert not has_unsafe(text)


@given(st.text())
def test_clean_never_lets_anything_raw_through(text: str) -> None:
    out = clean(text)
    assert RAW.search(out) is None
    assert not has_unsafe(out, allow="")
    out.encode("utf-8")  # no lone surrogate left


def test_strip_sequences_knows_every_escape_family() -> None:
    samples = [
        "\x1b]0;title\x07",  # OSC ended by BEL
        "\x1b]0;title\x1b\\",  # OSC ended by ST
        "\x1b]8;;https://x.example/\x1b\\",  # OSC 8 link
        "\x1b]0;unterminated",  # OSC to the end
        "\x1b[2J",
        "\x1b[?1049h",
        "\x1b[6n",
        "\x1bP1$qm\x1b\\",  # DCS
        "\x1b_apc\x1b\\",
        "\x1b^pm\x1b\\",
        "\x1bc",  # full reset
        "\x1b(B",
        "\x9b2J",  # 8-bit CSI
        "\x9d0;title\x9c",  # 8-bit OSC
        "\x1b",
    ]
    for seq in samples:
        assert strip_sequences(f"a{seq}b" if not seq.endswith(("unterminated", "\x1b")) else f"a{seq}") in ("ab", "a")
    assert strip_sequences("\x1b[31mred\x1b[0m \x1b[2J", keep_sgr=True) == "\x1b[31mred\x1b[0m "


def test_clean_log_keeps_colour_and_nothing_else() -> None:
    raw = "\x1b[32;1mok\x1b[0m\x1b]0;pwned\x07 \x1b[2J\x9b2J \u202eevil\r\nnext\tcol"
    out = clean_log(raw, keep_sgr=True)
    assert out == "\x1b[32;1mok\x1b[0m  \\u202eevil\nnext\tcol"  # sequences go, 8-bit ones too
    assert re.sub(r"\x1b\[[0-9;:]*m", "", out).find("\x1b") < 0
    assert clean_log(raw) == "ok  \\u202eevil\nnext\tcol"
    assert clean_log("NEL \x85, lone CSI \x9b") == "NEL \\x85, lone CSI "


#: Pieces of escape sequences, put together in any order: SGR colours (well-formed, unfinished, with too many or too
#: long parameters), other CSI, OSC, DCS, their 8-bit forms, terminators, and plain text.
_ESCAPE_PIECES = st.one_of(
    st.sampled_from(
        [
            "\x1b",
            "\x1b[",
            "[",
            "m",
            ";",
            ":",
            "38;5;",
            "38;2;",
            "48;5;",
            "0",
            "1",
            "255",
            "-1",
            "2J",
            "H",
            "\x1b]",
            "8;;",
            "0;",
            "\x07",
            "\x1b\\",
            "\x9b",
            "\x9d",
            "\x9c",
            "\x90",
            "\x1bP",
            "\r",
            "\n",
            "\t",
            "\u202e",
            "\x00",
            "x",
        ]
    ),
    st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),  # a parameter past int()'s 4,300 digits
    st.integers(min_value=1, max_value=300).map(lambda n: "1;" * n),  # many parameters
    st.text(max_size=3),
    # a whole SGR sequence: its parameters short, long, past int()'s limit, few or many
    st.lists(
        st.one_of(st.integers(min_value=0, max_value=300).map(str), st.integers(1, 6000).map(lambda n: "7" * n)),
        max_size=40,
    ).map(lambda params: "\x1b[" + ";".join(params) + "m"),
)


@given(st.lists(_ESCAPE_PIECES, max_size=40).map("".join))
def test_log_text_keeps_only_bounded_colours_whatever_the_sequence_pieces(raw: str) -> None:
    """What a log line becomes for the log view never raises, keeps no escape but a bounded SGR colour, and
    renders to a terminal with nothing but Rich's own colour codes."""
    out = clean_log(raw, keep_sgr=True)
    rest = re.sub(r"\x1b\[(?:[0-9]{0,5}[;:]){0,31}[0-9]{0,5}m", "", out)
    assert RAW.search(rest) is None, repr(out)
    text = safe_log_text(raw)
    assert RAW.search(text.plain) is None
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor", width=80)
    console.print(text)
    rendered = console.file.getvalue()  # type: ignore[attr-defined]
    assert RAW.search(re.sub(r"\x1b\[[0-9;]*m", "", rendered).replace("\n", "")) is None


def test_a_colour_sequence_too_long_for_int_is_dropped_not_raised() -> None:
    """Rich reads SGR parameters with int(), which refuses more than 4,300 digits: such a sequence (or one with
    hundreds of parameters) is dropped like any other, and the text around it stays."""
    for raw in ("\x1b[" + "9" * 5000 + "mx", "\x1b[38;5;" + "9" * 5000 + "mx", "\x1b[" + "1;" * 100_000 + "mx"):
        assert clean_log(raw, keep_sgr=True) == "x"
        text = safe_log_text(raw)
        assert text.plain == "x" and not text.spans
    kept = safe_log_text("\x1b[1;38;2;255;128;0;48;5;17mhot\x1b[0m")
    assert kept.plain == "hot" and len(kept.spans) == 1


def test_safe_text_is_never_markup_and_safe_log_text_has_colour() -> None:
    t = safe_text("[bold]x[/] \x1b[2J")
    assert t.plain == "[bold]x[/] \\x1b[2J" and not t.spans
    log = safe_log_text("\x1b[31mred\x1b[0m \x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\")
    assert log.plain == "red link"
    (span,) = log.spans  # the colour survives, the link does not
    assert (span.start, span.end) == (0, 3) and str(span.style) == "color(1)"
    console = Console(file=io.StringIO(), force_terminal=True, color_system="standard", width=80)
    console.print(log)
    rendered = console.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b]" not in rendered and "evil" not in rendered
    assert markup_escape("[bold]x[/]") == "\\[bold]x\\[/]"
    assert Text.from_markup(markup_escape("[bold]x[/]\x07")).plain == "[bold]x[/]\\x07"


def test_csv_cells_are_never_formulas() -> None:
    for hostile in ("=1+1", "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", '=HYPERLINK("http://x","y")'):
        assert csv_cell(hostile).startswith("'"), hostile
    assert csv_cell(-1.5) == "-1.5" and csv_cell(3) == "3" and csv_cell(None) == ""
    assert csv_cell("job=lint") == "job=lint"
    buf = io.StringIO()
    csv.writer(buf).writerow([csv_cell(v) for v in ("=1+1", "a,b", 'q"q', "x\ny")])
    (row,) = list(csv.reader(io.StringIO(buf.getvalue())))
    assert row == ["'=1+1", "a,b", 'q"q', "x\\ny"]


def _cells(row: str) -> list[str]:
    """Split a Markdown table row on the pipes that are not backslash-escaped (GFM's rule)."""
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


@given(st.text())
def test_markdown_cells_keep_the_table_shape(text: str) -> None:
    row = f"| {md_cell(text)} | {md_code(text)} | x |"
    assert len(_cells(row)) == 3
    assert "\n" not in row
    assert re.search(r"(?<!\\)[<>&*_\]]", md_cell(text)) is None  # HTML, entities, emphasis, links: escaped


def test_markdown_escapes_html_and_links() -> None:
    assert md_cell("<script>alert(1)</script>") == "\\<script\\>alert(1)\\</script\\>"
    assert md_cell("[x](javascript:alert(1))") == "[x\\](javascript:alert(1))"
    assert md_code("a`b") == "``a`b``"
    assert md_code("`") == "`` ` ``"
    assert md_code("a|b") == "`a\\|b`"


@given(st.text())
def test_xml_text_is_always_well_formed(text: str) -> None:
    root = ET.Element("r", attr=xml_text(text))
    root.text = xml_text(text)
    document = ET.tostring(root, encoding="unicode")
    parsed = ET.fromstring(document)
    assert parsed.text in (xml_text(text), None) or xml_text(text) == ""
    assert RAW.search(document.replace("\n", "")) is None


def test_openmetrics_labels_parse_back() -> None:
    value = 'we"ird\\ref\nnext \x1b]0;x\x07'
    text = f'm_total{{ref="{openmetrics_label(value)}"}} 1\n# EOF\n'
    (family,) = text_string_to_metric_families(text)
    assert family.samples[0].labels["ref"] == 'we"ird\\ref\nnext \\x1b]0;x\\x07'
