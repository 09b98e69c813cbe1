import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The balancing tests use tiny tensors: extra threads only add contention on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
