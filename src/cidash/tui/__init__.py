"""The Textual dashboard (``cidash tui`` / ``cidash demo``). The only package of cidash that imports Textual.

Public entry point: :class:`cidash.tui.app.CidashApp` (imported lazily, so ``import cidash.tui`` stays cheap).
Pure helpers the screens format: :mod:`cidash.tui.data` (reads through the core), :mod:`cidash.tui.charts`,
:mod:`cidash.tui.logview`; the command registry: :mod:`cidash.tui.commands`.
"""
