"""`python -m transformers_prune COMMAND ARGS` is `transformers-prune COMMAND ARGS`."""

from .cli import main

main()
