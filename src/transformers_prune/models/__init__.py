"""Model types. Every file here is self-contained up to same-folder relative imports, so a checkpoint saved
with `trust_remote_code` code files loads without this package installed."""
