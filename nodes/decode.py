"""Vocoder Decode (VSSFlow): latent -> VAE -> log-mel -> HiFi-GAN -> 16 kHz AUDIO of exactly the clip's length."""

from __future__ import annotations

from . import comfy_bridge
from ..vssflow_core.speech_only import gate_outside_lines
from .comfy_bridge import io
from .common import CATEGORY, ComponentsType, LatentType, on_device
from .edit import SETTINGS_KEY, audio_settings


class VSSFlowVocoderDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VSSFlowVocoderDecode", display_name="Vocoder Decode (VSSFlow)", category=CATEGORY,
            description="Decodes the sampled latents to sound: the VAE gives a log-mel spectrogram, the HiFi-GAN "
                        "vocoder a 16 kHz waveform, cut to exactly the clip's duration. Each take gets its own "
                        "player on the node.",
            inputs=[ComponentsType.Input("vssflow_components", tooltip="From the VSSFlow Components Loader."),
                    LatentType.Input("latent", tooltip="From the FlowDiT Sampler.")],
            outputs=[io.Audio.Output("audio", tooltip="16 kHz mono audio, one item per batch take, exactly as long as "
                                                      "the clip.")],
        )

    @classmethod
    def execute(cls, vssflow_components, latent) -> io.NodeOutput:
        audio = decode_audio(vssflow_components, latent)
        return io.NodeOutput(audio, ui=comfy_bridge.preview_audio(audio, cls))


def decode_audio(vssflow_components, latent) -> dict:
    """The decoder's work (also done by Add Sound to Video): a ComfyUI AUDIO ``[takes, 1, samples]``."""
    parts = vssflow_components.components
    with on_device([parts.vae, parts.vocoder], vssflow_components.load_device, vssflow_components.offload_device):
        # [B, samples], float32 on the CPU; an edit's kept track put back outside its ranges
        waveform = parts.decode(latent.latent, latent.duration, latent.plan, edit=latent.edit)
    if latent.speech_only:  # the sampler's speech_only: silence outside the lines
        waveform = gate_outside_lines(waveform, list(latent.speech_only), parts.sample_rate)
    # the seeds ride along, so Pick Take can report a take's seed and the mux can tag the video with it
    return {"waveform": waveform.unsqueeze(1).contiguous(), "sample_rate": parts.sample_rate,
            SETTINGS_KEY: audio_settings(latent)}
