"""Datasets of featurized molecules: loaders, splits, target scaling, caching.

``PackedGraphs`` and ``GraphBatch`` live in the leaf module :mod:`molmtl.graphs` (featurizers
build them, so they sit below this package) and are re-exported here.

>>> from molmtl import data
>>> dataset = data.load_qm9()                      # 11 benchmark targets, 2D graphs, cached
>>> split = data.qm9_benchmark_split(len(dataset), seed=0)
>>> scaler = data.TargetScaler().fit(dataset.y[split.train])
"""

from molmtl.data.cache import CacheWarning, FeaturizationCache, default_cache_dir
from molmtl.data.dataset import MoleculeDataset, fit_domain, load_csv
from molmtl.data.download import DownloadError, RemoteFile
from molmtl.data.qm9 import Qm9NotFoundError, load_qm9, locate_qm9
from molmtl.data.scaling import TargetScaler
from molmtl.data.splits import Split, qm9_benchmark_split, random_split, scaffold_split
from molmtl.data.targets import QM9_DEFAULT_TASKS, QM9_TARGETS, TargetInfo, qm9_targets
from molmtl.graphs import GraphBatch, PackedGraphs

__all__ = [
    "QM9_DEFAULT_TASKS",
    "QM9_TARGETS",
    "CacheWarning",
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
    "fit_domain",
    "load_csv",
    "load_qm9",
    "locate_qm9",
    "qm9_benchmark_split",
    "qm9_targets",
    "random_split",
    "scaffold_split",
]
