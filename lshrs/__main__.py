"""`python -m lshrs` runs the command line (the same as the `lshrs` script)."""

from lshrs.cli import run

run()
