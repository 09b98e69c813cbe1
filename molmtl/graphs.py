"""The graph containers every layer shares: PackedGraphs (a dataset's graphs) and GraphBatch.

Storing graphs packed (instead of a list of PyG ``Data``) makes a mini-batch a handful of
gathers on the tensors' device, with no Python loop over molecules.

This module imports nothing else of molmtl: featurizers build these containers, the data layer
stores them, encoders read them, so they sit below all of those (as PyG's ``Data`` does).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor
from torch_geometric.data import Data

FORMAT_VERSION = 1


class GraphBatch(NamedTuple):
    """A mini-batch of graphs, ready for a PyG-style encoder.

    Attributes:
        x: ``[num_nodes, node_dim]`` float32 node features.
        edge_index: ``[2, num_edges]`` long, node indices global to the batch.
        edge_attr: ``[num_edges, edge_dim]`` float32 edge features.
        pos: ``[num_nodes, 3]`` float32 coordinates, or None for 2D graphs.
        batch: ``[num_nodes]`` long, graph of each node (0 .. num_graphs - 1).
        num_graphs: number of graphs in the batch.
    """

    x: Tensor
    edge_index: Tensor
    edge_attr: Tensor
    pos: Tensor | None
    batch: Tensor
    num_graphs: int


def _gather_ranges(starts: Tensor, counts: Tensor, total: int) -> tuple[Tensor, Tensor]:
    """Concatenated ranges ``starts[b] .. starts[b] + counts[b]`` and the owner ``b`` of each.

    ``total`` (= ``counts.sum()``, known on the host) sizes the output without a device sync.
    Returns ``[total]`` source positions and ``[total]`` owners.
    """
    owners = torch.arange(counts.shape[0], device=counts.device)
    owner = torch.repeat_interleave(owners, counts, output_size=total)
    rank = torch.arange(total, device=counts.device) - _exclusive_cumsum(counts)[owner]
    return starts[owner] + rank, owner


def _exclusive_cumsum(counts: Tensor) -> Tensor:
    return torch.cumsum(counts, 0) - counts


class PackedGraphs:
    """All graphs of a dataset concatenated.

    Attributes:
        x: ``[total_nodes, node_dim]`` float32.
        edge_index: ``[2, total_edges]`` long, node indices *local to each graph*.
        edge_attr: ``[total_edges, edge_dim]`` float32.
        pos: ``[total_nodes, 3]`` float32 or None.
        node_ptr: ``[G + 1]`` long, graph ``g`` owns nodes ``node_ptr[g]:node_ptr[g + 1]``.
        edge_ptr: ``[G + 1]`` long, graph ``g`` owns edges ``edge_ptr[g]:edge_ptr[g + 1]``.

    Host (CPU) copies of the pointers are kept alongside, so that :meth:`batch` knows the
    output sizes without reading the device.
    """

    def __init__(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor,
        node_ptr: Tensor,
        edge_ptr: Tensor,
        pos: Tensor | None = None,
    ) -> None:
        if node_ptr.shape != edge_ptr.shape or node_ptr.dim() != 1:
            raise ValueError(
                f"node_ptr {tuple(node_ptr.shape)} and edge_ptr {tuple(edge_ptr.shape)} must both be [G + 1]"
            )
        self.x = x
        self.edge_index = edge_index
        self.edge_attr = edge_attr
        self.pos = pos
        self.node_ptr = node_ptr
        self.edge_ptr = edge_ptr
        self._node_ptr_host = node_ptr.detach().cpu()
        self._edge_ptr_host = edge_ptr.detach().cpu()
        self._node_counts = node_ptr[1:] - node_ptr[:-1]
        self._edge_counts = edge_ptr[1:] - edge_ptr[:-1]
        self._node_counts_host = self._node_ptr_host[1:] - self._node_ptr_host[:-1]
        self._edge_counts_host = self._edge_ptr_host[1:] - self._edge_ptr_host[:-1]
        if (
            int(self._node_ptr_host[-1]) != x.shape[0]
            or int(self._edge_ptr_host[-1]) != edge_index.shape[1]
        ):
            raise ValueError(
                f"pointers end at {int(self._node_ptr_host[-1])} nodes / {int(self._edge_ptr_host[-1])} edges "
                f"but x has {x.shape[0]} rows and edge_index {edge_index.shape[1]} columns"
            )

    @property
    def device(self) -> torch.device:
        return self.x.device

    @property
    def node_dim(self) -> int:
        return self.x.shape[1]

    @property
    def edge_dim(self) -> int:
        return self.edge_attr.shape[1]

    @property
    def num_nodes(self) -> Tensor:
        """``[G]`` long (host copy): number of nodes of each graph."""
        return self._node_counts_host

    def __len__(self) -> int:
        return self._node_ptr_host.shape[0] - 1

    def __repr__(self) -> str:
        pos = "" if self.pos is None else ", pos"
        return (
            f"PackedGraphs({len(self)} graphs, {self.x.shape[0]} nodes x {self.node_dim}, "
            f"{self.edge_index.shape[1]} edges x {self.edge_dim}{pos}, device={self.device})"
        )

    @classmethod
    def from_data_list(cls, graphs: list[Data]) -> PackedGraphs:
        """Pack PyG ``Data`` objects (each with local ``edge_index``)."""
        node_counts = torch.tensor([g.num_nodes for g in graphs], dtype=torch.long)
        edge_counts = torch.tensor([g.edge_index.shape[1] for g in graphs], dtype=torch.long)
        zero = torch.zeros(1, dtype=torch.long)
        pos = (
            torch.cat([g.pos for g in graphs])
            if graphs and graphs[0].get("pos") is not None
            else None
        )
        return cls(
            x=torch.cat([g.x for g in graphs]),
            edge_index=torch.cat([g.edge_index for g in graphs], dim=1),
            edge_attr=torch.cat([g.edge_attr for g in graphs]),
            node_ptr=torch.cat([zero, node_counts.cumsum(0)]),
            edge_ptr=torch.cat([zero, edge_counts.cumsum(0)]),
            pos=pos,
        )

    def get(self, i: int) -> Data:
        """Graph ``i`` as a PyG ``Data`` (views into the packed tensors)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"graph index {i} out of range for {len(self)} graphs")
        i = i % len(self)
        n0, n1 = int(self._node_ptr_host[i]), int(self._node_ptr_host[i + 1])
        e0, e1 = int(self._edge_ptr_host[i]), int(self._edge_ptr_host[i + 1])
        data = Data(
            x=self.x[n0:n1], edge_index=self.edge_index[:, e0:e1], edge_attr=self.edge_attr[e0:e1]
        )
        if self.pos is not None:
            data.pos = self.pos[n0:n1]
        return data

    def _gather(
        self, index_host: Tensor, index_device: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Gather indices for the graphs ``index`` (given on the host and on ``self.device``).

        Returns node_src ``[n]``, node_graph ``[n]``, edge_src ``[m]``, edge_graph ``[m]``,
        node_counts ``[B]`` and edge_counts ``[B]`` of the selection.
        """
        total_nodes = int(self._node_counts_host[index_host].sum())
        total_edges = int(self._edge_counts_host[index_host].sum())
        node_counts = self._node_counts[index_device]
        edge_counts = self._edge_counts[index_device]
        node_src, node_graph = _gather_ranges(self.node_ptr[index_device], node_counts, total_nodes)
        edge_src, edge_graph = _gather_ranges(self.edge_ptr[index_device], edge_counts, total_edges)
        return node_src, node_graph, edge_src, edge_graph, node_counts, edge_counts

    def batch(self, index: Tensor) -> GraphBatch:
        """Mini-batch of the graphs ``index``, built on ``self.device`` by gathering.

        Args:
            index: ``[B]`` long graph indices. Pass a CPU tensor (e.g. a slice of a CPU
                ``randperm``): output sizes then come from host pointers without any device
                sync. A device tensor works too but costs one device-to-host copy.
        """
        index = torch.as_tensor(index, dtype=torch.long)
        return self._batch(index.cpu(), index.to(self.device, non_blocking=True))

    def batches(
        self, index: Tensor, batch_size: int | list[int]
    ) -> Iterator[tuple[Tensor, GraphBatch]]:
        """Mini-batches of the graphs ``index`` in order, ``batch_size`` graphs each.

        Args:
            index: ``[N]`` CPU long graph indices, copied to the device once for all batches.
            batch_size: graphs per batch, or the size of each batch in turn (summing to N;
                a size may be 0, giving an empty batch).

        Yields:
            ``[B]`` the batch's indices on ``self.device`` (to gather its labels) and the batch.
        """
        index = torch.as_tensor(index, dtype=torch.long).cpu()
        index_device = index.to(self.device, non_blocking=True)
        for host_chunk, device_chunk in zip(
            index.split(batch_size), index_device.split(batch_size), strict=True
        ):
            yield device_chunk, self._batch(host_chunk, device_chunk)

    def _batch(self, index_host: Tensor, index_device: Tensor) -> GraphBatch:
        node_src, node_graph, edge_src, edge_graph, node_counts, _ = self._gather(
            index_host, index_device
        )
        node_offset = _exclusive_cumsum(node_counts)
        edge_index = self.edge_index[:, edge_src] + node_offset[edge_graph]
        return GraphBatch(
            x=self.x[node_src],
            edge_index=edge_index,
            edge_attr=self.edge_attr[edge_src],
            pos=None if self.pos is None else self.pos[node_src],
            batch=node_graph,
            num_graphs=int(node_counts.shape[0]),
        )

    def select(self, index: Tensor | list[int]) -> PackedGraphs:
        """A new PackedGraphs holding the graphs ``index``, in that order."""
        index = torch.as_tensor(index, dtype=torch.long)
        node_src, _, edge_src, _, node_counts, edge_counts = self._gather(
            index.cpu(), index.to(self.device)
        )
        zero = torch.zeros(1, dtype=torch.long, device=self.device)
        return PackedGraphs(
            x=self.x[node_src],
            edge_index=self.edge_index[:, edge_src],
            edge_attr=self.edge_attr[edge_src],
            node_ptr=torch.cat([zero, node_counts.cumsum(0)]),
            edge_ptr=torch.cat([zero, edge_counts.cumsum(0)]),
            pos=None if self.pos is None else self.pos[node_src],
        )

    def to(self, device: torch.device | str) -> PackedGraphs:
        """Copy of the graphs on ``device`` (host pointer copies are reused, not re-read)."""
        moved = PackedGraphs.__new__(PackedGraphs)
        for name, value in vars(self).items():
            on_host = name.endswith("_host")
            setattr(moved, name, value if on_host or value is None else value.to(device))
        return moved

    def state_dict(self) -> dict[str, Tensor]:
        """The tensors only (no Python objects), for ``torch.save`` / ``torch.load(weights_only=True)``."""
        state = {
            "format_version": torch.tensor(FORMAT_VERSION),
            "x": self.x,
            "edge_index": self.edge_index,
            "edge_attr": self.edge_attr,
            "node_ptr": self.node_ptr,
            "edge_ptr": self.edge_ptr,
        }
        if self.pos is not None:
            state["pos"] = self.pos
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> PackedGraphs:
        """The graphs of a :meth:`state_dict`; raises ``ValueError`` for another format version."""
        version = int(state.get("format_version", torch.tensor(-1)))
        if version != FORMAT_VERSION:
            raise ValueError(
                f"packed-graph format version {version}, this code reads version {FORMAT_VERSION}"
            )
        return cls(
            x=state["x"],
            edge_index=state["edge_index"],
            edge_attr=state["edge_attr"],
            node_ptr=state["node_ptr"],
            edge_ptr=state["edge_ptr"],
            pos=state.get("pos"),
        )

    def save(self, path: str | Path) -> None:
        """Write :meth:`state_dict` (moved to the CPU) to ``path`` with ``torch.save``."""
        torch.save({k: v.cpu() for k, v in self.state_dict().items()}, path)

    @classmethod
    def load(
        cls, path: str | Path, map_location: str | torch.device | None = "cpu"
    ) -> PackedGraphs:
        """Read graphs written by :meth:`save`, tensors placed on ``map_location``."""
        return cls.from_state_dict(torch.load(path, map_location=map_location, weights_only=True))
