"""``alitok-bench fetch`` without a network: a loopback HTTP server started here (Range requests, a
connection dropped mid-file, a wrong body) and a Hugging Face cache laid out here in huggingface_hub's
own format, read with HF_HUB_OFFLINE=1. Nothing reaches beyond 127.0.0.1.

Each test checks what a user relies on: the final name holds either nothing or the verified file,
the ledger pins the first digest (trust on first use), a resumed transfer asks only for the rest.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from harness.core import locks
from harness.fetch import catalog, download, needs, store
from harness.fetch.catalog import CatalogFile
from harness.fetch.files import fetch_file

REPO = Path(__file__).resolve().parents[1]


class Server:
    """Serves ``files`` (URL path -> bytes) with Range support; per-path faults for the next requests."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drop_after: dict[str, list[int]] = {}  # path -> bytes to send before closing, one per request
        self.requests: list[tuple[str, str | None]] = []
        self.gate: threading.Event | None = None  # when set: each body waits for it (concurrency test)
        self.serving = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                outer.requests.append((path, self.headers.get("Range")))
                body = outer.files.get(path)
                if body is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                rng = self.headers.get("Range")
                if rng and self.headers.get("If-Range", '"v1"') == '"v1"':
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                self.send_response(status)
                self.send_header("ETag", '"v1"')
                self.send_header("Content-Length", str(len(body) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                outer.serving.set()
                if outer.gate is not None:
                    outer.gate.wait(30)
                cut = outer.drop_after.get(path)
                if cut:
                    n = cut.pop(0)
                    self.wfile.write(body[start : start + n])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)  # the transfer dies mid-file
                    return
                self.wfile.write(body[start:])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def gets(self, path: str) -> list[str | None]:
        return [r for p, r in self.requests if p == path]


@pytest.fixture()
def server():
    s = Server()
    yield s
    s.httpd.shutdown()


def _body(n: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(n))


def _entry(server: Server, body: bytes, name: str = "model.pt", **kw) -> CatalogFile:
    server.files[f"/files/{name}"] = body
    return CatalogFile(name, "test file", "url", "test", url=f"{server.base}/files/{name}", **kw)


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.endswith((".partial", ".tmp", ".partial.json")))


def test_resume_after_an_interrupted_transfer_asks_only_for_the_rest(tmp_path, server):
    body = _body(300_000)
    entry = _entry(server, body)
    server.drop_after["/files/model.pt"] = [100_000]
    with pytest.raises(download.DownloadError, match="run fetch again to resume"):
        fetch_file(entry, tmp_path, retries=0)
    assert not (tmp_path / "model.pt").exists()  # nothing under the final name
    assert download.partial_path(tmp_path / "model.pt").stat().st_size == 100_000
    out = fetch_file(entry, tmp_path, retries=0)  # the next run resumes
    assert out.status == "fetched" and (tmp_path / "model.pt").read_bytes() == body
    assert server.gets("/files/model.pt") == [None, "bytes=100000-"]
    assert store.read_ledger(tmp_path)["model.pt"]["sha256"] == _sha(body)
    assert _leftovers(tmp_path) == []


def test_retries_resume_within_one_fetch(tmp_path, server):
    body = _body(200_000, 3)
    entry = _entry(server, body)
    server.drop_after["/files/model.pt"] = [50_000, 70_000]  # two drops, then the rest
    out = fetch_file(entry, tmp_path, retries=3)
    assert out.status == "fetched" and (tmp_path / "model.pt").read_bytes() == body
    assert server.gets("/files/model.pt") == [None, "bytes=50000-", "bytes=120000-"]


def test_wrong_body_against_a_pinned_digest_leaves_nothing(tmp_path, server):
    good = _body(10_000)
    entry = _entry(server, good[:-1] + b"x", sha256=_sha(good))  # the server sends a wrong body
    with pytest.raises(store.DigestMismatch, match="not the pinned"):
        fetch_file(entry, tmp_path)
    assert not (tmp_path / "model.pt").exists() and _leftovers(tmp_path) == []
    assert store.read_ledger(tmp_path) == {}


def test_official_name_digest_prefix_refuses_another_file(tmp_path, server, monkeypatch):
    """The real Inception entry, served from the loopback mirror: its name carries sha256 prefix 6726825d."""
    entry = catalog.FILES[catalog.INCEPTION]
    monkeypatch.setenv(catalog.MIRROR_ENV, server.base)
    server.files["/toshas/torch-fidelity/releases/download/v0.2.0/" + entry.name] = _body(5000)
    with pytest.raises(store.DigestMismatch, match="does not start with 6726825d"):
        fetch_file(entry, tmp_path)
    assert not (tmp_path / entry.name).exists() and _leftovers(tmp_path) == []


def test_trust_on_first_use_refuses_a_later_different_file(tmp_path, server):
    first = _body(8000)
    entry = _entry(server, first)
    assert fetch_file(entry, tmp_path).detail == "sha256 recorded now (trust on first use)"
    (tmp_path / "model.pt").unlink()
    server.files["/files/model.pt"] = _body(8000, seed=5)  # upstream file changed
    with pytest.raises(store.DigestMismatch, match="trust on first use"):
        fetch_file(entry, tmp_path)
    assert not (tmp_path / "model.pt").exists() and _leftovers(tmp_path) == []
    # a damaged file found in place is refused the same way, and left for the user to look at
    (tmp_path / "model.pt").write_bytes(first[:-1] + b"\0")
    with pytest.raises(store.DigestMismatch, match="trust on first use"):
        fetch_file(entry, tmp_path)


def test_a_file_already_present_is_verified_not_downloaded(tmp_path, server):
    body = _body(4000)
    entry = _entry(server, body)
    (tmp_path / "model.pt").write_bytes(body)
    out = fetch_file(entry, tmp_path)
    assert out.status == "present" and server.requests == []
    assert store.read_ledger(tmp_path)["model.pt"]["sha256"] == _sha(body)
    assert fetch_file(entry, tmp_path).detail == "sha256 as recorded on first use"


def test_two_concurrent_fetches_of_one_file_download_it_once(tmp_path, server):
    body = _body(50_000)
    entry = _entry(server, body)
    server.gate = threading.Event()
    results, errors = [], []

    def go():
        try:
            results.append(fetch_file(entry, tmp_path))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t1 = threading.Thread(target=go)
    t1.start()
    assert server.serving.wait(30)  # the first transfer is under way and holds the file's lock
    with pytest.raises(locks.FolderInUse):
        locks.acquire(tmp_path, name=".model.pt.lock").release()
    t2 = threading.Thread(target=go)
    t2.start()
    t2.join(0.5)
    assert t2.is_alive()  # blocked on the lock: it cannot finish before the first transfer
    server.gate.set()
    t1.join(30)
    t2.join(30)
    assert errors == [] and sorted(r.status for r in results) == ["fetched", "present"]
    assert len(server.gets("/files/model.pt")) == 1
    assert (tmp_path / "model.pt").read_bytes() == body


def _cli(args: list[str], env: dict[str, str], *, fsize: int | None = None) -> subprocess.CompletedProcess:
    def limit():
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    full = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run(
        [sys.executable, "-m", "harness", "fetch", *args],
        capture_output=True,
        text=True,
        env=full,
        preexec_fn=limit,
        timeout=120,
        cwd=REPO,
    )


ADM_PATH = "/diffusion/jul-2021/ref_batches/imagenet/256/VIRTUAL_imagenet256_labeled.npz"


def test_full_disk_leaves_nothing_half_written(tmp_path, server):
    """RLIMIT_FSIZE (``ulimit -f``) makes the write fail part-way, as a full disk does."""
    server.files[ADM_PATH] = _body(1 << 20)
    root = tmp_path / "w"
    root.mkdir()
    r = _cli(
        ["VIRTUAL_imagenet256_labeled.npz", "--root", str(root)], {catalog.MIRROR_ENV: server.base}, fsize=64 * 1024
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "VIRTUAL_imagenet256_labeled.npz" in lines[0] and "File too large" in lines[0]
    assert not (root / "VIRTUAL_imagenet256_labeled.npz").exists() and _leftovers(root) == []
    r = _cli(["VIRTUAL_imagenet256_labeled.npz", "--root", str(root)], {catalog.MIRROR_ENV: server.base})
    assert r.returncode == 0, r.stderr
    assert (root / "VIRTUAL_imagenet256_labeled.npz").read_bytes() == server.files[ADM_PATH]


def _hub_cache(cache: Path, repo: str, files: dict[str, bytes], commit: str = "a" * 40) -> None:
    """huggingface_hub's cache layout: blobs/<sha256>, snapshots/<commit>/<file> -> blob, refs/main."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    for name, data in files.items():
        blob = folder / "blobs" / _sha(data)
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = folder / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))


def test_hub_files_come_from_the_hub_cache_offline(tmp_path):
    cache, root = tmp_path / "hf", tmp_path / "w"
    vq, gpt = _body(3000, 1), _body(5000, 2)
    _hub_cache(cache, "FoundationVision/LlamaGen", {"vq_ds16_c2i.pt": vq, "c2i_B_256.pt": gpt})
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hfhome")}
    r = _cli(["llamagen-gpt-b", "--root", str(root)], env)
    assert r.returncode == 0, r.stderr
    assert (root / "vq_ds16_c2i.pt").read_bytes() == vq and (root / "c2i_B_256.pt").read_bytes() == gpt
    ledger = store.read_ledger(root)
    assert ledger["c2i_B_256.pt"] == {
        "sha256": _sha(gpt),
        "size": 5000,
        "source": "hf://FoundationVision/LlamaGen/c2i_B_256.pt@" + "a" * 40,
    }
    # a file the cache lacks: one line, nothing placed
    r = _cli(["vq-8", "--root", str(root)], env)
    assert r.returncode == 2 and "not in the Hugging Face cache" in r.stderr
    assert not (root / "vq_ds8_c2i.pt").exists()


def test_hub_folder_entry_places_a_diffusers_folder(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hf"
    files = {"config.json": b'{"a": 1}', "diffusion_pytorch_model.safetensors": _body(2000)}
    _hub_cache(cache, "stabilityai/sd-vae-ft-ema", files)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    for name in catalog.files_of("sd-vae-ft-ema/"):
        assert fetch_file(catalog.FILES[name], tmp_path / "w", offline=True).status == "fetched"
    assert (tmp_path / "w" / "sd-vae-ft-ema" / "config.json").read_bytes() == files["config.json"]


def test_google_drive_prints_the_manual_step_then_verifies_the_placed_file(tmp_path):
    root = tmp_path / "w"
    r = _cli(["AliTok.pth", "--root", str(root)], {})
    assert r.returncode == 1
    assert f"gdown 1Rir4QEJ_HTvZkhcnw9MTfWlSFemcGVIW -O {root / 'AliTok.pth'}" in r.stdout
    (root / "AliTok.pth").write_bytes(b"tokenizer")
    r = _cli(["AliTok.pth", "--root", str(root)], {})
    assert r.returncode == 0 and "trust on first use" in r.stdout
    assert store.read_ledger(root)["AliTok.pth"]["sha256"] == _sha(b"tokenizer")


def test_dry_run_lists_every_catalog_file_with_source_size_and_digest(tmp_path):
    r = _cli(["--all", "--dry-run", "--root", str(tmp_path / "w")], {})
    assert r.returncode == 0, r.stderr
    blocks = r.stdout.split("\n")
    for name, entry in catalog.FILES.items():
        i = blocks.index(next(b for b in blocks if b.startswith(name + "  [")))
        assert blocks[i + 2] == f"  source: {entry.source()}" and blocks[i + 3] == f"  named by: {entry.cited}"
        assert blocks[i + 4].startswith("  size: ") and blocks[i + 5].startswith(f"  digest: {entry.digest_rule()}")
    assert not (tmp_path / "w").exists()  # a dry run writes nothing


def test_dry_run_json_is_one_document_with_the_same_fields(tmp_path):
    r = _cli(["--all", "--dry-run", "--json", "--root", str(tmp_path / "w")], {})
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)  # stdout holds the document alone
    assert [f["name"] for f in doc["files"]] == list(catalog.FILES)
    for f in doc["files"]:
        entry = catalog.FILES[f["name"]]
        assert f["source"] == entry.source() and f["named_by"] == entry.cited
        assert f["digest"].startswith(entry.digest_rule()) and f["state"] in ("to fetch", "MANUAL (Google Drive)")


def test_factories_find_fetched_files_by_official_name(tmp_path, monkeypatch):
    from harness.runs.specs import ModelSpec

    monkeypatch.setenv(store.WEIGHTS_ENV, str(tmp_path))
    spec = ModelSpec("lightningdit-xl-1")
    assert needs.with_official_files(spec) == spec  # nothing there: unchanged (the factory names what it needs)
    for name in ("lightningdit-xl-imagenet256-800ep.pt", "vavae-imagenet256-f16d32-dinov2.pt", "latents_stats.pt"):
        (tmp_path / name).write_bytes(b"x")
    got = needs.with_official_files(spec)
    assert got.checkpoint == str(tmp_path / "lightningdit-xl-imagenet256-800ep.pt")
    assert got.options["latent_stats"] == str(tmp_path / "latents_stats.pt")
    explicit = ModelSpec("lightningdit-xl-1", checkpoint="/mine.pt")
    assert needs.with_official_files(explicit).checkpoint == "/mine.pt"
    rand = ModelSpec("lightningdit-xl-1", options={"random_weights": True})
    assert needs.with_official_files(rand) == rand


def test_catalog_covers_every_official_registry_entry():
    from harness.core.plugins import BUILTIN

    official = [
        n
        for kind in ("generators", "tokenizers")
        for n in BUILTIN[kind]
        if not n.endswith(("-tiny", "-trained")) and n not in ("real-data",)
    ]
    assert sorted(n for n in official if n not in catalog.NEEDS) == []
    assert sorted(n for n in catalog.NEEDS if n not in official) == []
    for files in catalog.NEEDS.values():
        for f in files.values():
            assert catalog.files_of(f) and all(n in catalog.FILES for n in catalog.files_of(f))
    assert all(e.cited for e in catalog.FILES.values())


def test_official_inception_is_found_in_the_weights_root(tmp_path, monkeypatch):
    from harness.metrics import weights

    monkeypatch.delenv("ALITOK_BENCH_INCEPTION", raising=False)
    monkeypatch.setenv(store.WEIGHTS_ENV, str(tmp_path))
    monkeypatch.setattr(weights.torch.hub, "get_dir", lambda: str(tmp_path / "no-hub"))
    assert weights.find_official() is None
    (tmp_path / catalog.INCEPTION).write_bytes(b"w")
    assert weights.find_official() == tmp_path / catalog.INCEPTION


def test_validate_prints_the_fetch_command_for_missing_official_files(tmp_path, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.setenv(store.WEIGHTS_ENV, str(tmp_path / "w"))
    spec = tmp_path / "s.yaml"
    spec.write_text("model: alitok-b\nprotocol: imagenet256-smoke5k\n")
    assert main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out
    assert (
        f"official files missing from {tmp_path / 'w'}: alitok_b.bin, AliTok.pth; "
        "get them with: alitok-bench fetch alitok-b"
    ) in out
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "alitok_b.bin").write_bytes(b"x")
    (tmp_path / "w" / "AliTok.pth").write_bytes(b"x")
    from harness.runs.specs import load_run_spec

    model = load_run_spec(str(spec)).model  # the spec resolution finds them by their official names
    assert (model.checkpoint, model.tokenizer_checkpoint) == (
        str(tmp_path / "w" / "alitok_b.bin"),
        str(tmp_path / "w" / "AliTok.pth"),
    )


def test_hub_online_path_against_a_loopback_endpoint(tmp_path, server):
    """HF_ENDPOINT on 127.0.0.1: hf_hub_download's own HEAD + GET, the way the Hub answers them."""
    body = _body(6000, 9)
    commit = "b" * 40
    path = "/FoundationVision/LlamaGen/resolve/main/vq_ds8_c2i.pt"
    server.files[path] = body

    orig = server.httpd.RequestHandlerClass

    class Hub(orig):
        def end_headers(self):
            self.send_header("X-Repo-Commit", commit)
            super().end_headers()

        def do_HEAD(self):
            self.send_response(200)
            self.send_header("ETag", f'"{_sha(body)}"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()

    server.httpd.RequestHandlerClass = Hub
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(
        HF_ENDPOINT=server.base,
        HF_HUB_CACHE=str(tmp_path / "hf"),
        HF_HOME=str(tmp_path / "hfhome"),
        PYTHONPATH=str(REPO),
    )
    r = subprocess.run(
        [sys.executable, "-m", "harness", "fetch", "vq-8", "--root", str(tmp_path / "w")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "w" / "vq_ds8_c2i.pt").read_bytes() == body and len(server.gets(path)) == 1
    assert (
        store.read_ledger(tmp_path / "w")["vq_ds8_c2i.pt"]["source"]
        == f"hf://FoundationVision/LlamaGen/vq_ds8_c2i.pt@{commit}"
    )
