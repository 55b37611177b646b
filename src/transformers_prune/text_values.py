"""Values written as text (command-line options, `--set` and `--sweep` values): JSON where it parses, else the
plain string."""

from __future__ import annotations

import json


def parse_json_or_text(text: str):
    """A command-line value as JSON (numbers, true/false, null, lists), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


__all__ = ["parse_json_or_text"]
