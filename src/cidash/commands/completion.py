"""`cidash doctor`: placeholder."""

HELP = "x"
DESCRIPTION = "x"


def configure(parser):
    pass


def run(args):
    return 0
