import numpy as np
import pytest
import torch

from molmtl.data import TargetScaler

RNG = np.random.default_rng(0)
Y = RNG.normal(5.0, 3.0, size=(50, 4))
Y[RNG.random(Y.shape) < 0.3] = np.nan


def test_statistics_ignore_missing_labels():
    scaler = TargetScaler().fit(Y)
    for task in range(Y.shape[1]):
        labelled = Y[~np.isnan(Y[:, task]), task]
        assert scaler.mean_[task] == pytest.approx(labelled.mean())
        assert scaler.std_[task] == pytest.approx(labelled.std())


@pytest.mark.parametrize("as_tensor", [False, True])
def test_round_trip_keeps_nan(as_tensor):
    scaler = TargetScaler().fit(Y)
    y = torch.as_tensor(Y) if as_tensor else Y
    z = scaler.transform(y)
    assert type(z) is type(y)
    back = np.asarray(scaler.inverse_transform(z))
    np.testing.assert_allclose(back, Y, equal_nan=True)
    standardized = np.asarray(z)
    assert np.nanmean(standardized, 0) == pytest.approx(np.zeros(4), abs=1e-12)


def test_fit_uses_only_given_rows():
    train = Y[:10]
    assert TargetScaler().fit(train).mean_ == pytest.approx(
        TargetScaler().fit(Y[:10].copy()).mean_, nan_ok=True
    )
    assert not np.allclose(TargetScaler().fit(train).mean_, TargetScaler().fit(Y).mean_)


def test_degenerate_tasks_get_unit_std():
    y = np.array([[1.0, np.nan, 2.0], [1.0, np.nan, np.nan], [1.0, 3.0, np.nan]])
    scaler = TargetScaler().fit(y)
    np.testing.assert_array_equal(scaler.std_, [1.0, 1.0, 1.0])


def test_unfitted_and_bad_shape():
    with pytest.raises(RuntimeError, match="not fitted"):
        TargetScaler().transform(Y)
    with pytest.raises(ValueError, match="n_molecules, n_tasks"):
        TargetScaler().fit(np.zeros(3))


def test_state_dict_round_trip():
    scaler = TargetScaler().fit(Y)
    restored = TargetScaler.from_state_dict(scaler.state_dict())
    np.testing.assert_array_equal(restored.std_, scaler.std_)
