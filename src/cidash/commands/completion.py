"""`cidash completion bash|zsh|fish`: print the shell code that completes cidash's commands and options."""

from __future__ import annotations

import argparse

HELP = "print shell completion code for bash, zsh or fish"
DESCRIPTION = """\
Print the code that makes your shell complete cidash's commands, options, option values (formats,
criteria ids, file names) as you press Tab. Completion asks cidash itself (through argcomplete), so it
always matches the installed version.

Install it once:
  bash   echo 'eval "$(cidash completion bash)"' >> ~/.bashrc
  zsh    echo 'eval "$(cidash completion zsh)"' >> ~/.zshrc      (after compinit)
  fish   cidash completion fish > ~/.config/fish/completions/cidash.fish

exit codes: 0 printed; 2 unknown shell.

examples:
  eval "$(cidash completion bash)"
  cidash completion fish | source
"""

SHELLS = ("bash", "zsh", "fish")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")


def script(shell: str) -> str:
    """The completion code for ``shell`` (registers the ``cidash`` executable)."""
    from argcomplete.shell_integration import shellcode

    code: str = shellcode(["cidash"], shell=shell)
    return code if code.endswith("\n") else code + "\n"


def run(args: argparse.Namespace) -> int:
    import sys

    sys.stdout.write(script(args.shell))
    return 0
