"""benchmarks/default_path.py: the Tramer-Boneh GroupNorm map and the embed-format Parquet it writes."""
import numpy as np
import torch

from beam_pipeline import inputs
from benchmarks.default_path import group_norm, write_embed_parquet


def test_group_norm_matches_torch_groupnorm_on_the_scatternet_layout():
    x = np.random.default_rng(0).standard_normal((5, 3969)).astype(np.float32) * 3 + 1
    expected = torch.nn.GroupNorm(27, 81, affine=False)(torch.from_numpy(x).view(5, 81, 7, 7)).reshape(5, -1)
    np.testing.assert_allclose(group_norm(x), expected.numpy(), rtol=1e-4, atol=1e-4)


def test_written_parquet_reads_back_as_embed_output_with_declared_dimension(tmp_path):
    x = np.random.default_rng(1).standard_normal((20, 384)).astype(np.float32)
    y = np.arange(20) % 2
    path = tmp_path / "rows.parquet"
    write_embed_parquet(x, y, path, ("minilm", 384))
    info = inputs.inspect_parquet(str(path), "embedding", "label")
    assert info.dimension == 384
    assert info.schema.metadata[b"dpsynth.encoder"] == b"minilm"
