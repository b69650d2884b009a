"""Where the shared test data and this repository are, the same from every test group (unit, integration, tui,
repo): import these instead of counting ``Path(__file__).parent`` levels."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
#: Fixtures shared by the groups: CI files (data/ci), job logs (data/logs, data/logs/conformance).
DATA = TESTS / "data"
#: A self-signed certificate for 127.0.0.1 (valid to 2126) for the TLS tests.
TLS = TESTS / "tls"
#: The checkout: docs/, src/, bench/, ci/ and the repository's own CI files.
REPO_ROOT = TESTS.parent
