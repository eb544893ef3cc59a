"""User-level privacy: every privacy unit (person) keeps one record.

Why: dpsynth's guarantee is for add/remove of one record. A person who owns
many rows would get that guarantee many times over, i.e. a much weaker one.
Keeping one uniformly random record per unit *before any aggregation* makes
each unit contribute at most one record to every released aggregate, so the
same ledger holds with "unit" in place of "record".

Selection is by priority: every row gets an independent uniform 64-bit
priority and each unit keeps its highest-priority row, which is a uniform
choice among the unit's rows and, being a maximum, can be computed in any
order and any grouping (per batch first, then across workers). Private runs
draw priorities from os.urandom. With a test-only noise seed the priority is
a keyed hash of the row's content, so that Beam and the local reference keep
the same rows whatever the batching. Rows without a unit id cannot be
attributed to anyone: they are dead-lettered with a reason, never guessed.
"""
from __future__ import annotations

import hashlib
import os
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dpsynth.errors import OptionError
from dpsynth.validation import REJECT_REASON_COLUMN, rejected_key

MISSING_UNIT_REASON = "missing_privacy_unit"
# Diagnostic counters (exact, data-owner only, like the rest of the diagnostics).
ROWS_BEFORE = "unit_rows_read"
ROWS_KEPT = "unit_rows_kept"
ROWS_DROPPED = "unit_extra_rows_dropped"


def check_unit_column(schema: pa.Schema, column: str) -> None:
    if column not in schema.names:
        raise OptionError("input has no column {column!r} ({options}); its columns are: {columns}",
                          ["privacy_unit_column"], column=column, columns=", ".join(schema.names))
    kind = schema.field(column).type
    if not (pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)
            or pa.types.is_binary(kind)):
        raise OptionError("{options} {column!r} must hold integers or strings, found {kind}",
                          ["privacy_unit_column"], column=column, kind=kind)


def row_priorities(table: pa.Table, noise_seed: Optional[int]) -> np.ndarray:
    """[n] uint64: fresh OS entropy, or (TEST ONLY, with a seed) a keyed hash of each row."""
    n = table.num_rows
    if noise_seed is None:
        return np.frombuffer(os.urandom(8 * n), dtype=np.uint64).copy() if n else np.zeros(0, np.uint64)
    key = int(noise_seed).to_bytes(16, "little", signed=True)
    return np.array([int.from_bytes(hashlib.blake2b(repr(sorted(row.items())).encode(), key=key,
                                                    digest_size=8).digest(), "little")
                     for row in table.to_pylist()], dtype=np.uint64)


def split_missing(table: pa.Table, column: str) -> tuple[pa.Table, Optional[pa.Table]]:
    """(rows with a unit id, rejected rows without one plus REJECT_REASON_COLUMN or None)."""
    missing = table.column(column).is_null()
    if not pc.any(missing).as_py():
        return table, None
    rejected = table.filter(missing)
    rejected = rejected.append_column(REJECT_REASON_COLUMN,
                                      pa.array([MISSING_UNIT_REASON] * rejected.num_rows, pa.string()))
    return table.filter(pc.invert(missing)), rejected


def keep_best_per_unit(table: pa.Table, column: str, priorities: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """The highest-priority row of each unit (ids must be non-null), and its priority; vectorised."""
    if table.num_rows == 0:
        return table, priorities
    units = table.column(column).combine_chunks().dictionary_encode().indices.to_numpy(zero_copy_only=False)
    order = np.lexsort((~priorities, units))  # by unit, then priority descending
    first = np.ones(len(order), dtype=bool)
    first[1:] = units[order][1:] != units[order][:-1]
    keep = order[first]
    return table.take(pa.array(keep)), priorities[keep]


def bound_units(tables: list[pa.Table], column: str, noise_seed: Optional[int]
                ) -> tuple[list[pa.Table], Optional[pa.Table], dict[str, int]]:
    """The local reference: (one table of kept rows, rejected rows, counters)."""
    if not tables:
        return tables, None, {}
    check_unit_column(tables[0].schema, column)
    table = pa.concat_tables(tables, promote_options="permissive")
    before = table.num_rows
    table, rejected = split_missing(table, column)
    kept, _ = keep_best_per_unit(table, column, row_priorities(table, noise_seed))
    counts = {ROWS_BEFORE: before, ROWS_DROPPED: table.num_rows - kept.num_rows}
    if rejected is not None:
        counts[rejected_key(MISSING_UNIT_REASON)] = rejected.num_rows
    return [kept], rejected, counts
