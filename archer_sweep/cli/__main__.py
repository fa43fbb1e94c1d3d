"""`python -m archer_sweep.cli` = the `archer-sweep` command."""

from archer_sweep.cli.app import main

main()
