"""`python -m qbsync.cli ...` is the `qbsync` command."""

from qbsync.cli import main

main()
