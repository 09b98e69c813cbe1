"""PackedGraphs (molmtl.graphs) against PyG's Batch on the same graphs."""

import subprocess
import sys

import pytest
import torch
from torch_geometric.data import Batch, Data

from molmtl import featurizers
from molmtl.graphs import PackedGraphs
from tests.featurizers.molecule_sets import DIVERSE_SMILES


def random_graphs(n_graphs: int, with_pos: bool, seed: int = 0) -> list[Data]:
    generator = torch.Generator().manual_seed(seed)
    graphs = []
    for _ in range(n_graphs):
        n = int(torch.randint(1, 8, (1,), generator=generator))
        m = int(torch.randint(0, 12, (1,), generator=generator))
        data = Data(
            x=torch.randn(n, 3, generator=generator),
            edge_index=torch.randint(0, n, (2, m), generator=generator),
            edge_attr=torch.randn(m, 2, generator=generator),
        )
        if with_pos:
            data.pos = torch.randn(n, 3, generator=generator)
        graphs.append(data)
    return graphs


INDEXES = [[0], [3, 1, 4, 1, 5], list(range(20)), [19, 0], []]


@pytest.mark.parametrize("index", INDEXES)
@pytest.mark.parametrize("with_pos", [False, True])
def test_batch_equals_pyg_batch(index, with_pos):
    graphs = random_graphs(20, with_pos)
    packed = PackedGraphs.from_data_list(graphs)
    got = packed.batch(torch.tensor(index, dtype=torch.long))
    if not index:
        assert got.num_graphs == 0 and got.x.shape == (0, 3)
        return
    expected = Batch.from_data_list([graphs[i] for i in index])
    assert got.num_graphs == len(index)
    for name in ("x", "edge_index", "edge_attr", "batch") + (("pos",) if with_pos else ()):
        assert torch.equal(getattr(got, name), getattr(expected, name)), name
    assert got.pos is None or with_pos


def test_featurized_molecules_batch_like_pyg():
    packed = featurizers.get().featurize_many(DIVERSE_SMILES).graphs
    index = torch.randperm(len(packed), generator=torch.Generator().manual_seed(1))[:10]
    expected = Batch.from_data_list([packed.get(int(i)) for i in index])
    got = packed.batch(index)
    assert torch.equal(got.x, expected.x) and torch.equal(got.edge_index, expected.edge_index)
    assert torch.equal(got.edge_attr, expected.edge_attr) and torch.equal(got.batch, expected.batch)


@pytest.mark.parametrize("batch_size", [1, 3, 100])
def test_batches_equal_batch_of_each_chunk(batch_size):
    packed = PackedGraphs.from_data_list(random_graphs(10, with_pos=True))
    index = torch.tensor([7, 2, 2, 9, 0, 5, 3])
    chunks = list(packed.batches(index, batch_size))
    assert [len(device_chunk) for device_chunk, _ in chunks] == [
        len(part) for part in index.split(batch_size)
    ]
    for (device_chunk, batch), part in zip(chunks, index.split(batch_size), strict=True):
        assert torch.equal(device_chunk, part)
        expected = packed.batch(part)
        for field in ("x", "edge_index", "edge_attr", "pos", "batch"):
            assert torch.equal(getattr(batch, field), getattr(expected, field)), field
        assert batch.num_graphs == expected.num_graphs


@pytest.mark.parametrize("index", INDEXES[:4])
def test_select_then_get_is_get(index):
    graphs = random_graphs(20, with_pos=True)
    selected = PackedGraphs.from_data_list(graphs).select(torch.tensor(index))
    assert len(selected) == len(index)
    for position, i in enumerate(index):
        for name in ("x", "edge_index", "edge_attr", "pos"):
            assert torch.equal(selected.get(position)[name], graphs[i][name])


def test_save_load_is_tensor_only(tmp_path):
    packed = PackedGraphs.from_data_list(random_graphs(5, with_pos=True))
    packed.save(tmp_path / "graphs.pt")
    state = torch.load(tmp_path / "graphs.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    loaded = PackedGraphs.load(tmp_path / "graphs.pt")
    assert torch.equal(loaded.x, packed.x) and torch.equal(loaded.pos, packed.pos)
    assert torch.equal(loaded.edge_ptr, packed.edge_ptr)


def test_to_keeps_host_pointers_and_len():
    packed = PackedGraphs.from_data_list(random_graphs(4, with_pos=False)).to("cpu")
    assert len(packed) == 4 and packed.pos is None
    assert packed.batch(torch.tensor([2, 0])).num_graphs == 2


def test_get_out_of_range():
    packed = PackedGraphs.from_data_list(random_graphs(3, with_pos=False))
    with pytest.raises(IndexError, match="graph index 3 out of range for 3 graphs"):
        packed.get(3)


@pytest.mark.gpu
def test_batch_on_cuda_matches_cpu():
    graphs = random_graphs(20, with_pos=True)
    packed = PackedGraphs.from_data_list(graphs)
    index = torch.tensor([3, 1, 4, 1, 5])
    cpu, gpu = packed.batch(index), packed.to("cuda").batch(index)
    assert torch.equal(cpu.x, gpu.x.cpu()) and torch.equal(cpu.edge_index, gpu.edge_index.cpu())


def test_graphs_is_a_leaf_module():
    # Featurizers, data and nn all import these containers, so they must import nothing of molmtl.
    code = (
        "import sys, molmtl.graphs;"
        "loaded = sorted(m for m in sys.modules if m.startswith('molmtl'));"
        "assert loaded == ['molmtl', 'molmtl._version', 'molmtl.graphs'], loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_data_re_exports_the_containers():
    import molmtl.data
    import molmtl.graphs

    assert molmtl.data.PackedGraphs is molmtl.graphs.PackedGraphs
    assert molmtl.data.GraphBatch is molmtl.graphs.GraphBatch
