"""`--public-rows`: public embeddings from the same encoder, read on the driver to fit a subspace.

These rows are the user's to publish (a public dataset, a held-out public
split), never the private input: they are read whole, so a bad row is a
one-line error naming the file rather than a dead-letter row, and nothing
about them is private. At most MAX_PUBLIC_ROWS are used (the first ones, in
file order): more rows sharpen the directions little and cost driver memory.
"""
from __future__ import annotations

import argparse
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import CompressionTypes, FileSystems

from dpsynth.errors import UserError
from dpsynth.params import SynthesisConfig
from dpsynth.subspace import DEFAULT_PUBLIC_DIM, fit_public_subspace
from dpsynth.validation import embedding_matrix, is_list_type
from transforms.readers.files import match_paths

MAX_PUBLIC_ROWS = 50_000


def add_public_rows_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("public rows (optional; no privacy cost)")
    group.add_argument("--public-rows",
                       help=f"Parquet file or glob of PUBLIC embeddings from the same encoder (never the private "
                            "rows): the mixture is then fitted in their top --public-dim directions plus each "
                            f"row's residual, and synthetic rows are drawn back in all d coordinates (the first "
                            f"{MAX_PUBLIC_ROWS:,} rows are used)")
    group.add_argument("--public-dim", type=int,
                       help=f"directions kept from --public-rows (default {DEFAULT_PUBLIC_DIM}; fewer when there "
                            "are not 2 public rows per direction, and always fewer than d)")


def read_public_rows(pattern: str, column: str, dimension: int) -> np.ndarray:
    """float64 [n, d]: the first MAX_PUBLIC_ROWS rows of the column, every problem a UserError."""
    parts, total = [], 0
    for path in match_paths(pattern):
        if total >= MAX_PUBLIC_ROWS:
            break
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
                table = pq.read_table(handle, columns=[column])
        except Exception as exc:  # noqa: BLE001 - Beam and Arrow raise many kinds for unreadable files
            raise UserError(f"--public-rows {path}: cannot read column {column!r}: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        values = table.column(column).combine_chunks()[:MAX_PUBLIC_ROWS - total]
        if not is_list_type(values.type):
            raise UserError(f"--public-rows {path}: column {column!r} is {values.type}, expected a list of numbers")
        if values.null_count:
            raise UserError(f"--public-rows {path}: {values.null_count} rows have no embedding")
        lengths = pc.list_value_length(values).to_numpy(zero_copy_only=False)
        if len(lengths) and (lengths != dimension).any():
            raise UserError(f"--public-rows {path}: embeddings of {int(lengths[lengths != dimension][0])} values, "
                            f"but the input is {dimension}-d: they must come from the same encoder")
        X = embedding_matrix(values, dimension).astype(np.float64)
        if not np.isfinite(X).all():
            raise UserError(f"--public-rows {path}: non-finite values in {column!r}")
        parts.append(X)
        total += len(X)
    if not total:
        raise UserError(f"--public-rows {pattern}: no rows")
    return np.concatenate(parts)


def with_public_subspace(config: SynthesisConfig, args: argparse.Namespace, dimension: int,
                         column: str) -> SynthesisConfig:
    """The config with the subspace of --public-rows, if given (driver side, before any private row)."""
    if args.public_rows is None:
        if args.public_dim is not None:
            raise UserError("--public-dim needs --public-rows")
        return config
    if args.public_dim is not None and args.public_dim < 1:
        raise UserError(f"--public-dim must be a positive integer, got {args.public_dim}")
    rows = read_public_rows(args.public_rows, column, dimension)
    subspace = fit_public_subspace(rows, args.public_dim, radius=config.radius, clip_mode=config.clip_mode,
                                   source=args.public_rows)
    return config.replace(subspace=subspace)

