"""The core (everything outside ``cidash.tui``) must never import Textual."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import cidash


def core_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(cidash.__path__, prefix="cidash."):
        if info.name == "cidash.tui" or info.name.startswith("cidash.tui."):
            continue
        names.append(info.name)
    return names


def test_core_never_imports_textual() -> None:
    modules = [m for m in core_modules() if m != "cidash.__main__"]
    assert "cidash.cli" in modules and "cidash.errors" in modules
    code = (
        "import importlib, json, sys\n"
        f"mods = {modules!r}\n"
        "for m in mods: importlib.import_module(m)\n"
        "print(json.dumps(sorted(k for k in sys.modules if k == 'textual' or k.startswith('textual.'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    leaked = json.loads(proc.stdout)
    assert leaked == [], f"core modules imported Textual: {leaked[:5]}"


def test_cli_help_does_not_import_textual() -> None:
    code = (
        "import sys\nfrom cidash.cli import build_parser\nbuild_parser()\n"
        "print(any(k == 'textual' or k.startswith('textual.') for k in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"
