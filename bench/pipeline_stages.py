"""The whole VSSFlow pipeline for a 10 s clip, stage by stage, with each stage's share of the total and peak memory.

What it measures
    Random components with the full-size architectures (CLIP ViT-B/16, Synchformer, the 453 M-parameter VSSFlow
    network, the mel VAE, HiFi-GAN; ``--tiny`` for the tiny test components instead) are built in memory, a 10 s
    synthetic H.264 video (25 fps, ``--video-size``) is written to a temporary folder, and then each stage of
    ``VSSFlowPipeline`` is timed on its own, in the order ``generate`` runs them:
        video decode @10 fps   (CLIP frames: decode + select + resize to 224)
        video decode @25 fps   (Synchformer frames: decode + fps filter + short-side crop to 224)
        CLIP                   (``encode_frames`` on 100 frames)
        Synchformer            (``encode_video`` on 250 frames, 30 segments)
        phonemes               (transcript -> G2P -> ids stretched over the window)
        conditions             (projections of every condition)
        sampler                (guided flow: ``--solver`` / ``--steps`` / ``--atol``; default the pipeline's own,
                               on the pipeline's fast path: batched guidance + the per-generation DiT cache)
        VAE decode, vocoder    (``PipelineComponents.decode`` split in its two halves)
        mux                    (AAC encode + copy the video stream into a new MP4)
    The table prints seconds, the share of the total, and the process's peak RSS after the stage; below it the
    non-DiT share (everything other than the sampler: what the fast paths of the DiT cannot speed up), and the
    sampler's evaluations (each one DiT pass over [unconditional ; conditional], batch 2; two passes of batch 1 with
    ``--reference-sampler``).
    With random weights dopri5 takes however many evaluations the random field needs, which is not the real model's
    count: the per-evaluation time is printed so the sampler time can be scaled to any evaluation count.

Run
    .venv/bin/python bench/pipeline_stages.py --tiny                          # seconds
    .venv/bin/python bench/pipeline_stages.py --solver euler --steps 8        # full size, ~1 min on 2 cores
    .venv/bin/python bench/pipeline_stages.py                                 # full size, the default sampler
    .venv/bin/python bench/pipeline_stages.py --solver dopri5                 # full size, official dopri5
Options: ``--dtype float32|bfloat16`` (the network's), ``--encoder-dtype auto|float32|bfloat16`` (CLIP's and
Synchformer's; auto, as the pipeline: bf16 where the CPU multiplies it natively), ``--reference-sampler`` (the
official two plain passes per evaluation, no cache), ``--compile`` (torch.compile the network; its compile time lands in the sampler row),
``--threads``, ``--transcript``, ``--video-size WxH``, ``--seed``.  Needs PyAV (already a project dependency) for
video decode and mux.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vssflow_core.codec.vae import MelVAE, VAEConfig, unpack_latent  # noqa: E402
from vssflow_core.codec.vocoder import HifiGanVocoder, VocoderConfig  # noqa: E402
from vssflow_core.components import PipelineComponents  # noqa: E402
from vssflow_core.config import VSSFlowConfig  # noqa: E402
from vssflow_core.devices import resolve_dtype  # noqa: E402
from vssflow_core.encoders.clip import CLIPVisionConfig, CLIPVisualEncoder  # noqa: E402
from vssflow_core.encoders.synchformer import SynchformerConfig, SynchformerVisualEncoder  # noqa: E402
from vssflow_core.flow.settings import SamplerSettings  # noqa: E402
from vssflow_core.flow.solvers import DEFAULT_FIXED_STEPS, DEFAULT_SCHEDULE, DEFAULT_SOLVER, OFFICIAL_ATOL  # noqa: E402
from vssflow_core.media.mux import mux_audio  # noqa: E402
from vssflow_core.media.video_file import write_frames_video  # noqa: E402
from vssflow_core.model.vssflow import VSSFlow  # noqa: E402
from vssflow_core.pipeline import VSSFlowPipeline  # noqa: E402
from vssflow_core.results import VisualFeatures  # noqa: E402
from vssflow_core.text.track import phoneme_frame_ids  # noqa: E402
from vssflow_core.video import clip_frames, open_video, synchformer_frames  # noqa: E402


def peak_rss_mib() -> float:
    """The process's peak resident set (VmHWM; since the last :func:`reset_peak_rss` where the kernel allows it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def build(tiny: bool, dtype: torch.dtype, encoder_dtype: torch.dtype) -> VSSFlowPipeline:
    torch.manual_seed(0)
    if tiny:
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_models import CLIP_CFG, NET_CFG, SYNCH_CFG, VAE_CFG, VOCODER_CFG

        clip_cfg, synch_cfg, vae_cfg, voc_cfg, net_cfg = CLIP_CFG, SYNCH_CFG, VAE_CFG, VOCODER_CFG, NET_CFG
    else:
        clip_cfg, synch_cfg, vae_cfg, voc_cfg, net_cfg = (CLIPVisionConfig(), SynchformerConfig(), VAEConfig(),
                                                          VocoderConfig(), VSSFlowConfig())
    clip, synch = CLIPVisualEncoder(clip_cfg), SynchformerVisualEncoder(synch_cfg)
    for p in [*clip.parameters(), *synch.parameters()]:  # zero-initialised embeddings would be unrealistically cheap
        torch.nn.init.normal_(p, std=0.02)
    model = VSSFlow(net_cfg).to(dtype)
    components = PipelineComponents(clip.to(encoder_dtype), synch.to(encoder_dtype), MelVAE(vae_cfg),
                                    HifiGanVocoder(voc_cfg))
    return VSSFlowPipeline(model, components)


def synthetic_video(path: Path, size: tuple[int, int], seconds: float = 10.0, fps: int = 25) -> Path:
    width, height = size
    n = int(seconds * fps)
    yy = torch.linspace(0, 1, height)[:, None]
    xx = torch.linspace(0, 1, width)[None, :]
    frames = torch.empty(n, height, width, 3, dtype=torch.uint8)
    for i in range(n):  # moving gradients: cheap to make, not trivially compressible
        t = i / n
        rgb = torch.stack([(xx + t + 0 * yy) % 1.0, (yy + 2 * t + 0 * xx) % 1.0, (xx * yy + t) % 1.0], dim=-1)
        frames[i] = (rgb * 255).to(torch.uint8)
    return write_frames_video(path, frames, fps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--encoder-dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--solver", default=DEFAULT_SOLVER)
    parser.add_argument("--steps", type=int, default=DEFAULT_FIXED_STEPS)
    parser.add_argument("--schedule", default=DEFAULT_SCHEDULE)
    parser.add_argument("--atol", type=float, default=OFFICIAL_ATOL)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--transcript", default="The quick brown fox jumps over the lazy dog, twice before noon.")
    parser.add_argument("--video-size", default="640x360")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-sampler", action="store_true")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    size = tuple(int(v) for v in args.video_size.lower().split("x"))
    rss_start = peak_rss_mib()
    build_start = time.perf_counter()
    encoder_dtype = resolve_dtype(args.encoder_dtype, "cpu")
    fast = not args.reference_sampler
    settings = SamplerSettings(solver=args.solver, steps=args.steps, schedule=args.schedule, atol=args.atol,
                               rtol=args.atol, batched_guidance=fast, cache=fast, compile=args.compile)
    pipe = build(args.tiny, getattr(torch, args.dtype), encoder_dtype)
    parts = pipe.components
    build_s = time.perf_counter() - build_start
    params = sum(p.numel() for p in pipe.model.parameters())
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {'tiny' if args.tiny else 'full-size'} "
          f"random components (network {params / 1e6:.1f} M parameters, {args.dtype}; encoders "
          f"{str(encoder_dtype).removeprefix('torch.')}), built in {build_s:.1f} s; "
          f"solver {settings.describe()}"
          + (", reference sampler (2 plain passes per evaluation)" if args.reference_sampler else
             ", fast sampler (batched guidance + DiT cache)") + (", compiled" if args.compile else ""))

    rows: list[tuple[str, float, float]] = []

    def stage(name: str, fn):
        start = time.perf_counter()
        out = fn()
        rows.append((name, time.perf_counter() - start, peak_rss_mib()))
        print(f"  {name:<22} {rows[-1][1]:8.3f} s", flush=True)
        return out

    with tempfile.TemporaryDirectory() as tmp:
        video = synthetic_video(Path(tmp) / "clip.mp4", size)
        rss_ready = peak_rss_mib()
        reset = reset_peak_rss()
        window = parts.sequence.duration_sec

        def decode_at(sampler, resolution):
            source = open_video(video)
            try:
                return sampler(source, duration=window, size=resolution), source.end_time
            finally:
                source.close()

        clip_in, duration = stage("video decode @10 fps",
                                  lambda: decode_at(clip_frames, parts.clip.config.input_resolution))
        synch_in, _ = stage("video decode @25 fps",
                            lambda: decode_at(synchformer_frames, parts.synchformer.config.img_size))
        clip = stage("CLIP", lambda: parts.clip.encode_frames(clip_in.frames, batch_size=32, channels_last=True))
        synch = stage("Synchformer", lambda: parts.synchformer.encode_video(
            synch_in.frames, batch_size=8, num_frames=parts.sequence.synch_frames, channels_last=True,
            sequence=parts.sequence))
        visual = VisualFeatures(clip=clip[None], synch=synch[None], duration=min(duration, window),
                                source_fps=float(clip_in.source_fps))
        phone_ids = stage("phonemes", lambda: phoneme_frame_ids(args.transcript, duration=visual.duration))
        warm = time.perf_counter()
        phoneme_frame_ids(args.transcript, duration=visual.duration)
        phonemes_warm = time.perf_counter() - warm
        conditions = stage("conditions", lambda: pipe.conditions(visual, phone_ids))
        sampled = stage("sampler", lambda: pipe.sample(conditions, seed=args.seed, settings=settings))
        vae = parts.vae

        def vae_decode():
            with torch.inference_mode():
                param = next(vae.parameters())
                return vae.decode(unpack_latent(sampled.latent.to(param.device, param.dtype),
                                                vae.config.latent_channels))

        mel = stage("VAE decode", vae_decode)

        def vocode():
            with torch.inference_mode():
                wave = parts.vocoder(mel[:, 0])
            return wave[:, : round(visual.duration * parts.sequence.sample_rate)].float().cpu()

        waveform = stage("vocoder", vocode)
        stage("mux", lambda: mux_audio(video, waveform[0], parts.sample_rate, Path(tmp) / "out.mp4"))

    total = sum(seconds for _, seconds, _ in rows)
    print()
    print(f"{'stage':<22} {'seconds':>9} {'share':>7} {'peak RSS (MiB)':>15}")
    for name, seconds, rss in rows:
        print(f"{name:<22} {seconds:>9.3f} {100 * seconds / total:>6.1f}% {rss:>15.0f}")
    print(f"{'total':<22} {total:>9.3f} {100.0:>6.1f}% {peak_rss_mib():>15.0f}")
    sampler_s = next(s for n, s, _ in rows if n == "sampler")
    print()
    print(f"non-DiT share (everything other than the sampler): {total - sampler_s:.3f} s = "
          f"{100 * (total - sampler_s) / total:.1f}% of the total")
    stats = sampled.stats
    passes = (f"{2 * stats.evaluations} DiT passes of batch 1" if args.reference_sampler else
              f"{stats.evaluations} DiT passes of batch 2")
    print(f"sampler: {stats.evaluations} guided evaluations ({passes}), {stats.steps} steps, "
          f"{sampler_s / max(1, stats.evaluations):.3f} s per evaluation")
    print(f"phonemes again (warm, not in the total): {phonemes_warm:.3f} s")
    print(f"peak RSS during the stages {peak_rss_mib():.0f} MiB" + ("" if reset else " (peak since start: the "
          "kernel refused the reset)") + f"; at start {rss_start:.0f} MiB; after building the components and "
          f"writing the video {rss_ready:.0f} MiB (peak so far)")


if __name__ == "__main__":
    main()
