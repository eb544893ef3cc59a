"""JSON Lines: one object per line; blank lines are skipped, unparsable ones are counted rejections."""
from __future__ import annotations

import io
import json
from typing import Iterator

from transforms.readers.base import register
from transforms.readers.text import Row, TextReader


@register
class JsonlReader(TextReader):
    name = "jsonl"

    def claims(self, name: str) -> bool:
        return name.endswith((".jsonl", ".json", ".ndjson"))

    def rows(self, text: io.TextIOBase) -> Iterator[Row]:
        for line_no, line in enumerate(text, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield line_no, None, f"bad json: {exc.msg}"
                continue
            if not isinstance(row, dict):
                yield line_no, None, "bad json: line is not an object"
                continue
            yield line_no, row, None

    def head_keys(self, first: str, text: io.TextIOBase, columns: tuple[str, str]) -> set[str]:
        """The first parsable line's keys (a JSONL file has no header: columns are not checked here)."""
        for line in text:
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                return set(row) if isinstance(row, dict) else set()
        return set()
