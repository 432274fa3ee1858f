"""The JSON file a loading command reads (`load_catalog`, `load_segments`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import CommandError


def json_file_read(path: str):
    """The parsed JSON of `path` ('-' for stdin), or CommandError naming the
    file and what is wrong with it (unreadable, not UTF-8, not JSON, nested
    too deep to parse)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"{path}: cannot read the file ({error})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CommandError(f"{path}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}") from None
    except RecursionError:
        raise CommandError(f"{path}: invalid JSON (nested too deep)") from None
