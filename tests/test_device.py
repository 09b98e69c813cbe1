"""molmtl._device: the device choice shared by training and prediction."""

import pytest
import torch

from molmtl._device import resolve_device


@pytest.mark.parametrize("name", [None, "auto"])
def test_auto_picks_cuda_when_available(name):
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(name).type == expected


def test_named_devices_pass_through():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_unknown_device_is_named():
    with pytest.raises(ValueError, match="'gpu0'"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_says_so():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


@pytest.mark.parametrize("name", ["meta", "mps"])
def test_devices_molmtl_does_not_run_on_are_named_with_their_use(name):
    with pytest.raises(ValueError, match=f"'{name}' is not supported for prediction"):
        resolve_device(name, use="prediction")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_cuda_index_without_cuda_says_so():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda:7")
