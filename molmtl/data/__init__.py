"""Datasets of featurized molecules: packed graphs, loaders, splits, target scaling, caching.

>>> from molmtl import data
>>> dataset = data.load_qm9()                      # 11 benchmark targets, 2D graphs, cached
>>> split = data.qm9_benchmark_split(len(dataset), seed=0)
>>> scaler = data.TargetScaler().fit(dataset.y[split.train])
"""

from molmtl.data.cache import FeaturizationCache, default_cache_dir
from molmtl.data.dataset import MoleculeDataset, load_csv
from molmtl.data.download import DownloadError, RemoteFile
from molmtl.data.packed import GraphBatch, PackedGraphs
from molmtl.data.qm9 import Qm9NotFoundError, load_qm9, locate_qm9
from molmtl.data.scaling import TargetScaler
from molmtl.data.splits import Split, qm9_benchmark_split, random_split, scaffold_split
from molmtl.data.targets import QM9_DEFAULT_TASKS, QM9_TARGETS, TargetInfo, qm9_targets

__all__ = [
    "QM9_DEFAULT_TASKS",
    "QM9_TARGETS",
    "DownloadError",
    "FeaturizationCache",
    "GraphBatch",
    "MoleculeDataset",
    "PackedGraphs",
    "Qm9NotFoundError",
    "RemoteFile",
    "Split",
    "TargetInfo",
    "TargetScaler",
    "default_cache_dir",
    "load_csv",
    "load_qm9",
    "locate_qm9",
    "qm9_benchmark_split",
    "qm9_targets",
    "random_split",
    "scaffold_split",
]
