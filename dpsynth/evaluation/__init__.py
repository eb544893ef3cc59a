"""Evaluation of DP synthetic embeddings: the fixed MLP, DP baselines, dataset loaders, reports."""
