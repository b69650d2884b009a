"""cidash: a terminal dashboard for GitLab CI health."""

__version__ = "0.1.0"
