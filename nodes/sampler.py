"""FlowDiT Sampler (VSSFlow): the guided flow from noise to an audio latent, one progress step per solver step."""

from __future__ import annotations

from ..vssflow_core.flow.schedules import SCHEDULES
from ..vssflow_core.flow.solvers import (DEFAULT_FIXED_STEPS, DEFAULT_SCHEDULE, DEFAULT_SOLVER, MAX_FIXED_STEPS,
                                         OFFICIAL_ATOL, OFFICIAL_RTOL, SOLVER_NAMES)
from ..vssflow_core.flow.guidance import OFFICIAL_GUIDANCE_SCALE
from ..vssflow_core.flow.settings import SamplerSettings
from ..vssflow_core.pipeline import VSSFlowPipeline
from ..vssflow_core.text.speech import SpeechTrack
from . import comfy_bridge
from .comfy_bridge import io
from .edit import EditType
from .common import (CATEGORY, SEARCH_ALIASES, ComponentsType, Latent, LatentType, ModelType, PhonemesType,
                     VisualType, on_device)

MAX_SEED = 0xFFFF_FFFF_FFFF_FFFF


class VSSFlowSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VSSFlowSampler", display_name="FlowDiT Sampler (VSSFlow)", category=CATEGORY,
            description="Generates the sound (and speech) of the clip: integrates VSSFlow's flow from noise to an "
                        "audio latent with classifier-free guidance. dopri5 (adaptive, the official solver) picks its "
                        "own steps within atol/rtol; euler, midpoint, heun, rk4 and ab2 take 'steps' on the "
                        "'schedule'. Batch item i uses seed + i. A clip longer than 10 s is sampled window by window, "
                        "each window continuing the one before it.",
            search_aliases=SEARCH_ALIASES,
            inputs=[
                ModelType.Input("vssflow_model", tooltip="From the VSSFlow Checkpoint Loader."),
                ComponentsType.Input("vssflow_components", tooltip="From the VSSFlow Components Loader."),
                VisualType.Input("visual_features", tooltip="From the Visual Encoder."),
                io.Int.Input("seed", default=0, min=0, max=MAX_SEED, control_after_generate=True,
                             tooltip="Seed of the starting noise."),
                io.Int.Input("steps", default=DEFAULT_FIXED_STEPS, min=1, max=MAX_FIXED_STEPS,
                             tooltip="Steps of the fixed-step solvers (ab2: one network evaluation each, the others "
                                     "two or four). Unused with dopri5, which adapts its own steps."),
                io.Float.Input("guidance_scale", default=OFFICIAL_GUIDANCE_SCALE, min=0.0, max=20.0, step=0.1,
                               round=0.01, tooltip="Classifier-free guidance (official: 3). 1 = no guidance."),
                io.Combo.Input("solver", options=list(SOLVER_NAMES), default=DEFAULT_SOLVER,
                               tooltip="dopri5: adaptive, official (steps and schedule unused; atol, rtol apply). "
                                       "ab2: one network evaluation per step."),
                io.Int.Input("batch_size", default=1, min=1, max=64,
                             tooltip="Number of takes, seeds seed .. seed + batch_size - 1."),
                PhonemesType.Input("phonemes", optional=True,
                                   tooltip="From the Phoneme Tokenizer; leave out for sound effects only."),
                io.Audio.Input("speaker_reference", optional=True,
                               tooltip="A recording of the voice to imitate (needs the RawNet3 speaker encoder)."),
                # optional and last, so that workflows saved before them keep their widget values in place
                io.Combo.Input("schedule", options=list(SCHEDULES), default=DEFAULT_SCHEDULE, optional=True,
                               advanced=True,
                               tooltip="Time grid of the fixed-step solvers. uniform: equal steps; balanced: more "
                                       "steps early, where errors grow the most. Unused with dopri5."),
                *(io.Float.Input(name, default=value, min=1e-9, max=1e-1, step=1e-6, round=1e-9, optional=True,
                                 advanced=True,
                                 tooltip=f"{what} tolerance of dopri5's adaptive steps (official: {value:g}); "
                                         "looser is faster and coarser. Unused by the fixed-step solvers.")
                  for name, value, what in (("atol", OFFICIAL_ATOL, "Absolute"), ("rtol", OFFICIAL_RTOL, "Relative"))),
                EditType.Input("audio_edit", optional=True,
                               tooltip="From Edit Existing Audio: regenerate only its time ranges (the rest of the "
                                       "track kept), or start from the track with a strength."),
                io.Boolean.Input("speech_only", default=False, optional=True,
                                 tooltip="Speech alone, without the picture's sound effects: the decoded sound is "
                                         "silenced outside the lines."),
                io.Boolean.Input("use_checkpoint_sampler", default=True, optional=True,
                                 tooltip="When the loaded checkpoint recommends its own sampler (a distilled "
                                         "student: its solver and few steps at guidance scale 1), sample with that "
                                         "and ignore solver, steps, schedule, guidance_scale, atol and rtol here. "
                                         "Off: use the widgets. Ordinary checkpoints recommend nothing and always "
                                         "use the widgets."),
            ],
            outputs=[LatentType.Output("latent", tooltip="The audio latents, for Vocoder Decode.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, vssflow_model, vssflow_components, visual_features, seed: int, steps: int,
                guidance_scale: float, solver: str, batch_size: int, phonemes=None, speaker_reference=None,
                schedule: str = DEFAULT_SCHEDULE, atol: float = OFFICIAL_ATOL,
                rtol: float = OFFICIAL_RTOL, audio_edit=None, speech_only: bool = False,
                use_checkpoint_sampler: bool = True) -> io.NodeOutput:
        return io.NodeOutput(sample_latent(vssflow_model, vssflow_components, visual_features, seed, steps,
                                           guidance_scale, solver, batch_size, phonemes, speaker_reference, schedule,
                                           atol, rtol, node_id=comfy_bridge.node_id(cls), edit=audio_edit,
                                           speech_only=speech_only, use_checkpoint_sampler=use_checkpoint_sampler))


def sample_latent(vssflow_model, vssflow_components, visual_features, seed: int, steps: int, guidance_scale: float,
                  solver: str, batch_size: int, phonemes=None, speaker_reference=None,
                  schedule: str = DEFAULT_SCHEDULE, atol: float = OFFICIAL_ATOL, rtol: float = OFFICIAL_RTOL, *,
                  node_id: str | None = None, edit=None, speech_only: bool = False,
                  use_checkpoint_sampler: bool = False) -> Latent:
    """The sampler's work (also done by Add Sound to Video); progress is shown on node ``node_id``.
    ``use_checkpoint_sampler``: the loaded checkpoint's recommended sampler, where it has one, replaces the given
    solver, steps, schedule, guidance scale and tolerances."""
    track = phonemes if phonemes is not None else SpeechTrack()
    # on the clip's whole timeline, cut per window by sample_windows; checks the speech window against the clip
    track.frame_ids_on(visual_features.plan)
    parts = vssflow_components.components
    modules = [vssflow_model.model]
    if (speaker_reference is not None or track.references) and parts.rawnet3 is not None:
        modules.append(parts.rawnet3)
    with on_device(modules, vssflow_model.load_device, vssflow_model.offload_device):
        pipe = VSSFlowPipeline(vssflow_model.model, parts)
        # the lines' phoneme ids, one speaker per window (the voices' references), the speech-only mask
        phone_ids, speakers, mask = pipe.speech_conditions(visual_features.plan, track, speaker=speaker_reference)
        recommended = getattr(vssflow_model.model, "recommended_sampler", None)  # set by load_network
        settings = (recommended if use_checkpoint_sampler and recommended is not None else
                    SamplerSettings(solver=solver, steps=steps, schedule=schedule, guidance_scale=guidance_scale,
                                    atol=atol, rtol=rtol))
        sampled = pipe.sample_windows(visual_features, phone_ids, speakers, batch_size=batch_size, seed=seed,
                                      settings=settings, callback=comfy_bridge.step_reporter(node_id),
                                      speech_mask=mask, edit=edit)
    return Latent(latent=sampled.latent.cpu(), duration=visual_features.duration, stats=sampled.stats,
                  plan=sampled.plan, edit=edit,
                  speech_only=tuple(line.interval(visual_features.duration) for line in track.lines)
                  if speech_only else ())
