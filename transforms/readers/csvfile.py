"""CSV with a header row, parsed strictly: a stray or unterminated quote is a counted error, not a merge."""
from __future__ import annotations

import csv
import io
from typing import Iterator

from dpsynth.errors import UserError
from transforms.readers.base import register
from transforms.readers.text import Row, TextReader


@register
class CsvReader(TextReader):
    name = "csv"

    def claims(self, name: str) -> bool:
        return name.endswith(".csv")

    def rows(self, text: io.TextIOBase) -> Iterator[Row]:
        """(last physical line, row, None) per record, or (line, None, reason) per line of a malformed record.

        Strict parsing: a stray or unterminated quote is an error, not a field
        that silently swallows the following records. Each physical line such a
        record spans is counted as one rejection, so merged records are never
        lost without a count.
        """
        reader = csv.reader(text, strict=True)
        try:
            header = next(reader)
        except (StopIteration, csv.Error):
            return
        last = reader.line_num
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                reason = "bad csv: unterminated quote" if "end of data" in str(exc) else f"bad csv: {exc}"
                for line_no in range(last + 1, max(reader.line_num, last + 1) + 1):
                    yield line_no, None, reason
                last = reader.line_num
                continue
            if not fields:  # blank line
                last = reader.line_num
                continue
            if len(fields) > len(header):
                yield reader.line_num, None, f"bad csv: {len(fields)} fields, the header has {len(header)}"
            else:
                yield reader.line_num, dict(zip(header, fields)), None
            last = reader.line_num

    def head_keys(self, first: str, text: io.TextIOBase, columns: tuple[str, str]) -> set[str]:
        """The header's names; the content and label columns must be among them."""
        header = next(csv.reader(text), None)
        if not header:
            raise UserError(f"{first} is empty (a CSV needs a header row)")
        for column in columns:
            if column not in header:
                raise UserError(f"{first} has no column {column!r} (header: {', '.join(header)})")
        return set(header)
