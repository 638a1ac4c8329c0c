"""VQGAN models: taming checkpoints mapped onto diffusers' VQModel, folders, errors, the canvas."""

from __future__ import annotations

import time

import pytest
import torch
import yaml

pytest.importorskip("diffusers", reason="the vqgan generator uses diffusers' VQModel")
from diffusers import VQModel

from text2mesh.errors import ConfigError
from text2mesh.generators.vqgan import VQGANCanvas, load_vqgan, taming_key

DDCONFIG = {"double_z": False, "z_channels": 8, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
            "ch_mult": [1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [8], "dropout": 0.0}
PARAMS = {"embed_dim": 6, "n_embed": 40, "ddconfig": DDCONFIG}


def taming_reference():
    """A small random-weight taming-transformers VQGAN, built from taming's own modules."""
    model_module = pytest.importorskip("taming.modules.diffusionmodules.model",
                                       reason="taming-transformers-rom1504 is the reference (in the dev extra)")
    quantize_module = pytest.importorskip("taming.modules.vqvae.quantize", reason="taming-transformers-rom1504")

    class Taming(torch.nn.Module):  # the parts of taming.models.vqgan.VQModel that decode and encode
        def __init__(self) -> None:
            super().__init__()
            self.encoder = model_module.Encoder(**DDCONFIG)
            self.decoder = model_module.Decoder(**DDCONFIG)
            self.quantize = quantize_module.VectorQuantizer(PARAMS["n_embed"], PARAMS["embed_dim"], beta=0.25)
            self.quant_conv = torch.nn.Conv2d(DDCONFIG["z_channels"], PARAMS["embed_dim"], 1)
            self.post_quant_conv = torch.nn.Conv2d(PARAMS["embed_dim"], DDCONFIG["z_channels"], 1)

    torch.manual_seed(0)
    model = Taming().eval()
    with torch.no_grad():  # away from the zero-initialized defaults, so every weight matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def save_taming(model, folder, params=PARAMS):
    state = {f"loss.discriminator.{k}": v for k, v in {"w": torch.zeros(2)}.items()}  # training leftovers
    torch.save({"state_dict": {**model.state_dict(), **state}, "global_step": 1}, folder / "model.ckpt")
    (folder / "model.yaml").write_text(yaml.safe_dump({"model": {"target": "taming.models.vqgan.VQModel",
                                                                 "params": params}}))
    return folder / "model.ckpt"


def test_a_taming_checkpoint_decodes_and_encodes_as_taming_does(tmp_path):
    reference = taming_reference()
    ours = load_vqgan(str(save_taming(reference, tmp_path)))
    codes = torch.randint(0, PARAMS["n_embed"], (2, 8, 8), generator=torch.Generator().manual_seed(1))
    pictures = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        expected = reference.decoder(reference.post_quant_conv(reference.quantize.embedding(codes).permute(0, 3, 1, 2)))
        decoded = ours.decode(ours.quantize.embedding(codes).permute(0, 3, 1, 2), force_not_quantize=True).sample
        encoded = ours.quant_conv(ours.encoder(pictures))
        expected_encoding = reference.quant_conv(reference.encoder(pictures))
    assert expected.std() > 0.05  # a picture, not a constant
    torch.testing.assert_close(decoded, expected, atol=1e-4, rtol=0)  # float32 reorderings only
    torch.testing.assert_close(encoded, expected_encoding, atol=1e-4, rtol=0)


def test_taming_names_map_onto_diffusers_names():
    assert taming_key("decoder.up.0.block.1.nin_shortcut.weight", 3) == "decoder.up_blocks.2.resnets.1.conv_shortcut.weight"
    assert taming_key("decoder.up.2.upsample.conv.bias", 3) == "decoder.up_blocks.0.upsamplers.0.conv.bias"
    assert taming_key("encoder.down.1.attn.0.proj_out.weight", 3) == "encoder.down_blocks.1.attentions.0.to_out.0.weight"
    assert taming_key("encoder.mid.attn_1.norm.bias", 3) == "encoder.mid_block.attentions.0.group_norm.bias"
    assert taming_key("encoder.mid.block_2.conv1.weight", 3) == "encoder.mid_block.resnets.1.conv1.weight"
    assert taming_key("loss.discriminator.main.0.weight", 3) is None


def test_a_yaml_that_does_not_match_its_checkpoint_is_one_line(tmp_path):
    path = save_taming(taming_reference(), tmp_path)
    other = {**PARAMS, "ddconfig": {**DDCONFIG, "ch_mult": [1, 2]}}
    (tmp_path / "model.yaml").write_text(yaml.safe_dump({"model": {"params": other}}))
    with pytest.raises(ConfigError, match="does not match") as info:
        load_vqgan(str(path))
    assert "\n" not in str(info.value)
    (tmp_path / "model.yaml").unlink()
    with pytest.raises(ConfigError, match="needs its .yaml"):
        load_vqgan(str(path))


@pytest.mark.parametrize("spec, message", [
    ("missing.ckpt", "checkpoint not found"),
    ("vqgan.bin", "give text2mesh-tiny-vqgan"),
    ("nobody/no-such-vqgan-model", "not cached and HF_HUB_OFFLINE is set"),
])
def test_bad_vqgan_specs_are_one_line_within_seconds(spec, message, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ConfigError, match=message) as info:
        load_vqgan(spec)
    assert "\n" not in str(info.value) and time.monotonic() - start < 5


def small_vqmodel() -> VQModel:
    torch.manual_seed(0)
    return VQModel(block_out_channels=(32, 32), layers_per_block=1, latent_channels=4, num_vq_embeddings=32,
                   vq_embed_dim=4, down_block_types=("DownEncoderBlock2D",) * 2,
                   up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=32).eval()


def test_a_diffusers_folder_loads(tmp_path):
    model = small_vqmodel()
    model.save_pretrained(tmp_path / "vq")
    loaded = load_vqgan(str(tmp_path / "vq"))
    codes = torch.randint(0, 32, (1, 4, 4))
    with torch.no_grad():
        z = model.quantize.embedding(codes).permute(0, 3, 1, 2)
        torch.testing.assert_close(loaded.decode(z, force_not_quantize=True).sample,
                                   model.decode(z, force_not_quantize=True).sample)


def test_a_model_is_read_once_until_its_files_change(tmp_path):
    """Variations and jobs share one loaded model; a model saved over it is read again."""
    import os

    small_vqmodel().save_pretrained(tmp_path / "vq")
    first = load_vqgan(str(tmp_path / "vq"))
    assert load_vqgan(str(tmp_path / "vq")) is first
    other = small_vqmodel()
    with torch.no_grad():
        other.quantize.embedding.weight.add_(1.0)
    other.save_pretrained(tmp_path / "vq")
    later = time.time() + 5  # a coarse file clock must still see the change
    for name in os.listdir(tmp_path / "vq"):
        os.utime(tmp_path / "vq" / name, (later, later))
    reloaded = load_vqgan(str(tmp_path / "vq"))
    assert reloaded is not first
    assert torch.equal(reloaded.quantize.embedding.weight, other.quantize.embedding.weight)


def test_canvas_snaps_latents_to_codes_and_keeps_gradients_when_saturated():
    model = small_vqmodel().requires_grad_(False)
    canvas = VQGANCanvas(model, (4, 4), generator=torch.Generator().manual_seed(0))
    assert "model" not in str(list(canvas.state_dict()))  # the frozen model is not saved with the run
    with torch.no_grad():
        canvas.z.mul_(50)  # far from every code: gradients still reach z through the snap to codes
    picture = canvas.texture((8, 8))
    assert picture.shape == (3, 8, 8) and picture.min() >= 0 and picture.max() <= 1
    picture[0].mean().backward()
    assert canvas.z.grad is not None and canvas.z.grad.abs().sum() > 0
    with torch.no_grad():
        canvas.z.add_(1e-4 * torch.randn_like(canvas.z))  # a step smaller than the codes' spacing
    torch.testing.assert_close(canvas.texture((8, 8)), picture.detach())


def test_an_uncached_hub_model_fails_fast_when_the_hub_is_unreachable(monkeypatch):
    from text2mesh.guidance import clip as hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "HF_HOST", "huggingface.invalid")  # never resolves (RFC 2606)
    start = time.monotonic()
    with pytest.raises(ConfigError, match="cannot be reached"):
        load_vqgan("nobody/no-such-vqgan-model")
    assert time.monotonic() - start < 10
