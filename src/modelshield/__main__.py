"""`python -m modelshield` runs the command-line interface."""

from modelshield.cli import main

main()
