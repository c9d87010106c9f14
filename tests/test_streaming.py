"""Streamed float64 moments equal np.cov (ADM's statistics); progress bars go to stderr only on request."""

import numpy as np
import pytest

from harness.metrics.features import FLUSH_ROWS, RunningMoments, extract_features
from harness.metrics.fid import feature_statistics


@pytest.mark.parametrize("n, batch", [(7, 3), (FLUSH_ROWS * 2 + 5, 250)])
def test_running_moments_equal_np_cov(n, batch):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((n, 33)) * 3 + 1e3).astype(np.float32)  # a large offset: cancellation would show
    m = RunningMoments()
    for i in range(0, n, batch):
        m.update(x[i : i + batch])
    mu, sigma = m.result()
    mu_ref, sigma_ref = feature_statistics(x)  # np.mean + np.cov(rowvar=False), float64
    np.testing.assert_allclose(mu, mu_ref, rtol=1e-13)
    np.testing.assert_allclose(sigma, sigma_ref, rtol=1e-9, atol=1e-9 * np.abs(sigma_ref).max())
    assert sigma.dtype == np.float64 and np.array_equal(sigma, sigma.T)


def test_running_moments_need_two_rows():
    m = RunningMoments("x")
    m.update(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="at least 2"):
        m.result()


class Tiny:
    class weights:
        sha256, has_logits = "0" * 64, False

    def __call__(self, b):
        f = b.reshape(len(b), -1)[:, :6].astype(np.float32)
        return {"pool": f, "spatial": f[:, :4]}


def test_progress_bar_on_stderr_only_when_asked(capsys):
    imgs = np.random.default_rng(1).integers(0, 256, (30, 4, 4, 3), dtype=np.uint8)
    fs = extract_features(imgs, Tiny(), batch_size=10, cache=False, progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "features images" in err and fs.pool.shape == (30, 6) and fs.spatial is None
    extract_features(imgs, Tiny(), batch_size=10, cache=False)  # auto: stderr is not a terminal under pytest
    assert capsys.readouterr() == ("", "")


def test_precision_alone_equals_precision_of_both():
    from harness.metrics.prc import precision_recall

    rng = np.random.default_rng(3)
    s, r = rng.standard_normal((90, 8)).astype(np.float32), rng.standard_normal((70, 8)).astype(np.float32) + 0.3
    both = precision_recall(s, r, block_elems=200)  # many small tiles
    alone = precision_recall(s, r, which=("precision",))
    assert alone == {"precision": both["precision"]} and 0 < both["precision"] < 1 and 0 < both["recall"] < 1
