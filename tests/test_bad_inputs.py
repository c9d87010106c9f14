"""Bad input from the issue-22 fault tour (references, images, records, YAML, flags, caches): each ends in
the right number or one line with exit 2 (1 for a damaged cache), never a traceback or a wrong number with
exit 0. Each test failed on the code before its fix. The stub extractor of test_faults keeps them fast."""

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_faults import StubExtractor, images, one_line_exit_2, stub  # noqa: F401, F811  (stub: a fixture)

from harness import cli
from harness.core.config import ConfigError, apply_overrides, load_yaml
from harness.core.errors import InputFileError, UserError
from harness.core.io import parse_json, read_json
from harness.data.npz import save_samples_npz
from harness.data.sources import image_files, iter_image_batches
from harness.metrics.evaluate import EvalOptions, evaluate_samples
from harness.metrics.refstats import DIGEST_KEY, META_KEY, build_reference_from_images, load_reference, sidecar_path


def _rewrite_npz(path, **members):
    """``path`` rewritten with some members replaced; every other member (the embedded metadata too) kept."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(members)
    np.savez(path, **arrays)


def _meta_bytes(meta: dict) -> np.ndarray:
    return np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8)


@pytest.fixture
def ref(tmp_path, stub):  # noqa: F811, V107  (pytest fixture injection: stub patches the extractor)
    return build_reference_from_images(
        images(30, 2), tmp_path / "ref.npz", inception=StubExtractor(), cache=False, progress=False
    )


# ---------------------------------------------------------------------------------------------- references
def test_edited_mu_is_refused_without_the_sidecar(ref, tmp_path, capsys):
    """Before: mu edited, metadata intact, sidecar gone -> loaded, another FID with exit 0 (779.78 for 277.50)."""
    samples = save_samples_npz(tmp_path / "s.npz", images(40, 1))
    opts = EvalOptions(metrics=("fid",), inception=StubExtractor(), cache=False)
    honest = evaluate_samples(samples, ref, opts).metrics["fid"]
    mu = load_reference(ref).mu
    _rewrite_npz(ref, mu=mu + 0.5)
    sidecar_path(ref).unlink()
    with pytest.raises(InputFileError, match="digest"):
        evaluate_samples(samples, ref, opts)
    one_line_exit_2(capsys, ["ref-stats", "verify", str(ref)], str(ref), "digest")
    _rewrite_npz(ref, mu=mu)  # restored: the digest matches again, without the sidecar, and so does the FID
    assert evaluate_samples(samples, ref, opts).metrics["fid"] == honest


def test_edited_metadata_is_refused(ref):
    """The digest covers the metadata too: a hand-edited weights sha256 would pass check_compatible."""
    with np.load(ref) as z:
        meta = json.loads(bytes(z[META_KEY]))
    meta["weights"]["sha256"] = "f" * 64  # the stub's is "0" * 64
    _rewrite_npz(ref, **{META_KEY: _meta_bytes(meta)})
    sidecar_path(ref).unlink()
    with pytest.raises(InputFileError, match="digest"):
        load_reference(ref)


def test_reference_built_before_the_digest_needs_its_sidecar(ref):
    from harness.core.io import sha256_file

    with np.load(ref) as z:
        meta = json.loads(bytes(z[META_KEY]))
    del meta[DIGEST_KEY]
    _rewrite_npz(ref, **{META_KEY: _meta_bytes(meta)})
    side = json.loads(sidecar_path(ref).read_text())
    sidecar_path(ref).write_text(json.dumps({**side, "npz_sha256": sha256_file(ref)}))
    assert load_reference(ref).integrity == "sidecar"  # the sidecar's file digest vouches for every byte
    sidecar_path(ref).unlink()
    with pytest.raises(InputFileError, match="without a statistics digest.*rebuild"):
        load_reference(ref)


def test_adm_reference_batch_without_our_metadata_still_loads(tmp_path):
    path = tmp_path / "VIRTUAL_imagenet256_labeled.npz"
    np.savez(path, mu=np.zeros(6), sigma=np.eye(6), mu_s=np.zeros(3), sigma_s=np.eye(3))
    r = load_reference(path)
    assert (r.kind, r.integrity, r.metadata) == ("adm-virtual-imagenet256", "none", None)


def test_embedded_source_with_a_bad_size_is_one_line(tmp_path, capsys):
    one_line_exit_2(
        capsys,
        ["ref-stats", "build", "embedded:val:abc", "--out", str(tmp_path / "r.npz")],
        "embedded:val:abc",
        "whole-number size",
    )
    assert not (tmp_path / "r.npz").exists()


# ---------------------------------------------------------------------------------------------- images
def _png(path, arr=None, *, width=0, height=0):
    """A 16-bit PNG written by hand (grey [H,W] or RGB [H,W,3] uint16), or with ``arr`` None an 8-bit grey
    header claiming ``width`` x ``height`` and no pixels (Pillow refuses a bomb from the header alone)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    if arr is None:
        header, raw = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0), b""
    else:
        header = struct.pack(">IIBBBBB", arr.shape[1], arr.shape[0], 16, 0 if arr.ndim == 2 else 2, 0, 0, 0)
        raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in arr)
    Path(path).write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def test_16bit_png_folder_gives_the_8bit_result(tmp_path, ref):
    """Before: Pillow clipped I;16 to 255 (FID 436 against 316 for the same images in 8 bits). The low
    byte is noise on purpose: v >> 8 drops it, as Pillow does for 16-bit RGB PNGs (checked below)."""
    rng = np.random.default_rng(3)
    high = rng.integers(0, 256, (12, 8, 8)).astype(np.uint16)
    wide = (high << 8) | rng.integers(0, 256, high.shape).astype(np.uint16)
    d8, d16 = tmp_path / "eight", tmp_path / "sixteen"
    d8.mkdir(), d16.mkdir()
    for i in range(len(high)):
        Image.fromarray(high[i].astype(np.uint8), "L").save(d8 / f"{i:02d}.png")
        Image.fromarray(wide[i]).save(d16 / f"{i:02d}.png")
    assert Image.open(d16 / "00.png").mode == "I;16"
    read = {d: np.concatenate(list(iter_image_batches(image_files(d), 5))) for d in (d8, d16)}
    assert np.array_equal(read[d16], read[d8])
    opts = EvalOptions(metrics=("fid",), inception=StubExtractor(), cache=False)
    assert evaluate_samples(d16, ref, opts).metrics["fid"] == evaluate_samples(d8, ref, opts).metrics["fid"]
    # the same rule as Pillow's own 16-bit RGB decoder
    rgb = np.stack([wide[0], wide[1], wide[2]], -1)
    _png(tmp_path / "rgb16.png", rgb)
    with Image.open(tmp_path / "rgb16.png") as im:
        assert im.mode == "RGB" and np.array_equal(np.asarray(im), (rgb >> 8).astype(np.uint8))


def test_decompression_bomb_is_one_line(tmp_path, ref, capsys):
    """Before: Pillow's DecompressionBombError escaped as a traceback."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(images(1, 0)[0]).save(folder / "b.png")
    _png(folder / "a_bomb.png", width=40_000, height=40_000)
    one_line_exit_2(
        capsys,
        ["eval", str(folder), str(ref), "--inception", "stub:0", "--metrics", "fid", "--out", str(tmp_path / "o")],
        "a_bomb.png",
        "decompression bomb",
    )
    from harness.data.images import read_rgb

    _png(tmp_path / "big.png", width=10_000, height=10_000)  # over Pillow's limit, under twice it: a warning there
    with pytest.raises(InputFileError, match="decompression bomb"):
        read_rgb(tmp_path / "big.png")


# ---------------------------------------------------------------------------------------------- flags
@pytest.mark.parametrize("flag", [["--batch-size", "0"], ["--kid-subset-size", "0"], ["--kid-subset-size", "-3"]])
def test_zero_counts_are_refused(tmp_path, ref, capsys, flag):
    """Before: --batch-size 0 was a traceback, --kid-subset-size 0 silently meant the default 1000."""
    samples = save_samples_npz(tmp_path / "s.npz", images(10, 1))
    with pytest.raises(SystemExit) as e:
        cli.main(["eval", str(samples), str(ref), "--inception", "stub:0", *flag])
    assert e.value.code == 2 and f"argument {flag[0]}: must be >= 1" in capsys.readouterr().err


def test_kid_subset_size_zero_is_not_the_default(tmp_path, ref):
    samples = save_samples_npz(tmp_path / "s.npz", images(10, 1))
    with pytest.raises(UserError, match="subset size >= 2"):
        evaluate_samples(
            samples, ref, EvalOptions(metrics=("kid",), inception=StubExtractor(), cache=False, kid_subset_size=0)
        )


# ---------------------------------------------------------------------------------------------- YAML
def test_duplicate_yaml_key_is_refused(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: {name: real-data}\nprotocol: {name: demo}\nprotocol: {name: imagenet256-gfid50k}\n")
    with pytest.raises(ConfigError, match=r"spec.yaml: .*duplicate key 'protocol' \(first at line 2\)"):
        load_yaml(spec)


def test_floats_without_a_dot_are_floats():
    """Before: PyYAML's YAML 1.1 pattern read 1e-2 as the string '1e-2' (and --set optim.lr=1e-2 was refused)."""
    assert apply_overrides({}, ["optim.lr=1e-2", "a=1.5e3", "b=2", "c=v1e5"]) == {
        "optim": {"lr": 0.01},
        "a": 1500.0,
        "b": 2,
        "c": "v1e5",
    }


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e999"])
def test_non_finite_override_is_one_line(tmp_path, capsys, value):
    """Before: --set model.sampling.cfg_scale=.nan was a traceback (ValueError from the spec hash)."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: {name: llamagen-tiny}\nprotocol: {name: demo}\n")
    one_line_exit_2(
        capsys,
        ["validate", str(spec), "--set", f"model.sampling.cfg_scale={value}"],
        "model.sampling.cfg_scale",
        "not a finite number",
    )


def test_binary_spec_file_is_one_line(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(bytes(range(256)) * 4)
    one_line_exit_2(capsys, ["validate", str(spec)], str(spec), "not UTF-8")


def test_yaml_alias_bomb_in_a_claims_file_is_one_line(tmp_path, capsys):
    """Six levels of ten aliases, twice: 2x10^6 values once expanded (nine levels would be 10^9 and never end).
    Small enough that the old code expanded it in seconds and went on; the limit refuses it first."""
    lines = ["paper: p", "sources: {}", "claims: []", "inputs:", "  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 6)]
    lines += ["  b: [*a5, *a5]"]
    claims = tmp_path / "claims.yaml"
    claims.write_text("\n".join(lines) + "\n")
    one_line_exit_2(capsys, ["claims", "--claims", str(claims)], str(claims), "an alias bomb")


def test_self_containing_yaml_is_one_line(tmp_path):
    spec = tmp_path / "loop.yaml"
    spec.write_text("model: &m {name: real-data, options: *m}\n")
    with pytest.raises(ConfigError, match="contains itself"):
        load_yaml(spec)


# ---------------------------------------------------------------------------------------------- JSON and records
def test_json_reader_refuses_bad_utf8_deep_nesting_and_overflow(tmp_path):
    """The one JSON reader (records.read_record should call it: an invalid-UTF-8 record and one nested
    200k deep were tracebacks through report/compare/claims)."""
    bad = tmp_path / "a_record.json"
    bad.write_bytes(b'{"kind": "eval", "run_id": "\xff"}')
    with pytest.raises(InputFileError, match="a_record.json: not UTF-8"):
        read_json(bad)
    deep = tmp_path / "deep_record.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(InputFileError, match="deep_record.json: not valid JSON"):
        read_json(deep)
    with pytest.raises(InputFileError, match="more than 64 levels"):
        parse_json("[" * 100 + "]" * 100, "x.json")
    with pytest.raises(InputFileError, match="overflows"):
        parse_json('{"n": 1e999}', "x.json", finite=True)
    with pytest.raises(InputFileError, match="NaN"):
        parse_json('{"fid": NaN}', "x.json", finite=True)
    assert parse_json('{"n": 1e3}', "x.json", finite=True) == {"n": 1000.0}


@pytest.mark.parametrize("verb", ["report", "claims", "compare"])
def test_unreadable_record_is_one_line_through_every_verb(tmp_path, capsys, verb):
    """Before: a record of invalid UTF-8, or one nested 200k deep, was a traceback through report,
    compare and claims (records.read_record parsed JSON itself)."""
    res = tmp_path / "res"
    res.mkdir()
    for name, body in (
        ("bad_record.json", b'{"kind": "eval", "run_id": "\xff"}'),
        ("deep_record.json", b"[" * 200_000 + b"]" * 200_000),
    ):
        rec = res / name
        rec.write_bytes(body)
        argv = {
            "report": ["report", str(res), "--out", str(tmp_path / "out")],
            "claims": ["claims", str(res), "--out", str(tmp_path / "claims")],
            "compare": ["compare", str(res), str(res), "--fail", "fid:+2%"],
        }[verb]
        one_line_exit_2(capsys, argv, str(rec), "not UTF-8" if name.startswith("bad") else "not valid JSON")
        rec.unlink()


def _record(folder: Path, name="eval_record.json", **fields):
    folder.mkdir(parents=True, exist_ok=True)
    rec = {"kind": "eval", "run_id": name, "label": name.split("_")[0], "metrics": {"fid": 10.0}, **fields}
    (folder / name).write_text(json.dumps(rec))
    return folder / name


def test_record_with_huge_sample_count_is_one_line(tmp_path, capsys):
    """Before: samples.n = 1e999 (JSON reads inf) was an OverflowError traceback in report."""
    rec = _record(tmp_path / "res")
    rec.write_text(rec.read_text().replace('"metrics"', '"samples": {"n": 1e999}, "metrics"'))
    one_line_exit_2(capsys, ["report", str(tmp_path / "res"), "--out", str(tmp_path / "out")], str(rec), "samples.n")


def test_report_reads_samples_only_inside_the_results(tmp_path, capsys):
    """A record may name any file: a valid samples npz outside the results given is not read (before: it
    was drawn), and an object array inside them is one line (before: a traceback)."""
    outside = save_samples_npz(tmp_path / "elsewhere" / "samples.npz", images(8, 1), np.arange(8) % 2)
    res = tmp_path / "res"
    _record(res, samples={"npz": str(outside)})
    assert cli.main(["report", str(res), "--out", str(tmp_path / "out")]) == 0
    assert "outside the results given" in capsys.readouterr().out
    assert not list((tmp_path / "out").glob("grid_*"))
    inside = res / "obj.npz"
    np.savez(inside, arr_0=np.array([{"a": 1}], dtype=object))
    _record(res, samples={"npz": str(inside)})
    one_line_exit_2(capsys, ["report", str(res), "--out", str(tmp_path / "out2")], str(inside), "uint8")


def test_negative_label_is_refused_naming_the_file(tmp_path, capsys):
    """Before: label -1 was drawn under the last class's name (Python's [-1]), exit 0."""
    res = tmp_path / "res"
    npz = save_samples_npz(res / "samples.npz", images(6, 1), np.array([0, 1, -1, 0, 1, 0]))
    _record(res, samples={"npz": str(npz)}, protocol={"name": "demo"})
    one_line_exit_2(capsys, ["report", str(res), "--out", str(tmp_path / "out")], str(npz), "labels[2] is -1")


# ---------------------------------------------------------------------------------------------- caches
def test_damaged_weights_cache_is_reported_and_rebuilt(tmp_path, monkeypatch, capsys):
    """Before: `cache list --verify` exited 0 on damage, and a flipped byte in the converted weights (which
    still loads) gave features of another network, blamed on the reference."""
    from harness.metrics.weights import resolve_weights

    monkeypatch.setenv("ALITOK_BENCH_CACHE", str(tmp_path))
    good = resolve_weights("random:0")
    assert cli.main(["cache", "list", "--verify"]) == 0
    data = bytearray(good.path.read_bytes())
    data[len(data) // 2] ^= 0x40  # in the tensor bytes: torch.load still succeeds
    good.path.write_bytes(bytes(data))
    st = good.path.stat()
    os.utime(good.path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # sha256_file memoises on mtime in-process
    capsys.readouterr()
    assert cli.main(["cache", "list", "--verify"]) == 1
    assert good.path.name in capsys.readouterr().err
    again = resolve_weights("random:0")
    assert again.sha256 == good.sha256
    assert f"{good.path}" in capsys.readouterr().err
    assert cli.main(["cache", "list", "--verify"]) == 0
