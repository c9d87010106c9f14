"""`alitok-bench recon`: tokenizer reconstructions, rFID/PSNR/SSIM/codebook stats and a record."""
import json

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from harness.cli import main
from harness.data.embedded import natural_patches


def test_recon_embedded_record_matches_independent_psnr(tmp_path, capsys):
    out = tmp_path / "recon"
    rc = main(["recon", "embedded:val:32", "--tokenizer", "alitok-tiny", "--out", str(out), "--per-class", "2",
               "--inception", "random:0", "--device", "cpu", "--no-cache"])
    assert rc == 0
    record = json.loads((out / "recon_record.json").read_text())
    real, _ = natural_patches("val", 32, per_class=2, seed=0)
    with np.load(out / "reconstructions.npz") as z:
        recon = z["arr_0"]
        assert z["labels"].tolist() == [i % 11 for i in range(22)]
    assert recon.shape == real.shape and recon.dtype == np.uint8
    expected = np.mean([peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(real, recon)])
    assert record["metrics"]["psnr"] == pytest.approx(expected, rel=1e-9)
    assert np.isfinite(record["metrics"]["rfid"]) and record["metrics"]["rfid"] > 0
    assert 0 < record["metrics"]["codebook_usage"] <= 1
    assert record["paper_comparable"] is False and record["kind"] == "recon"
    assert record["model"]["checkpoint_sha256"]
    assert (out / "recon_grid.png").stat().st_size > 0


@pytest.mark.parametrize("argv, message", [
    (["/no/such/source"], "source not found"),
    (["embedded:val:64"], "expected 32x32 images"),
    (["embedded:val:32", "--option", "bogus=1"], "unknown option"),
])
def test_recon_bad_input_one_line_error(tmp_path, capsys, argv, message):
    out = tmp_path / "r"
    rc = main(["recon", *argv, "--tokenizer", "alitok-tiny", "--out", str(out), "--per-class", "1",
               "--inception", "random:0", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1
    assert not (out / "recon_record.json").exists()
