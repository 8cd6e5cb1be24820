"""Distillation benchmark (issue 19): does a few-step student sound like its teacher, and what does it save?

A distilled student (``python -m vssflow_core distill``) is an ordinary VSSFlow checkpoint of its teacher's
architecture whose metadata recommends a fixed-step sampler at guidance scale 1 (guidance folded in: one network pass
per evaluation).  The teacher is sampled by the official sampler: dopri5 at atol = rtol = 1e-5, guidance scale 3 (two
passes per evaluation, batched into one call of batch 2).

``--quality --teacher T --student S --manifest heldout.jsonl [--limit N] [--evals 1,2,4,8] [--dialogue]``
    On held-out synthetic clips (rows as ``python -m vssflow_core.demo.evaluate`` reads them: v2s sound clips, vtts
    talking clips; dialogue rows only with ``--dialogue``, then scored with the talking clips), each pipeline loaded
    once (``VSSFlowPipeline.load(..., device="cpu")``) and each clip's video decoded once, every clip is generated
    from the same seed (the same noise) by
      - the teacher at the official sampler, and
      - the student at each evaluation count k of ``--evals``: its recommended solver with k evaluations (steps = k
        for one-evaluation-per-step solvers such as euler, k / 2 for heun, ...), guidance scale 1,
    each from the true frames and from the same frames shuffled (the baseline that destroys the timing).  Measured:
      - the largest and the mean absolute difference of the student's decoded log-mel bins from the teacher's, in
        dB, on the true frames: the mel the pipeline's VAE decoded on the way to the waveform, over the clip's
        duration; the measure of ``bench/sampler_efficiency.py`` (its dB scale and its 1 dB tolerance, imported);
      - onset F1 (sound clips) and the loudness-vs-mouth correlation over the clip (talking clips), true vs shuffled
        frames, with the demo evaluation's own scorers.
    The table gives, per setting: the evaluations per clip as the solver counts them and the network passes (batch-1
    passes: 2 per guided evaluation, 1 at guidance scale 1), the scores, the fraction of clips whose mel is within
    1 dB of the teacher's in every bin, and the medians of the largest and the mean difference.

    The bar (:func:`bar_verdict`).  A student setting passes when ALL of:
      - network passes per clip <= 8 (the most any clip took);
      - |onset F1 - the teacher's| <= 0.02 and |lip corr - the teacher's| <= 0.02 (true frames; both ways: the
        student has to match the teacher, not merely beat it);
      - at least 0.9 of the clips have every decoded mel bin within 1 dB of the teacher's;
      - the shuffled baseline still collapses: shuffled onset F1 < 0.5 and shuffled lip corr < 0.3.
    A part with no clips to measure it (e.g. no talking clips) fails as "not measured".  Otherwise the verdict says by
    how much each part misses.

``--speed-full [--student-steps 4] [--max-evals N] [--tiny]``
    Only the sampler (the DiT): the full-size network (``VSSFlowConfig`` defaults, 453 M parameters) with random
    weights, random but fixed conditions of a 10 s clip (250 latent frames; no lip, no speaker, as in-the-wild) and
    fixed noise, ONE run each: the official dopri5 (w = 3, batched guidance, ``CachedGuidedVelocity`` as the pipeline
    samples) against the student's schedule (euler at ``--student-steps``, guidance scale 1: conditional only).
    Prints evaluations, network passes, wall seconds, seconds per pass and the ratios.  A random field is not a
    trained one: dopri5's count is the random field's (the demo's counts are in the README's sampler rows), which is
    why the seconds per pass are printed; ``--max-evals`` caps dopri5 if the field makes it explode (the run is then
    marked capped and its ratio is a lower bound).  The rest of the pipeline (video decode, encoders, VAE, vocoder,
    mux) is the same for both; it is the README's ``bench/pipeline_stages.py`` row.  ``--tiny``: a small network
    instead (the test's).

``--speed-demo --teacher demo --student S --video demo_videos/bouncing.mp4``
    End to end: the library call ``pipeline.generate`` from the video file to the waveform (reading, encoding,
    sampling, decoding), wall seconds with the teacher at the official sampler against the student at its
    recommended one, after one untimed 1-step warm-up of each pipeline; evaluations and network passes of each.

Run
    .venv/bin/python bench/distill.py --quality --teacher demo --student runs/distill/student \\
        --manifest data/dialogue/heldout.jsonl --limit 10 --json runs/distill/quality.json
    .venv/bin/python bench/distill.py --speed-full --student-steps 4 --max-evals 400
    .venv/bin/python bench/distill.py --speed-full --tiny            # seconds
    .venv/bin/python bench/distill.py --speed-demo --teacher demo --student runs/distill/student \\
        --video demo_videos/bouncing.mp4
Options: ``--seed``, ``--threads``, ``--json PATH`` (every figure), ``--no-progress``; ``--speed-full`` also takes
``--dtype float32|bfloat16`` and ``--device``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from sampler_efficiency import DB_PER_LOG_UNIT, MEL_TOLERANCE_DB, small_config  # noqa: E402
from vssflow_core.config import SEQUENCE, VSSFlowConfig  # noqa: E402
from vssflow_core.demo.evaluate import kind_of, score_sound, score_talk, shuffled_frames, speech_inputs  # noqa: E402
from vssflow_core.distill.pairs import TEACHER_SAMPLER  # noqa: E402
from vssflow_core.flow.guidance import CachedGuidedVelocity  # noqa: E402
from vssflow_core.flow.settings import SamplerSettings  # noqa: E402
from vssflow_core.flow.solvers import EvaluationLimitReached  # noqa: E402
from vssflow_core.model.vssflow import VSSFlow  # noqa: E402

DEFAULT_EVALS = (1, 2, 4, 8)
TEACHER_NAME = "teacher dopri5"
# the bar a student setting has to clear (module docstring)
MAX_NETWORK_PASSES = 8
SCORE_TOLERANCE = 0.02
MEL_WITHIN_FRACTION = 0.9
SHUFFLED_ONSET_F1_BELOW = 0.5
SHUFFLED_LIP_CORR_BELOW = 0.3


# ------------------------------------------------------------------------------------------------- what a pass costs


def passes_per_evaluation(settings: SamplerSettings) -> int:
    """Batch-1 network passes one evaluation of the sampled field takes: two under guidance (unconditional and
    conditional; batched they are one call of batch 2, about twice the work), one at guidance scale 1 (conditional
    only) or below it (unconditional only), as :class:`~vssflow_core.flow.guidance.GuidedVelocity` runs them."""
    return 2 if settings.guidance_scale > 1.0 else 1


def student_settings(recommended: SamplerSettings, evaluations: int) -> SamplerSettings:
    """The student's recommended fixed-step solver at ``evaluations`` evaluations and guidance scale 1."""
    if not recommended.fixed_steps:
        raise ValueError(f"the student recommends {recommended.describe()}; a distilled student recommends a "
                         "fixed-step solver (python -m vssflow_core distill train --solver euler)")
    per_step = recommended.make_solver().evaluations_per_step
    if evaluations < per_step or evaluations % per_step:
        raise ValueError(f"{recommended.solver} takes {per_step} evaluations per step, so it cannot take "
                         f"{evaluations}; choose --evals among multiples of {per_step}")
    return replace(recommended, steps=evaluations // per_step, guidance_scale=1.0)


# ---------------------------------------------------------------------------------------------- the decoded log-mel


@contextlib.contextmanager
def decoded_mels(pipeline):
    """Collect the log-mel ``[B, frames, bins]`` the pipeline's VAE decodes for each window on the way to the
    waveform: the mel of the very latent ``generate`` sampled, as the sampler bench decodes it."""
    vae = pipeline.components.vae
    decode, mels = vae.decode, []

    def recording(latent, *args, **kwargs):
        mel = decode(latent, *args, **kwargs)
        mels.append(mel[:, 0].detach().double().cpu())
        return mel

    vae.decode = recording  # an instance attribute over the class's method, removed again below
    try:
        yield mels
    finally:
        del vae.decode


def clip_mel(mels: Sequence[torch.Tensor], duration: float, window_sec: float) -> torch.Tensor:
    """One clip's mel ``[frames, bins]`` of its first item: the windows' mels one after the other; a clip in one
    window is cut to its duration (what is heard: past the end the window holds the black frames' sound)."""
    mel = torch.cat([m[0] for m in mels], dim=0)
    if len(mels) == 1 and duration < window_sec:
        mel = mel[: math.ceil(duration * mel.shape[0] / window_sec)]
    return mel


def mel_difference_db(mel: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """(largest, mean) absolute difference of the decoded log-mel bins from the reference's, in dB (the mel is the
    natural log of an amplitude; the sampler bench's scale)."""
    diff = (mel.double() - reference.double()).abs() * DB_PER_LOG_UNIT
    return float(diff.max()), float(diff.mean())


# --------------------------------------------------------------------------------------------------------- quality


@dataclass
class Run:
    """One setting on one clip."""

    evaluations: int  # as the solver counts them, on the true frames
    passes: int  # batch-1 network passes they took
    true: dict[str, Any]
    shuffled: dict[str, Any]
    mel_max_db: float | None = None  # against the teacher's mel (true frames); None for the teacher
    mel_mean_db: float | None = None


@dataclass
class ClipRuns:
    id: str
    kind: str  # sound, talk or dialogue (scored with the talking clips)
    runs: dict[str, Run] = field(default_factory=dict)


@dataclass
class Summary:
    """One setting over the clips: means of the scores, medians of the mel differences."""

    name: str
    solver: str
    clips: int
    evaluations: float  # mean per clip
    max_evaluations: int
    passes: float
    max_passes: int
    onset_f1_true: float
    onset_f1_shuffled: float
    lip_corr_true: float
    lip_corr_shuffled: float
    mel_within: float = math.nan  # fraction of clips within the tolerance in every bin
    mel_max_db_median: float = math.nan
    mel_mean_db_median: float = math.nan


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def summarize(name: str, solver: str, clips: list[ClipRuns], mel_tolerance_db: float = MEL_TOLERANCE_DB) -> Summary:
    runs = [(c.kind, c.runs[name]) for c in clips]
    sound = [r for kind, r in runs if kind == "sound"]
    talk = [r for kind, r in runs if kind != "sound"]
    mels = [r for _, r in runs if r.mel_max_db is not None]
    return Summary(
        name=name, solver=solver, clips=len(runs),
        evaluations=_mean([r.evaluations for _, r in runs]), max_evaluations=max(r.evaluations for _, r in runs),
        passes=_mean([r.passes for _, r in runs]), max_passes=max(r.passes for _, r in runs),
        onset_f1_true=_mean([r.true["f1"] for r in sound]), onset_f1_shuffled=_mean([r.shuffled["f1"] for r in sound]),
        lip_corr_true=_mean([r.true["corr"] for r in talk]),
        lip_corr_shuffled=_mean([r.shuffled["corr"] for r in talk]),
        mel_within=_mean([float(r.mel_max_db <= mel_tolerance_db) for r in mels]),
        mel_max_db_median=float(np.median([r.mel_max_db for r in mels])) if mels else math.nan,
        mel_mean_db_median=float(np.median([r.mel_mean_db for r in mels])) if mels else math.nan)


@dataclass
class Verdict:
    name: str
    passed: bool
    misses: list[str]  # one sentence per part that misses, saying by how much


def bar_verdict(student: Summary, teacher: Summary, mel_tolerance_db: float = MEL_TOLERANCE_DB) -> Verdict:
    """Whether a student setting clears the bar of the module docstring; else by how much each part misses."""
    misses = []

    def not_measured(value: float, what: str) -> bool:
        if math.isnan(value):
            misses.append(f"{what}: not measured (no clips of its kind)")
        return math.isnan(value)

    if student.max_passes > MAX_NETWORK_PASSES:
        misses.append(f"network passes: {student.max_passes} per clip > {MAX_NETWORK_PASSES} "
                      f"(by {student.max_passes - MAX_NETWORK_PASSES})")
    for what, own, reference in (("onset F1", student.onset_f1_true, teacher.onset_f1_true),
                                 ("lip corr", student.lip_corr_true, teacher.lip_corr_true)):
        if not_measured(own, what) or not_measured(reference, f"the teacher's {what}"):
            continue
        gap = abs(own - reference)
        if gap > SCORE_TOLERANCE:
            misses.append(f"{what}: {own:.3f} against the teacher's {reference:.3f}, {gap:.3f} apart "
                          f"({gap - SCORE_TOLERANCE:.3f} beyond {SCORE_TOLERANCE:g})")
    if not not_measured(student.mel_within, "mel") and student.mel_within < MEL_WITHIN_FRACTION:
        misses.append(f"mel: {student.mel_within:.2f} of the clips within {mel_tolerance_db:g} dB of the teacher's "
                      f"< {MEL_WITHIN_FRACTION:g} (short by {MEL_WITHIN_FRACTION - student.mel_within:.2f}; median "
                      f"largest bin {student.mel_max_db_median:.2f} dB)")
    for what, value, below in (("shuffled onset F1", student.onset_f1_shuffled, SHUFFLED_ONSET_F1_BELOW),
                               ("shuffled lip corr", student.lip_corr_shuffled, SHUFFLED_LIP_CORR_BELOW)):
        if not not_measured(value, what) and not value < below:
            misses.append(f"{what}: {value:.3f}, not below {below:g} (by {value - below:.3f}): the student "
                          "no longer needs the timing of the picture")
    return Verdict(student.name, not misses, misses)


def _generate(pipeline, pictures: np.ndarray, fps: int, row: dict[str, Any], settings: SamplerSettings,
              seed: int) -> tuple[dict[str, Any], torch.Tensor, int]:
    """(scores, the clip's decoded mel, evaluations) of one generation."""
    speech = speech_inputs(row) if row["task"] == "vtts" else {}
    with decoded_mels(pipeline) as mels:
        result = pipeline.generate(torch.from_numpy(pictures), fps=fps, seed=seed, settings=settings, **speech)
    audio = result.waveform[0].numpy()
    scores = (score_sound(audio, result.sample_rate, row) if row["task"] == "v2s"
              else score_talk(audio, result.sample_rate, row, fps))
    mel = clip_mel(mels, result.duration, pipeline.components.sequence.duration_sec)
    return scores, mel, result.stats.evaluations


def quality_rows(manifest: str | Path, limit: int | None = None, dialogue: bool = False) -> list[dict[str, Any]]:
    """The manifest's sound and talking rows (and dialogue rows with ``dialogue``), at most ``limit`` of each kind."""
    from vssflow_core.synthetic.generator import rows_of

    kinds = ("sound", "talk", "dialogue") if dialogue else ("sound", "talk")
    rows = [r for r in rows_of(Path(manifest)) if r.get("task") in ("v2s", "vtts") and kind_of(r) in kinds]
    return [r for kind in kinds for r in [x for x in rows if kind_of(x) == kind][:limit]]


@dataclass
class QualityReport:
    settings: dict[str, SamplerSettings]
    clips: list[ClipRuns]
    summaries: list[Summary]
    verdicts: list[Verdict]

    def as_json(self) -> dict[str, Any]:
        return {"settings": {name: {**asdict(s), "describe": s.describe(), "passes_per_evaluation":
                                    passes_per_evaluation(s)} for name, s in self.settings.items()},
                "summaries": [asdict(s) for s in self.summaries], "verdicts": [asdict(v) for v in self.verdicts],
                "clips": [asdict(c) for c in self.clips],
                "bar": {"max_network_passes": MAX_NETWORK_PASSES, "score_tolerance": SCORE_TOLERANCE,
                        "mel_within_fraction": MEL_WITHIN_FRACTION, "shuffled_onset_f1_below":
                        SHUFFLED_ONSET_F1_BELOW, "shuffled_lip_corr_below": SHUFFLED_LIP_CORR_BELOW}}


def measure_quality(teacher, student, manifest: str | Path, *, evals: Sequence[int] = DEFAULT_EVALS,
                    limit: int | None = None, dialogue: bool = False, seed: int = 0,
                    mel_tolerance_db: float = MEL_TOLERANCE_DB, progress: bool = True) -> QualityReport:
    """The teacher pipeline at the official sampler and the student pipeline at each of ``evals`` evaluations on
    the manifest's clips (module docstring); the student's solver is its checkpoint's recommendation."""
    from tqdm.auto import tqdm
    from vssflow_core.synthetic.analysis import decode_clip

    recommended = getattr(student.model, "recommended_sampler", None)
    if recommended is None:
        raise ValueError("the student checkpoint recommends no sampler: it is not a distilled student (make one with "
                         "python -m vssflow_core distill train)")
    settings = {TEACHER_NAME: TEACHER_SAMPLER}
    settings.update({f"student k={k}": student_settings(recommended, k) for k in evals})
    manifest = Path(manifest)
    clips = []
    for row in tqdm(quality_rows(manifest, limit, dialogue), desc="held-out clips", unit="clip",
                    disable=not progress):
        frames, _, _ = decode_clip(manifest.parent / row["video"])  # once per clip, for every setting
        shuffled, fps = shuffled_frames(frames), int(row["fps"])
        clip = ClipRuns(row["id"], kind_of(row))
        reference = None
        for name, sampler in settings.items():
            pipeline = teacher if name == TEACHER_NAME else student
            true, mel, evaluations = _generate(pipeline, frames, fps, row, sampler, seed)
            baseline, _, _ = _generate(pipeline, shuffled, fps, row, sampler, seed)
            run = Run(evaluations, evaluations * passes_per_evaluation(sampler), true, baseline)
            if reference is None:
                reference = mel  # the teacher's, first
            else:
                run.mel_max_db, run.mel_mean_db = mel_difference_db(mel, reference)
            clip.runs[name] = run
        clips.append(clip)
    if not clips:
        raise ValueError(f"{manifest} has no sound or talking clips (v2s / vtts rows)")
    summaries = [summarize(name, s.describe(), clips, mel_tolerance_db) for name, s in settings.items()]
    verdicts = [bar_verdict(s, summaries[0], mel_tolerance_db) for s in summaries[1:]]
    return QualityReport(settings, clips, summaries, verdicts)


def _f(value: float, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def print_quality(report: QualityReport, mel_tolerance_db: float = MEL_TOLERANCE_DB) -> None:
    counts = {kind: sum(c.kind == kind for c in report.clips) for kind in ("sound", "talk", "dialogue")}
    print(f"clips: {counts['sound']} sound, {counts['talk']} talking"
          + (f", {counts['dialogue']} dialogue (scored with the talking ones)" if counts["dialogue"] else "")
          + "; onset F1 and lip corr are means over their clips, true / shuffled frames; mel against the teacher's "
          "on the true frames")
    print(f"{'setting':<16} {'solver':<26} {'evals':>7} {'max':>5} {'passes':>7} {'max':>5} "
          f"{'onset F1 true/shuf':>19} {'lip corr true/shuf':>19} {f'<= {mel_tolerance_db:g} dB':>8} "
          f"{'max dB med':>10} {'mean dB med':>11}")
    for s in report.summaries:
        print(f"{s.name:<16} {s.solver:<26} {s.evaluations:>7.1f} {s.max_evaluations:>5} {s.passes:>7.1f} "
              f"{s.max_passes:>5} {_f(s.onset_f1_true):>9} / {_f(s.onset_f1_shuffled):<7} "
              f"{_f(s.lip_corr_true):>9} / {_f(s.lip_corr_shuffled):<7} {_f(s.mel_within, 2):>8} "
              f"{_f(s.mel_max_db_median, 2):>10} {_f(s.mel_mean_db_median, 2):>11}")
    print()
    print(f"the bar: network passes <= {MAX_NETWORK_PASSES}, onset F1 and lip corr within {SCORE_TOLERANCE:g} of the "
          f"teacher's, >= {MEL_WITHIN_FRACTION:g} of the clips within {mel_tolerance_db:g} dB in every mel bin, "
          f"shuffled onset F1 < {SHUFFLED_ONSET_F1_BELOW:g} and shuffled lip corr < {SHUFFLED_LIP_CORR_BELOW:g}")
    for v in report.verdicts:
        print(f"{v.name:<16} " + ("passes" if v.passed else "misses: " + "; ".join(v.misses)))


# ----------------------------------------------------------------------------------------------------------- speed


def random_conditions(model: VSSFlow, length: int, seed: int):
    """Random but fixed conditions of a 10 s clip (CLIP, Synchformer, phoneme ids; no lip, no speaker) and noise."""
    cfg, g = model.cfg, torch.Generator().manual_seed(seed)
    clip = torch.randn(1, SEQUENCE.clip_frames, cfg.clip_dim, generator=g)
    synch = torch.randn(1, SEQUENCE.synch_segments, SEQUENCE.synch_tokens_per_segment, cfg.synch_dim, generator=g)
    phones = torch.randint(1, cfg.phone_vocab, (1, length), generator=g)
    noise = torch.randn(1, cfg.latent_channels, length, generator=g)
    device = next(model.parameters()).device
    with torch.inference_mode():
        conditions = model.prepare_conditions(clip.to(device), synch.to(device), phones.to(device),
                                              latent_length=length)
    return conditions, noise.to(device)


@dataclass
class Timed:
    name: str
    sampler: str
    evaluations: int
    passes: int
    seconds: float
    capped: bool = False  # dopri5 stopped at --max-evals before t = 1

    @property
    def seconds_per_pass(self) -> float:
        return self.seconds / max(1, self.passes)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def time_sampler(model: VSSFlow, conditions, noise: torch.Tensor, settings: SamplerSettings, name: str) -> Timed:
    """One sampling run from ``noise`` to t = 1 on the pipeline's fast path (``CachedGuidedVelocity``, batched
    guidance; the ODE state float32), timed; a dopri5 run that reaches ``settings.max_evaluations`` is cut there."""
    velocity = CachedGuidedVelocity(model, conditions, settings.guidance_scale, batched=settings.batched_guidance)
    x = torch.cat([noise.float(), conditions.latent_cond.float()], dim=1)
    solver = settings.make_solver()
    device = noise.device
    capped = False
    _synchronize(device)
    start = time.perf_counter()
    try:
        solver.solve(velocity, x, 0.0, 1.0)
    except EvaluationLimitReached:
        capped = True
    _synchronize(device)
    seconds = time.perf_counter() - start
    return Timed(name, settings.describe(), velocity.evaluations,
                 velocity.evaluations * passes_per_evaluation(settings), seconds, capped)


def print_speed(rows: list[Timed], per_pass: bool = True) -> None:
    """The (teacher, student) timings; ``per_pass``: also seconds per pass (the sampler alone: end to end it would
    spread the encoders' and the decoder's time over the passes)."""
    print(f"{'run':<10} {'sampler':<26} {'evaluations':>11} {'network passes':>14} {'seconds':>9}"
          + (f" {'s per pass':>10}" if per_pass else ""))
    for r in rows:
        print(f"{r.name:<10} {r.sampler:<26} {r.evaluations:>11} {r.passes:>14} {r.seconds:>9.2f}"
              + (f" {r.seconds_per_pass:>10.4f}" if per_pass else "")
              + ("   (capped: stopped at --max-evals)" if r.capped else ""))
    teacher, student = rows
    bound = "at least " if teacher.capped else ""
    print(f"teacher / student: {bound}{teacher.seconds / student.seconds:.1f}x the wall time, "
          f"{bound}{teacher.passes / student.passes:.1f}x the network passes")


def speed_full(*, tiny: bool = False, student_steps: int = 4, max_evals: int | None = None, seed: int = 0,
               dtype: torch.dtype = torch.float32, device: str = "cpu") -> list[Timed]:
    """The ``--speed-full`` run (module docstring): (teacher, student) timings on one random network."""
    cfg = small_config(2, 8) if tiny else VSSFlowConfig()
    torch.manual_seed(seed)
    model = VSSFlow(cfg).to(device=device, dtype=dtype).eval().requires_grad_(False)
    conditions, noise = random_conditions(model, SEQUENCE.latent_length, seed + 1)
    teacher = TEACHER_SAMPLER if max_evals is None else replace(TEACHER_SAMPLER, max_evaluations=max_evals)
    student = SamplerSettings(solver="euler", steps=student_steps, guidance_scale=1.0)
    params = sum(p.numel() for p in model.parameters())
    print(f"network: {'tiny' if tiny else 'full-size'} random weights, {params / 1e6:.1f} M parameters, "
          f"{str(dtype).removeprefix('torch.')} on {device}, {SEQUENCE.latent_length} latent frames, threads "
          f"{torch.get_num_threads()}; one run each, the sampler only (the DiT)", flush=True)
    return [time_sampler(model, conditions, noise, teacher, "teacher"),
            time_sampler(model, conditions, noise, student, "student")]


def speed_demo(teacher_checkpoint: str, student_checkpoint: str, video: str, *, transcript: str | None = None,
               seed: int = 0, warmup: bool = True) -> list[Timed]:
    """The ``--speed-demo`` run (module docstring): (teacher, student) end-to-end ``generate`` timings."""
    from vssflow_core.pipeline import VSSFlowPipeline

    runs = []
    for name, checkpoint in (("teacher", teacher_checkpoint), ("student", student_checkpoint)):
        pipeline = VSSFlowPipeline.load(checkpoint, device="cpu")
        settings = TEACHER_SAMPLER if name == "teacher" else pipeline.default_settings  # the student's recommendation
        if warmup:  # first-call costs (lexicon, allocator, decoder set-up) are not the sampler's
            pipeline.generate(video, transcript=transcript, seed=seed, settings=SamplerSettings("euler", steps=1))
        start = time.perf_counter()
        result = pipeline.generate(video, transcript=transcript, seed=seed, settings=settings)
        seconds = time.perf_counter() - start
        evaluations = result.stats.evaluations
        runs.append(Timed(name, settings.describe(), evaluations, evaluations * passes_per_evaluation(settings),
                          seconds))
    return runs


# ------------------------------------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quality", action="store_true", help="student vs teacher on held-out clips")
    mode.add_argument("--speed-full", action="store_true", help="sampler time of the full-size random network")
    mode.add_argument("--speed-demo", action="store_true", help="end-to-end generate time on one video")
    parser.add_argument("--teacher", default="demo")
    parser.add_argument("--student", default=None)
    parser.add_argument("--manifest", default=None)
    parser.add_argument("--limit", type=int, default=None, help="at most this many clips of each kind")
    parser.add_argument("--evals", default=",".join(map(str, DEFAULT_EVALS)),
                        help="the student's evaluation counts (default 1,2,4,8)")
    parser.add_argument("--dialogue", action="store_true", help="also the dialogue rows (with the talking clips)")
    parser.add_argument("--mel-tolerance-db", type=float, default=MEL_TOLERANCE_DB)
    parser.add_argument("--student-steps", type=int, default=4, help="--speed-full: the student's euler steps")
    parser.add_argument("--max-evals", type=int, default=None, help="--speed-full: cap dopri5's evaluations")
    parser.add_argument("--tiny", action="store_true", help="--speed-full: a tiny network (for the test)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="--speed-full")
    parser.add_argument("--device", default="cpu", help="--speed-full")
    parser.add_argument("--video", default=None, help="--speed-demo: the video")
    parser.add_argument("--transcript", default=None, help="--speed-demo: speech over the whole clip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="write every figure to this file")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    with torch.no_grad():  # a context, not set_grad_enabled(False): main() also runs inside the test process
        return _run(parser, args)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.quality or args.speed_demo:
        missing = [flag for flag, value in (("--student", args.student),
                                            ("--manifest" if args.quality else "--video",
                                             args.manifest if args.quality else args.video)) if value is None]
        if missing:
            parser.error(f"{'--quality' if args.quality else '--speed-demo'} needs {' and '.join(missing)}")

    if args.quality:
        from vssflow_core.pipeline import VSSFlowPipeline

        evals = [int(v) for v in args.evals.split(",") if v]
        teacher = VSSFlowPipeline.load(args.teacher, device="cpu")
        student = VSSFlowPipeline.load(args.student, device="cpu")
        report = measure_quality(teacher, student, args.manifest, evals=evals, limit=args.limit,
                                 dialogue=args.dialogue, seed=args.seed, mel_tolerance_db=args.mel_tolerance_db,
                                 progress=not args.no_progress)
        print_quality(report, args.mel_tolerance_db)
        out = {"mode": "quality", "teacher": args.teacher, "student": args.student, "manifest": args.manifest,
               "seed": args.seed, **report.as_json()}
    else:
        if args.speed_full:
            rows = speed_full(tiny=args.tiny, student_steps=args.student_steps, max_evals=args.max_evals,
                              seed=args.seed, dtype=getattr(torch, args.dtype), device=args.device)
        else:
            rows = speed_demo(args.teacher, args.student, args.video, transcript=args.transcript, seed=args.seed)
        print_speed(rows, per_pass=args.speed_full)
        if args.speed_full:
            print("only the sampler (the DiT): the rest of the pipeline is the same for both, see the "
                  "bench/pipeline_stages.py row of the README; random weights: dopri5's count is the random field's, "
                  "the seconds per pass scale to any count")
        out = {"mode": "speed-full" if args.speed_full else "speed-demo",
               "runs": [{**asdict(r), **({"seconds_per_pass": r.seconds_per_pass} if args.speed_full else {})}
                        for r in rows],
               "ratio_seconds": rows[0].seconds / rows[1].seconds, "ratio_passes": rows[0].passes / rows[1].passes}
        if args.speed_demo:
            out.update(teacher=args.teacher, student=args.student, video=args.video)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
