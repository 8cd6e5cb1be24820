"""Tiny random VSSFlow components saved in their real key layouts, shared by the pipeline, node and server tests.

Every component is a small random model written the way the real one is published or converted: the VSSFlow network
with its config in the safetensors metadata, OpenAI CLIP ``visual.*``, Synchformer ``vfeat_extractor.*``, RawNet3, a
diffusers VAE folder (``config.json`` + ``diffusion_pytorch_model.safetensors``), the SpeechT5HifiGan vocoder.  Their
widths fit each other, so loading, routing, sampling, decoding and muxing all run for real in about a second.  The
weights are seeded: the same files every time.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from vssflow_core.codec.vae import MelVAE, VAEConfig
from vssflow_core.codec.vocoder import HifiGanVocoder, VocoderConfig
from vssflow_core.config import VSSFlowConfig
from vssflow_core.encoders.clip import CLIPVisionConfig, CLIPVisualEncoder
from vssflow_core.encoders.rawnet3 import RawNet3, RawNet3Config
from vssflow_core.encoders.synchformer import SynchformerConfig, SynchformerVisualEncoder
from vssflow_core.model.vssflow import VSSFlow
from vssflow_core.weights.checkpoint import save_vssflow

# Tiny widths: the network's input widths must equal the encoders' output widths.
CLIP_CFG = CLIPVisionConfig(width=64, layers=1, heads=1, patch_size=16, input_resolution=32, output_dim=32)
SYNCH_CFG = SynchformerConfig(embed_dim=64, depth=1, num_heads=1, patch_size=16, img_size=32, num_frames=16)
RAWNET_CFG = RawNet3Config(channels=32, n_out=32, pooled_channels=48, attention_channels=8)
VAE_CFG = VAEConfig(block_out_channels=(16, 16, 16), layers_per_block=1, latent_channels=8, norm_num_groups=8)
VOCODER_CFG = VocoderConfig(upsample_initial_channel=32, resblock_kernel_sizes=(3,),
                            resblock_dilation_sizes=((1, 3, 5),))
NET_CFG = VSSFlowConfig(clip_dim=64, synch_dim=64, speaker_dim=32, lip_dim=1024, context_dim=32, lip_channels=16,
                        phone_channels=8, synch_channels=16, num_layers=1, num_heads=2, head_dim=16, num_kv_heads=2,
                        time_proj_dim=32, ff_mult=2)

# Where build_tiny_components puts each file, relative to its root (the VAE is a diffusers folder).
TINY_FILES = {
    "checkpoint": "vssflow.safetensors",
    "clip": "clip.safetensors",
    "synchformer": "synchformer.safetensors",
    "rawnet3": "rawnet3.safetensors",
    "vae": "vae/diffusion_pytorch_model.safetensors",
    "vocoder": "vocoder.safetensors",
}


def save_module(module: torch.nn.Module, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))
    return path


def build_tiny_components(root: Path) -> dict[str, Path]:
    """Write every tiny component under ``root`` (see :data:`TINY_FILES`); returns the paths the pipeline loads
    (the VAE as its folder)."""
    root = Path(root)
    torch.manual_seed(0)
    clip, synch = CLIPVisualEncoder(CLIP_CFG), SynchformerVisualEncoder(SYNCH_CFG)
    for p in [*clip.parameters(), *synch.parameters()]:  # the modules' zero-initialised embeddings would hide bugs
        torch.nn.init.normal_(p, std=0.02)
    vae_dir = root / "vae"
    save_module(MelVAE(VAE_CFG), vae_dir / "diffusion_pytorch_model.safetensors")
    (vae_dir / "config.json").write_text(json.dumps(dataclasses.asdict(VAE_CFG)))  # diffusers folder layout
    net = root / TINY_FILES["checkpoint"]
    save_vssflow(VSSFlow(NET_CFG), net)
    return {
        "checkpoint": net,
        "clip": save_module(clip, root / TINY_FILES["clip"]),
        "synchformer": save_module(synch, root / TINY_FILES["synchformer"]),
        "rawnet3": save_module(RawNet3(RAWNET_CFG).eval(), root / TINY_FILES["rawnet3"]),
        "vae": vae_dir,
        "vocoder": save_module(HifiGanVocoder(VOCODER_CFG), root / TINY_FILES["vocoder"]),
    }


def build_tiny_models_folder(vssflow_dir: Path, subfolder: str = "tiny") -> dict[str, str]:
    """Put the tiny components in a ComfyUI ``models/vssflow`` folder, under ``subfolder``; returns the names the
    loader nodes' dropdowns list for them (``"tiny/vssflow.safetensors"``, ...), keyed like :data:`TINY_FILES`."""
    build_tiny_components(Path(vssflow_dir) / subfolder)
    return {key: f"{subfolder}/{name}" for key, name in TINY_FILES.items()}
