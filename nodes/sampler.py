"""FlowDiT Sampler (VSSFlow): the guided flow from noise to an audio latent, one progress step per solver step."""

from __future__ import annotations

from ..vssflow_core.flow.schedules import SCHEDULES
from ..vssflow_core.flow.solvers import DEFAULT_FIXED_STEPS, DEFAULT_SCHEDULE, DEFAULT_SOLVER, SOLVER_NAMES
from ..vssflow_core.flow.guidance import OFFICIAL_GUIDANCE_SCALE
from ..vssflow_core.pipeline import VSSFlowPipeline
from ..vssflow_core.text.track import PhonemeTrack
from . import comfy_bridge
from .common import CATEGORY, COMPONENTS, LATENT, MODEL, PHONEMES, VISUAL, Latent, on_device

MAX_SEED = 0xFFFF_FFFF_FFFF_FFFF


class VSSFlowSampler:
    DESCRIPTION = ("Generates the sound (and speech) of the clip: integrates VSSFlow's flow from noise to an audio "
                   "latent with classifier-free guidance. dopri5 (adaptive, the official solver) picks its own steps; "
                   "euler, midpoint, heun, rk4 and ab2 take 'steps' on the 'schedule'. Batch item i uses seed + i. "
                   "A clip longer than 10 s is sampled window by window, each window continuing the one before it.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (LATENT,)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The audio latents, for Vocoder Decode.",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vssflow_model": (MODEL, {"tooltip": "From the VSSFlow Checkpoint Loader."}),
                "vssflow_components": (COMPONENTS, {"tooltip": "From the VSSFlow Components Loader."}),
                "visual_features": (VISUAL, {"tooltip": "From the Visual Encoder."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True,
                                 "tooltip": "Seed of the starting noise."}),
                "steps": ("INT", {"default": DEFAULT_FIXED_STEPS, "min": 1, "max": 10000,
                                  "tooltip": "Steps of the fixed-step solvers (ab2: one network evaluation each, "
                                             "the others two or four); dopri5 ignores it and adapts."}),
                "guidance_scale": ("FLOAT", {"default": OFFICIAL_GUIDANCE_SCALE, "min": 0.0, "max": 20.0,
                                             "step": 0.1, "round": 0.01,
                                             "tooltip": "Classifier-free guidance (official: 3). 1 = no guidance."}),
                "solver": (list(SOLVER_NAMES), {"default": DEFAULT_SOLVER,
                                                "tooltip": "dopri5: adaptive, official (atol = rtol = 1e-5). "
                                                           "ab2: one network evaluation per step."}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 64,
                                       "tooltip": "Number of takes, seeds seed .. seed + batch_size - 1."}),
            },
            "optional": {
                "phonemes": (PHONEMES, {"tooltip": "From the Phoneme Tokenizer; leave out for sound effects only."}),
                "speaker_reference": ("AUDIO", {
                    "tooltip": "A recording of the voice to imitate (needs the RawNet3 speaker encoder)."}),
                # optional so that workflows saved before it keep their widget values in place
                "schedule": (list(SCHEDULES), {"default": DEFAULT_SCHEDULE,
                                               "tooltip": "Time grid of the fixed-step solvers. uniform: equal "
                                                          "steps; balanced: more steps early, where errors grow the "
                                                          "most. dopri5 ignores it."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def sample(self, vssflow_model, vssflow_components, visual_features, seed: int, steps: int,
               guidance_scale: float, solver: str, batch_size: int, phonemes=None, speaker_reference=None,
               schedule: str = DEFAULT_SCHEDULE, unique_id=None):
        track = phonemes if phonemes is not None else PhonemeTrack()
        # on the clip's whole timeline, cut per window by sample_windows; checks the speech window against the clip
        phone_ids = track.frame_ids(visual_features.duration)
        parts = vssflow_components.components
        modules = [vssflow_model.model]
        if speaker_reference is not None and parts.rawnet3 is not None:
            modules.append(parts.rawnet3)
        with on_device(modules, vssflow_model.load_device, vssflow_model.offload_device):
            pipe = VSSFlowPipeline(vssflow_model.model, parts)
            speaker = pipe.speaker_embedding(speaker_reference)
            sampled = pipe.sample_windows(visual_features, phone_ids, speaker, batch_size=batch_size, seed=seed,
                                          solver=solver, steps=steps, schedule=schedule,
                                          guidance_scale=guidance_scale,
                                          callback=comfy_bridge.step_reporter(unique_id))
        return (Latent(latent=sampled.latent.cpu(), duration=visual_features.duration, seeds=sampled.seeds,
                       solver=solver, steps=sampled.steps, evaluations=sampled.evaluations, plan=sampled.plan),)
