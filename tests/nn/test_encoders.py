from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import molmtl.nn
from molmtl.nn import available_encoders, encoder_options, get_encoder

ENCODERS = available_encoders()


def test_registry_has_the_benchmark_mpnn_and_a_light_encoder():
    assert {"mpnn", "gine"} <= set(ENCODERS)


def test_mpnn_has_the_benchmark_parameter_count():
    # Nash-MTL's QM9 Net without its output layer: 616,960 shared parameters for 11/5 features.
    encoder = get_encoder("mpnn", node_dim=11, edge_dim=5)
    assert sum(p.numel() for p in encoder.parameters()) == 616_960
    assert encoder.out_dim == 64


def test_gine_is_lighter_than_mpnn():
    light = get_encoder("gine", node_dim=11, edge_dim=5)
    assert sum(p.numel() for p in light.parameters()) < 200_000


@pytest.mark.parametrize("name", ENCODERS)
def test_output_shape(name, graphs):
    encoder = get_encoder(name, node_dim=11, edge_dim=5)
    batch = graphs.batch(torch.arange(len(graphs)))
    assert encoder(batch).shape == (len(graphs), encoder.out_dim)


@pytest.mark.parametrize("name", ENCODERS)
def test_embedding_does_not_depend_on_the_rest_of_the_batch(name, graphs):
    # Reference: each molecule encoded alone. Batching and batch order must not change it.
    torch.manual_seed(0)
    encoder = get_encoder(name, node_dim=11, edge_dim=5).eval()
    order = torch.randperm(len(graphs), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        batched = encoder(graphs.batch(order))
        alone = torch.cat([encoder(graphs.batch(torch.tensor([int(i)]))) for i in order])
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ENCODERS)
def test_unknown_option_is_named(name):
    with pytest.raises(ValueError, match="no_such_option") as error:
        get_encoder(name, node_dim=11, edge_dim=5, no_such_option=1)
    assert "hidden_dim" in str(error.value)


@pytest.mark.parametrize("name", ENCODERS)
@pytest.mark.parametrize("bad", [0, -3, 2.5, "64"])
def test_bad_width_is_named(name, bad):
    with pytest.raises(ValueError, match="hidden_dim"):
        get_encoder(name, node_dim=11, edge_dim=5, hidden_dim=bad)


def test_unknown_encoder_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"available.*gine"):
        get_encoder("transformer", node_dim=11, edge_dim=5)


@pytest.mark.parametrize("name", ENCODERS)
def test_options_report_defaults(name):
    options = encoder_options(name)
    assert "hidden_dim" in options
    assert "node_dim" not in options


def test_mpnn_equals_the_published_nnconv_loop(graphs):
    # Reference: the benchmark's forward pass, calling NNConv (edge network recomputed each round).
    torch.manual_seed(0)
    encoder = get_encoder("mpnn", node_dim=11, edge_dim=5).eval()
    batch = graphs.batch(torch.arange(len(graphs)))
    with torch.no_grad():
        out = torch.relu(encoder.embed(batch.x))
        h = out.unsqueeze(0)
        for _ in range(3):
            m = torch.relu(encoder.conv(out, batch.edge_index, batch.edge_attr))
            out, h = encoder.gru(m.unsqueeze(0), h)
            out = out.squeeze(0)
        expected = torch.relu(encoder.project(encoder.readout(out, batch.batch)))
        torch.testing.assert_close(encoder(batch), expected, rtol=1e-5, atol=1e-6)


def test_listing_encoders_imports_no_torch():
    # A config validator calls available_encoders(); it must stay cheap.
    code = (
        "import sys, molmtl.nn as nn; assert nn.available_encoders() == ['gine', 'mpnn'];"
        "assert not {'torch', 'torch_geometric'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", molmtl.nn.__all__)
def test_every_public_name_is_importable(name):
    assert getattr(molmtl.nn, name) is not None


def test_unknown_attribute_is_named():
    with pytest.raises(AttributeError, match="no_such_name"):
        molmtl.nn.no_such_name  # noqa: B018
