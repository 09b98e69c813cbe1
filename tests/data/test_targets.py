import numpy as np
import pytest

from molmtl.data import QM9_DEFAULT_TASKS, QM9_TARGETS, load_qm9, qm9_targets

#: PyG's QM9 ``dataset[0].y`` (gdb_1, methane) in PyG's target order and units
PYG_GDB_1 = {
    "mu": 0.0, "alpha": 13.21, "homo": -10.5499, "lumo": 3.1865, "gap": 13.7363, "r2": 35.3641,
    "zpve": 1.2177, "u0": -1101.4878, "u298": -1101.4098, "h298": -1101.3840, "g298": -1102.0229,
    "cv": 6.469, "u0_atom": -17.1722, "u298_atom": -17.2868, "h298_atom": -17.3897,
    "g298_atom": -16.1519, "A": 157.7118, "B": 157.70997, "C": 157.70699,
}  # fmt: skip


def test_nineteen_targets_and_benchmark_order():
    assert len(QM9_TARGETS) == 19
    assert [t.name for t in qm9_targets()] == list(QM9_DEFAULT_TASKS)
    assert QM9_DEFAULT_TASKS == (
        "mu", "alpha", "homo", "lumo", "r2", "zpve", "u0_atom", "u298_atom", "h298_atom", "g298_atom", "cv",
    )  # fmt: skip


@pytest.mark.parametrize("name", ["homo", "lumo", "zpve", "u0_atom", "g298_atom"])
def test_benchmark_energies_reported_in_mev(name):
    target = QM9_TARGETS[name]
    assert (target.unit, target.report_unit, target.report_scale) == ("eV", "meV", 1000.0)


@pytest.mark.parametrize("bad", [["homo", "nope"], ["mu", "mu"]])
def test_bad_target_lists(bad):
    with pytest.raises(ValueError, match=r"nope|duplicate"):
        qm9_targets(bad)


def test_target_string_instead_of_list():
    with pytest.raises(TypeError, match="list of names"):
        qm9_targets("homo")


def test_units_on_gdb_1_match_pyg(qm9_small_dir, tmp_path):
    dataset = load_qm9(qm9_small_dir, targets=list(PYG_GDB_1), cache_dir=tmp_path)
    assert dataset.ids[0] == "gdb_1"
    np.testing.assert_allclose(dataset.y[0].numpy(), list(PYG_GDB_1.values()), rtol=2e-5, atol=1e-4)
