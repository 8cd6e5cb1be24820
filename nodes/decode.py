"""Vocoder Decode (VSSFlow): latent -> VAE -> log-mel -> HiFi-GAN -> 16 kHz AUDIO of exactly the clip's length."""

from __future__ import annotations

from .common import CATEGORY, COMPONENTS, LATENT, on_device


class VSSFlowVocoderDecode:
    DESCRIPTION = ("Decodes the sampled latents to sound: the VAE gives a log-mel spectrogram, the HiFi-GAN vocoder a "
                   "16 kHz waveform, cut to exactly the clip's duration.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("AUDIO",)
    RETURN_NAMES = ("audio",)
    OUTPUT_TOOLTIPS = ("16 kHz mono audio, one item per batch take, exactly as long as the clip.",)
    FUNCTION = "decode"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vssflow_components": (COMPONENTS, {"tooltip": "From the VSSFlow Components Loader."}),
                "latent": (LATENT, {"tooltip": "From the FlowDiT Sampler."}),
            }
        }

    def decode(self, vssflow_components, latent):
        parts = vssflow_components.components
        with on_device([parts.vae, parts.vocoder], vssflow_components.load_device, vssflow_components.offload_device):
            waveform = parts.decode(latent.latent, latent.duration, latent.plan)  # [B, samples], float32 on the CPU
        return ({"waveform": waveform.unsqueeze(1).contiguous(), "sample_rate": parts.sample_rate},)
