"""One module per subcommand; see :mod:`cidash.cli` for the protocol they follow."""
