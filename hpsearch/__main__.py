"""`python -m hpsearch` runs the command line."""

from hpsearch.cli import main

main()
