"""Datasets of featurized molecules: packed graphs, loaders, splits, target scaling, caching."""

from molmtl.data.packed import GraphBatch, PackedGraphs

__all__ = ["GraphBatch", "PackedGraphs"]
