"""The SD VAE and VA-VAE as diffusers ``AutoencoderKL`` configs (baselines/vae.py), checked against
an independent implementation of the CompVis LDM autoencoder with the released key names
(tests/ldm_vae_reference.py, written from ``ldm/modules/diffusionmodules/model.py``) and against
diffusers' own LDM converter (``diffusers.loaders.single_file_utils.convert_ldm_vae_checkpoint``).
Everything is built from config with random weights: no file, no download.
"""

import pytest
import torch
from diffusers import AutoencoderKL
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
from ldm_vae_reference import SD_VAE, VA_VAE, VAEConfig
from ldm_vae_reference import AutoencoderKL as LdmVAE

from baselines.vae import SD_SCALE_FACTOR, SD_VAE_CONFIG, VA_VAE_CONFIG, build_vae, ldm_to_diffusers, sd_decode
from harness.core.errors import UserError
from harness.nn.checkpoints.checkpoint import CheckpointError


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _meta(build):
    with torch.device("meta"):
        return build()


def diffusers_config(cfg: VAEConfig) -> dict:
    """The diffusers config of an LDM config: attention inside a level <=> Attn*Block2D there."""
    n, res = len(cfg.ch_mult), cfg.resolution
    attn = [res // 2**i in cfg.attn_resolutions for i in range(n)]  # encoder level i is at res / 2^i
    return dict(
        in_channels=3,
        out_channels=3,
        latent_channels=cfg.z_channels,
        layers_per_block=cfg.num_res_blocks,
        block_out_channels=tuple(cfg.ch * m for m in cfg.ch_mult),
        norm_num_groups=32,
        down_block_types=tuple("AttnDownEncoderBlock2D" if a else "DownEncoderBlock2D" for a in attn),
        up_block_types=tuple("AttnUpDecoderBlock2D" if a else "UpDecoderBlock2D" for a in reversed(attn)),
    )


def ldm_vae_closed_form(ch, mult, nres, attn_levels, z, embed):
    gn = lambda c: 2 * c  # noqa: E731
    conv = lambda i, o, k: i * o * k * k + o  # noqa: E731
    res = lambda i, o: gn(i) + conv(i, o, 3) + gn(o) + conv(o, o, 3) + (conv(i, o, 1) if i != o else 0)  # noqa: E731
    attn = lambda c: gn(c) + 4 * conv(c, c, 1)  # noqa: E731
    top = ch * mult[-1]
    mid = 2 * res(top, top) + attn(top)
    enc = conv(3, ch, 3)
    cin = ch
    for i, m in enumerate(mult):
        cout = ch * m
        enc += res(cin, cout) + (nres - 1) * res(cout, cout) + (nres * attn(cout) if i in attn_levels else 0)
        enc += conv(cout, cout, 3) if i != len(mult) - 1 else 0
        cin = cout
    enc += mid + gn(top) + conv(top, 2 * z, 3)
    dec = conv(z, top, 3) + mid
    cin = top
    for i in reversed(range(len(mult))):
        cout = ch * mult[i]
        dec += res(cin, cout) + nres * res(cout, cout) + ((nres + 1) * attn(cout) if i in attn_levels else 0)
        dec += conv(cout, cout, 3) if i != 0 else 0
        cin = cout
    dec += gn(ch * mult[0]) + conv(ch * mult[0], 3, 3)
    return enc + dec + conv(2 * z, 2 * embed, 1) + conv(embed, z, 1)


# ---------------------------------------------------------------------------------------- configs
def test_configs_in_code_are_the_ldm_configs():
    for ours, ldm in ((SD_VAE_CONFIG, SD_VAE), (VA_VAE_CONFIG, VA_VAE)):
        assert {k: ours[k] for k in diffusers_config(ldm)} == diffusers_config(ldm)
    assert SD_VAE_CONFIG["scaling_factor"] == SD_SCALE_FACTOR == 0.18215


def test_sd_vae_count():
    n = _count(_meta(lambda: AutoencoderKL(**SD_VAE_CONFIG)))
    assert n == ldm_vae_closed_form(128, (1, 2, 4, 4), 2, (), 4, 4) == _count(_meta(lambda: LdmVAE(SD_VAE)))
    # = 83,653,863 (three independent counts agree; no published figure is asserted here)


def test_va_vae_count_and_attention_levels():
    vae = _meta(lambda: AutoencoderKL(**VA_VAE_CONFIG))
    # attention at 16 px: encoder level 4 (256 / 2^4) and the first decoder block
    assert (
        _count(vae)
        == ldm_vae_closed_form(128, (1, 1, 2, 2, 4), 2, (4,), 32, 32)
        == _count(_meta(lambda: LdmVAE(VA_VAE)))
    )
    # = 69,836,067
    assert [len(b.attentions) if hasattr(b, "attentions") else 0 for b in vae.encoder.down_blocks] == [0, 0, 0, 0, 2]
    assert [len(b.attentions) if hasattr(b, "attentions") else 0 for b in vae.decoder.up_blocks] == [3, 0, 0, 0, 0]
    assert vae.post_quant_conv.weight.shape == (32, 32, 1, 1) and vae.encoder.conv_out.weight.shape[0] == 64


# ---------------------------------------------------------------------------------------- key map
def test_reference_has_the_released_ldm_key_names():
    """The names of sd-vae-ft-ema's LDM file (vae-ft-ema-560000-ema-pruned) that the key map reads."""
    keys = set(_meta(lambda: LdmVAE(SD_VAE)).state_dict())
    for k in [
        "encoder.conv_in.weight",
        "encoder.down.0.block.0.norm1.weight",
        "encoder.down.1.block.0.nin_shortcut.weight",
        "encoder.down.0.downsample.conv.weight",
        "encoder.mid.block_1.conv1.weight",
        "encoder.mid.attn_1.q.weight",
        "encoder.mid.attn_1.proj_out.bias",
        "encoder.norm_out.weight",
        "encoder.conv_out.weight",
        "quant_conv.weight",
        "post_quant_conv.weight",
        "decoder.conv_in.weight",
        "decoder.mid.block_2.norm2.bias",
        "decoder.up.3.block.2.conv2.weight",
        "decoder.up.3.upsample.conv.weight",
        "decoder.up.1.block.0.nin_shortcut.weight",
        "decoder.norm_out.weight",
        "decoder.conv_out.bias",
    ]:
        assert k in keys, k
    assert "decoder.up.0.upsample.conv.weight" not in keys and "encoder.down.3.downsample.conv.weight" not in keys


@pytest.mark.parametrize("ldm, ours", [(SD_VAE, SD_VAE_CONFIG), (VA_VAE, VA_VAE_CONFIG)])
def test_released_key_names_map_one_to_one_onto_diffusers(ldm, ours):
    released = _meta(lambda: LdmVAE(ldm)).state_dict()
    target = _meta(lambda: AutoencoderKL(**ours)).state_dict()
    converted = ldm_to_diffusers(dict(released), len(ldm.ch_mult))
    assert len(converted) == len(released) and set(converted) == set(target)
    assert all(tuple(converted[k].shape) == tuple(target[k].shape) for k in target)


def test_va_vae_released_names_land_in_attention_blocks():
    released = _meta(lambda: LdmVAE(VA_VAE)).state_dict()
    assert "encoder.down.4.attn.1.proj_out.weight" in released and "decoder.up.4.attn.2.q.weight" in released
    keys = (
        "encoder.down.4.attn.1.proj_out.weight",
        "decoder.up.4.attn.2.q.weight",
        "decoder.up.1.block.0.nin_shortcut.weight",
    )
    names = ldm_to_diffusers({k: torch.zeros(1) for k in keys}, 5)
    assert set(names) == {
        "encoder.down_blocks.4.attentions.1.to_out.0.weight",
        "decoder.up_blocks.0.attentions.2.to_q.weight",
        "decoder.up_blocks.3.resnets.0.conv_shortcut.weight",
    }


def test_key_map_equals_diffusers_converter_on_the_sd_layout():
    """diffusers' own single-file converter (SD layout: no attention inside levels) as the reference."""
    cfg = VAEConfig(ch=32, ch_mult=(1, 2, 2), num_res_blocks=2)
    ldm = LdmVAE(cfg)
    sd = {k: torch.full_like(v, float(i)) for i, (k, v) in enumerate(ldm.state_dict().items())}  # each entry tagged
    ours = ldm_to_diffusers(sd, 3)
    theirs = convert_ldm_vae_checkpoint(dict(sd), diffusers_config(cfg))
    assert set(ours) == set(theirs)
    for k in ours:
        torch.testing.assert_close(ours[k], theirs[k], rtol=0, atol=0, msg=k)


# ---------------------------------------------------------------------------------------- numerics
SMALL = {  # (LDM config, latent side): SD layout, and VA-VAE layout with attention inside the last level
    "sd-layout": VAEConfig(ch=32, ch_mult=(1, 2, 2), num_res_blocks=2, resolution=32),
    "va-layout": VAEConfig(
        ch=32, ch_mult=(1, 1, 2), num_res_blocks=2, attn_resolutions=(8,), z_channels=8, embed_dim=8, resolution=32
    ),
}


def _pair(cfg: VAEConfig, seed: int = 0):
    """An LDM reference with random (non-default, so every weight matters) weights and the diffusers
    model loaded from them through the key map; float64 so only a layout difference can show."""
    torch.manual_seed(seed)
    ldm = LdmVAE(cfg).double().eval()
    with torch.no_grad():
        for p in ldm.parameters():
            p.normal_(0.0, 0.15)
    ours = AutoencoderKL(**diffusers_config(cfg)).double().eval()
    ours.load_state_dict(ldm_to_diffusers(ldm.state_dict(), len(cfg.ch_mult)), strict=True)
    return ldm, ours


@pytest.mark.parametrize("name", list(SMALL))
@torch.no_grad()
def test_ldm_reference_and_diffusers_agree(name):
    cfg = SMALL[name]
    ldm, ours = _pair(cfg)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, cfg.z_channels, 8, 8, generator=g, dtype=torch.float64)
    x = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64) * 2 - 1
    ref = ldm.decode(z)
    assert ref.shape == (2, 3, 32, 32) and ref.std() > 0.1
    torch.testing.assert_close(ours.decode(z).sample, ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours.encode(x).latent_dist.mean, ldm.encode(x), rtol=0, atol=1e-5)


@torch.no_grad()
def test_cross_check_catches_a_wrong_map():
    """The comparison above can fail: swapping q and k of one attention changes the decode."""
    cfg = SMALL["va-layout"]
    ldm, ours = _pair(cfg)
    sd = ours.state_dict()
    a, b = "decoder.up_blocks.0.attentions.0.to_q.weight", "decoder.up_blocks.0.attentions.0.to_k.weight"
    sd[a], sd[b] = sd[b].clone(), sd[a].clone()
    ours.load_state_dict(sd)
    z = torch.randn(1, cfg.z_channels, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert (ours.decode(z).sample - ldm.decode(z)).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------- loading
def _small_config(cfg: VAEConfig) -> dict:
    return {**diffusers_config(cfg), "sample_size": cfg.resolution}


@torch.no_grad()
def test_loads_ldm_files_and_diffusers_folders(tmp_path):
    cfg = SMALL["va-layout"]
    ldm, _ = _pair(cfg)
    ldm = ldm.float()
    z = torch.randn(1, cfg.z_channels, 8, 8, generator=torch.Generator().manual_seed(2))
    # released-style LDM checkpoint: {"state_dict": ...} with training-only entries (discriminator, VF loss)
    sd = {
        **ldm.state_dict(),
        "loss.discriminator.main.0.weight": torch.zeros(1),
        "linear_proj.weight": torch.zeros(1),
        "foundation_model.model.blocks.0.attn.qkv.weight": torch.zeros(1),
    }
    torch.save({"state_dict": sd}, tmp_path / "vavae.pt")
    from_pt = build_vae(_small_config(cfg), tmp_path / "vavae.pt")
    torch.testing.assert_close(from_pt.decode(z).sample, ldm.decode(z), rtol=0, atol=1e-5)
    # diffusers folder, read offline by from_pretrained (and through its weights file)
    from_pt.save_pretrained(tmp_path / "folder")
    for path in (tmp_path / "folder", tmp_path / "folder" / "diffusion_pytorch_model.safetensors"):
        torch.testing.assert_close(
            build_vae(_small_config(cfg), path).decode(z).sample, ldm.decode(z), rtol=0, atol=1e-5
        )
    with pytest.raises(CheckpointError, match="config.json is not"):
        build_vae(_small_config(SMALL["sd-layout"]), tmp_path / "folder")
    # a truncated LDM file names the missing key
    sd.pop("decoder.conv_out.bias")
    torch.save(sd, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="missing keys"):
        build_vae(_small_config(cfg), tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="config.json"):
        build_vae(_small_config(cfg), tmp_path)


@torch.no_grad()
def test_dit_sd_vae_decoder_random_weights():
    """DiT / SiT wiring: diffusers AutoencoderKL of the sd-vae-ft-ema config, decode of z / 0.18215,
    same random weights on every build; without a VAE or random_weights it is a one-line UserError."""
    from baselines.dit import sd_vae_decoder

    decode, vae = sd_vae_decoder(None, "cpu", random_weights=True)
    _, again = sd_vae_decoder(None, "cpu", random_weights=True)
    assert isinstance(vae, AutoencoderKL) and _count(vae) == _count(_meta(lambda: AutoencoderKL(**SD_VAE_CONFIG)))
    assert all(torch.equal(a, b) for a, b in zip(vae.parameters(), again.parameters()))
    z = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    out = decode(z)
    assert out.shape == (1, 3, 32, 32)
    torch.testing.assert_close(out, vae.decode(z / 0.18215).sample)
    torch.testing.assert_close(sd_decode(vae, z), out)
    with pytest.raises(UserError, match="SD VAE is required"):
        sd_vae_decoder(None, "cpu", random_weights=False)


@pytest.mark.parametrize("ldm_cfg, config, side", [(SD_VAE, SD_VAE_CONFIG, 4), (VA_VAE, VA_VAE_CONFIG, 2)])
@torch.no_grad()
def test_full_configs_agree_with_the_reference(ldm_cfg, config, side):
    """The real configs at float32 (small latents keep it cheap; the layout does not depend on the size)."""
    torch.manual_seed(0)
    ldm = LdmVAE(ldm_cfg).eval()
    ours = AutoencoderKL(**config).eval()
    ours.load_state_dict(ldm_to_diffusers(ldm.state_dict(), len(ldm_cfg.ch_mult)), strict=True)
    z = torch.randn(1, ldm_cfg.z_channels, side, side, generator=torch.Generator().manual_seed(1))
    ref = ldm.decode(z)
    assert ref.std() > 0.01
    # float32: summation order differs (SDPA vs bmm attention), measured up to ~1e-5;
    # a swapped q/k moves the small-config output by > 1e-3 (test_cross_check_catches_a_wrong_map)
    torch.testing.assert_close(ours.decode(z).sample, ref, rtol=0, atol=5e-5)
