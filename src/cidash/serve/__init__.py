"""``cidash serve``: the long-running team mode, built on the sync engine and the export's metric families.

- :mod:`.scheduler`: per-project incremental syncs on an adaptive, jittered schedule; webhook triggers debounce
  into it; never two syncs of one project at once (in this process by the scheduler, across processes by the
  sync's lease in the store).
- :mod:`.webhook`: verifying and reading GitLab ``Pipeline Hook`` / ``Job Hook`` deliveries (a trigger only).
- :mod:`.http`: ``/metrics``, ``/healthz``, ``/readyz``, ``POST /webhook`` on a ``ThreadingHTTPServer``.
- :mod:`.app`: wiring, the exposition cache, signals; :mod:`.eventlog`: one line per event, text or JSON.

Nothing below :mod:`cidash.serve` imports it (the architecture test enforces the direction).
"""
