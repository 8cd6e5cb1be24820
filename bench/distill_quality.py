"""The quality half of the distillation benchmark (``bench/distill.py --quality``; what is measured and the bar are
in that file's docstring): the student's evaluation counts and network passes, the decoded log-mel, per-setting
summaries, the bar's verdict, and the held-out run itself."""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from sampler_efficiency import DB_PER_LOG_UNIT, MEL_TOLERANCE_DB, mel_difference_db  # noqa: E402
from vssflow_core.demo.evaluate import kind_of, score_sound, score_talk, shuffled_frames, speech_inputs  # noqa: E402
from vssflow_core.distill.pairs import TEACHER_SAMPLER  # noqa: E402
from vssflow_core.flow.settings import SamplerSettings  # noqa: E402

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
    mel_p99_db: float | None = None  # 99th percentile of the bins' differences: is the largest a few bins or many?


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
    mel_p99_db_median: float = math.nan


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
        mel_mean_db_median=float(np.median([r.mel_mean_db for r in mels])) if mels else math.nan,
        mel_p99_db_median=float(np.median([r.mel_p99_db for r in mels])) if mels else math.nan)


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


def mel_percentile_db(mel: torch.Tensor, reference: torch.Tensor, q: float = 0.99) -> float:
    """The ``q`` quantile of the bins' absolute differences, in dB (the scale of :func:`mel_difference_db`)."""
    return float(torch.quantile((mel.double() - reference.double()).abs().flatten(), q)) * DB_PER_LOG_UNIT


def measure_quality(teacher, students, manifest: str | Path, *, evals: Sequence[int] = DEFAULT_EVALS,
                    limit: int | None = None, dialogue: bool = False, seed: int = 0,
                    mel_tolerance_db: float = MEL_TOLERANCE_DB, progress: bool = True) -> QualityReport:
    """The teacher pipeline at the official sampler and each student pipeline at each of ``evals`` evaluations on
    the manifest's clips (module docstring); a student's solver is its checkpoint's recommendation.  ``students``:
    one pipeline (its settings named "student k=..."), or several by name ("<name> k=..."), all against the
    teacher's one run per clip."""
    from tqdm.auto import tqdm
    from vssflow_core.synthetic.analysis import decode_clip

    if not isinstance(students, Mapping):
        students = {"student": students}
    settings = {TEACHER_NAME: TEACHER_SAMPLER}
    pipelines = {TEACHER_NAME: teacher}
    for label, student in students.items():
        recommended = getattr(student.model, "recommended_sampler", None)
        if recommended is None:
            raise ValueError(f"the {label} checkpoint recommends no sampler: it is not a distilled student (make one "
                             "with python -m vssflow_core distill train)")
        for k in evals:
            settings[f"{label} k={k}"] = student_settings(recommended, k)
            pipelines[f"{label} k={k}"] = student
    manifest = Path(manifest)
    clips = []
    for row in tqdm(quality_rows(manifest, limit, dialogue), desc="held-out clips", unit="clip",
                    disable=not progress):
        frames, _, _ = decode_clip(manifest.parent / row["video"])  # once per clip, for every setting
        shuffled, fps = shuffled_frames(frames), int(row["fps"])
        clip = ClipRuns(row["id"], kind_of(row))
        reference = None
        for name, sampler in settings.items():
            pipeline = pipelines[name]
            true, mel, evaluations = _generate(pipeline, frames, fps, row, sampler, seed)
            baseline, _, _ = _generate(pipeline, shuffled, fps, row, sampler, seed)
            run = Run(evaluations, evaluations * passes_per_evaluation(sampler), true, baseline)
            if reference is None:
                reference = mel  # the teacher's, first
            else:
                run.mel_max_db, run.mel_mean_db = mel_difference_db(mel, reference)
                run.mel_p99_db = mel_percentile_db(mel, reference)
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
          f"{'max dB med':>10} {'p99 dB med':>10} {'mean dB med':>11}")
    for s in report.summaries:
        print(f"{s.name:<16} {s.solver:<26} {s.evaluations:>7.1f} {s.max_evaluations:>5} {s.passes:>7.1f} "
              f"{s.max_passes:>5} {_f(s.onset_f1_true):>9} / {_f(s.onset_f1_shuffled):<7} "
              f"{_f(s.lip_corr_true):>9} / {_f(s.lip_corr_shuffled):<7} {_f(s.mel_within, 2):>8} "
              f"{_f(s.mel_max_db_median, 2):>10} {_f(s.mel_p99_db_median, 2):>10} {_f(s.mel_mean_db_median, 2):>11}")
    print()
    print(f"the bar: network passes <= {MAX_NETWORK_PASSES}, onset F1 and lip corr within {SCORE_TOLERANCE:g} of the "
          f"teacher's, >= {MEL_WITHIN_FRACTION:g} of the clips within {mel_tolerance_db:g} dB in every mel bin, "
          f"shuffled onset F1 < {SHUFFLED_ONSET_F1_BELOW:g} and shuffled lip corr < {SHUFFLED_LIP_CORR_BELOW:g}")
    for v in report.verdicts:
        print(f"{v.name:<16} " + ("passes" if v.passed else "misses: " + "; ".join(v.misses)))
