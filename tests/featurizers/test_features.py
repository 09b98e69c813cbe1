import numpy as np
import pytest

from molmtl.featurizers.features import Feature, encode, markdown_table, total_dim

ONE_HOT = Feature("charge", "formal charge", values=(-1, 0, 1), other=True)
CLOSED = Feature("element", "element", values=(6, 1), labels=("C", "H"))
SCALAR = Feature("mass", "mass", scale=0.5)


@pytest.mark.parametrize("raw", [-1, 0, 1, 5, -7])
def test_one_hot_has_exactly_one_column_set(raw):
    out = encode([ONE_HOT, SCALAR], np.array([[raw, 4.0]]))
    assert out.shape == (1, 5)
    assert out[0, :4].sum() == 1
    expected_column = {-1: 0, 0: 1, 1: 2}.get(raw, 3)
    assert out[0, expected_column] == 1
    assert out[0, 4] == 2.0


def test_unsorted_values_keep_declared_column_order():
    out = encode([CLOSED], np.array([[1], [6]]))
    np.testing.assert_array_equal(out, [[0, 1], [1, 0]])


def test_value_outside_closed_feature_is_an_error():
    with pytest.raises(ValueError, match=r"element.*\[8\]"):
        encode([CLOSED], np.array([[8]]))


def test_dims_and_table_agree():
    features = [ONE_HOT, CLOSED, SCALAR]
    assert total_dim(features) == 4 + 2 + 1
    table = markdown_table(features)
    assert "| 0–3 | `charge` | 4 | -1, 0, 1, other |" in table
    assert "| 6 | `mass` | 1 | scalar × 0.5 |" in table
    assert "**7**" in table
