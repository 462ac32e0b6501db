"""`python -m drip ...` is the `drip` command (for a clone run without its console script)."""

from drip.cli import main

main()
