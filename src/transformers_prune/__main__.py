"""`python -m transformers_prune COMMAND ARGS` is `transformers-prune COMMAND ARGS`."""

from transformers_prune_cli import main

main()
