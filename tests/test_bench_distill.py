"""The distillation benchmark (``bench/distill.py``): the mel measure, the pass counts, the bar's verdict on
hand-made figures (passing, and each way of missing), the quality measurement end to end on a tiny demo-style
teacher and a student saved from it on two tiny hand-made clips, and ``--speed-full --tiny``.  No timing assertions.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vssflow_core.config import VSSFlowConfig
from vssflow_core.demo import DemoFrontendConfig
from vssflow_core.distill.student import save_student, student_from
from vssflow_core.flow.settings import SamplerSettings
from vssflow_core.media.video_file import write_frames_video
from vssflow_core.model.vssflow import VSSFlow
from vssflow_core.pipeline import VSSFlowPipeline
from vssflow_core.weights.checkpoint import save_vssflow

BENCH = Path(__file__).resolve().parents[1] / "bench" / "distill.py"
# 2 Griffin-Lim iterations instead of 48: the vocoder is most of a tiny generation's time, and nothing here is
# about how it sounds
FRONTENDS = DemoFrontendConfig(griffin_lim_iters=2)
NET = VSSFlowConfig(clip_dim=FRONTENDS.clip_dim, synch_dim=FRONTENDS.synch_dim, speaker_dim=8, lip_dim=8,
                    context_dim=32, lip_channels=8, phone_channels=8, synch_channels=8, num_layers=1, num_heads=2,
                    head_dim=16, num_kv_heads=1, time_proj_dim=16, ff_mult=2)
FPS = 25


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs single-threaded (see the conftest fixture)."""


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_distill", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def summary(bench, name="student k=4", **changes):
    """Figures of a setting that clears the bar against :func:`teacher_summary`."""
    base = bench.Summary(name=name, solver="euler 4 steps (uniform)", clips=10, evaluations=4, max_evaluations=4,
                         passes=4, max_passes=4, onset_f1_true=0.83, onset_f1_shuffled=0.2, lip_corr_true=0.61,
                         lip_corr_shuffled=0.05, mel_within=0.95, mel_max_db_median=0.4, mel_mean_db_median=0.05)
    return replace(base, **changes)


def teacher_summary(bench):
    return summary(bench, bench.TEACHER_NAME, solver="dopri5 atol=rtol=1e-05", evaluations=140, max_evaluations=188,
                   passes=280, max_passes=376, onset_f1_true=0.84, lip_corr_true=0.60, mel_within=math.nan,
                   mel_max_db_median=math.nan, mel_mean_db_median=math.nan)


# ---------------------------------------------------------------------------------------------------- the measures


def test_mel_difference_is_in_db_of_the_natural_log_mel(bench):
    reference = torch.zeros(10, 4)
    mel = reference.clone()
    mel[3, 2] = math.log(10.0) / 20.0  # one bin louder by a factor 10^(1/20) in amplitude: 1 dB
    largest, mean = bench.mel_difference_db(mel, reference)
    assert largest == pytest.approx(1.0) and mean == pytest.approx(1.0 / 40)
    assert bench.mel_difference_db(reference, reference) == (0.0, 0.0)


def test_a_clip_in_one_window_is_compared_over_its_duration(bench):
    window = torch.arange(1000.0)[None, :, None].expand(1, 1000, 2)  # 10 s at 100 frames per second
    assert bench.clip_mel([window], 2.0, 10.0).shape == (200, 2)
    assert bench.clip_mel([window, window], 15.0, 10.0).shape == (2000, 2)  # windows one after the other


def test_passes_and_the_students_evaluation_counts(bench):
    assert bench.passes_per_evaluation(SamplerSettings()) == 2  # the official sampler: guided, w = 3
    assert bench.passes_per_evaluation(SamplerSettings(guidance_scale=1.0)) == 1  # folded: conditional only
    euler = SamplerSettings(solver="euler", steps=4, guidance_scale=1.0)
    assert bench.student_settings(euler, 8).steps == 8
    heun = bench.student_settings(replace(euler, solver="heun"), 8)
    assert (heun.steps, heun.guidance_scale) == (4, 1.0)
    with pytest.raises(ValueError, match="2 evaluations per step"):
        bench.student_settings(replace(euler, solver="heun"), 1)
    with pytest.raises(ValueError, match="fixed-step"):
        bench.student_settings(SamplerSettings(), 4)


# ---------------------------------------------------------------------------------------------------- the bar


def test_the_bar_passes_a_student_that_matches_its_teacher(bench):
    verdict = bench.bar_verdict(summary(bench), teacher_summary(bench))
    assert verdict.passed and verdict.misses == []


@pytest.mark.parametrize("changes, says", [
    ({"max_passes": 16}, "16 per clip > 8 (by 8)"),
    ({"onset_f1_true": 0.80}, "onset F1: 0.800 against the teacher's 0.840, 0.040 apart (0.020 beyond 0.02)"),
    ({"onset_f1_true": 0.90}, "onset F1: 0.900"),  # better than the teacher by more than 0.02 is no match either
    ({"lip_corr_true": 0.50}, "lip corr: 0.500 against the teacher's 0.600, 0.100 apart (0.080 beyond"),
    ({"mel_within": 0.7}, "mel: 0.70 of the clips within 1 dB of the teacher's < 0.9 (short by 0.20"),
    ({"onset_f1_shuffled": 0.6}, "shuffled onset F1: 0.600, not below 0.5 (by 0.100)"),
    ({"lip_corr_shuffled": 0.3}, "shuffled lip corr: 0.300, not below 0.3"),
    ({"lip_corr_true": math.nan, "lip_corr_shuffled": math.nan}, "lip corr: not measured"),
])
def test_the_bar_says_by_how_much_each_part_misses(bench, changes, says):
    verdict = bench.bar_verdict(summary(bench, **changes), teacher_summary(bench))
    assert not verdict.passed
    assert any(says in miss for miss in verdict.misses), verdict.misses


def test_every_missed_part_is_listed(bench):
    verdict = bench.bar_verdict(summary(bench, max_passes=9, onset_f1_true=0.5, mel_within=0.0,
                                        lip_corr_shuffled=0.9), teacher_summary(bench))
    assert [m.split(":")[0] for m in verdict.misses] == ["network passes", "onset F1", "mel", "shuffled lip corr"]


# ---------------------------------------------------------------------------------------------------- end to end


def tiny_clips(root: Path) -> Path:
    """Two 2 s clips: a lamp flashing at 0.6 s and 1.4 s (sound), a mouth opening over 0.4-1.2 s (talking)."""
    silence = (np.zeros(2 * 16_000, dtype=np.float32), 16_000)
    frames = np.full((2 * FPS, 32, 32, 3), 30, dtype=np.uint8)
    for t in (0.6, 1.4):
        frames[int(t * FPS):int(t * FPS) + 3, 4:12, 4:12] = 240
    write_frames_video(root / "sound.mp4", frames, FPS, audio=silence)
    mouth = np.zeros(2 * FPS)
    mouth[int(0.4 * FPS):int(1.2 * FPS)] = 0.5 + 0.5 * np.sin(np.arange(int(0.8 * FPS)))
    faces = np.full((2 * FPS, 32, 32, 3), 30, dtype=np.uint8)
    for i, m in enumerate(mouth):
        faces[i, 20:20 + max(1, int(8 * m)), 10:22] = 200
    write_frames_video(root / "talk.mp4", faces, FPS, audio=silence)
    rows = [{"id": "sound", "task": "v2s", "video": "sound.mp4", "duration": 2.0, "fps": FPS,
             "events": [{"time": 0.6}, {"time": 1.4}]},
            {"id": "talk", "task": "vtts", "video": "talk.mp4", "duration": 2.0, "fps": FPS, "transcript": "Hello.",
             "speech_start": 0.4, "speech_end": 1.2, "mouth_open": mouth.tolist()}]
    manifest = root / "heldout.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return manifest


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny demo-style teacher folder (network + frontend.json) and a student saved from a copy of it."""
    root = tmp_path_factory.mktemp("distill_bench")
    teacher = root / "teacher"
    teacher.mkdir()
    torch.manual_seed(0)
    model = VSSFlow(NET).eval()
    save_vssflow(model, teacher / "vssflow.safetensors")
    (teacher / "frontend.json").write_text(FRONTENDS.to_json())
    student = save_student(student_from(model).eval(), root / "student",
                           SamplerSettings(solver="euler", steps=4, guidance_scale=1.0), {"objective": "copy"},
                           teacher_path=teacher)
    return teacher, student, tiny_clips(root)


def test_quality_measurement_on_a_tiny_teacher_and_its_student(bench, checkpoints, capsys):
    teacher_path, student_path, manifest = checkpoints
    teacher = VSSFlowPipeline.load(teacher_path, device="cpu")
    student = VSSFlowPipeline.load(student_path, device="cpu")
    report = bench.measure_quality(teacher, student, manifest, evals=(1, 2), progress=False)
    names = [s.name for s in report.summaries]
    assert names == [bench.TEACHER_NAME, "student k=1", "student k=2"]
    assert [c.kind for c in report.clips] == ["sound", "talk"]
    first, *students = report.summaries
    assert first.solver == "dopri5 atol=rtol=1e-05" and first.max_passes == 2 * first.max_evaluations
    assert [(s.max_evaluations, s.max_passes) for s in students] == [(1, 1), (2, 2)]
    for clip in report.clips:
        assert clip.runs[bench.TEACHER_NAME].mel_max_db is None  # the reference itself
        for name in names[1:]:
            run = clip.runs[name]
            assert math.isfinite(run.mel_max_db) and 0 <= run.mel_mean_db <= run.mel_max_db
            assert run.mel_mean_db <= run.mel_p99_db <= run.mel_max_db
    for s in report.summaries:
        assert 0 <= s.onset_f1_true <= 1 and -1 <= s.lip_corr_true <= 1
    assert [v.name for v in report.verdicts] == names[1:]
    bench.print_quality(report)
    out = capsys.readouterr().out
    assert "student k=2" in out and "the bar:" in out
    json.dumps(report.as_json(), default=str)  # everything it writes with --json is JSON
    with pytest.raises(ValueError, match="not a distilled student"):
        bench.measure_quality(teacher, teacher, manifest, evals=(1,), progress=False)


def test_several_students_are_measured_against_the_same_teacher_runs(bench, checkpoints, tmp_path, capsys):
    teacher_path, student_path, manifest = checkpoints
    out = tmp_path / "quality.json"
    other = tmp_path / "other"
    shutil.copytree(student_path, other)
    assert bench.main(["--quality", "--teacher", str(teacher_path), "--student", str(student_path), str(other),
                       "--manifest", str(manifest), "--evals", "1", "--no-progress", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    names = [s["name"] for s in report["summaries"]]
    assert names == [bench.TEACHER_NAME, f"{student_path.name} k=1", "other k=1"]
    # the same weights from the same noise: the same figures, against one teacher run per clip
    first, second = report["summaries"][1:]
    assert {k: v for k, v in first.items() if k != "name"} == {k: v for k, v in second.items() if k != "name"}
    assert "other k=1" in capsys.readouterr().out


def test_speed_full_tiny_runs_end_to_end(bench, tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert bench.main(["--speed-full", "--tiny", "--student-steps", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "teacher / student" in printed and "pipeline_stages" in printed
    runs = json.loads(out.read_text())["runs"]
    assert [r["name"] for r in runs] == ["teacher", "student"]
    assert runs[0]["passes"] == 2 * runs[0]["evaluations"] and runs[1]["passes"] == runs[1]["evaluations"] == 2
    assert bench.main(["--speed-full", "--tiny", "--max-evals", "8"]) == 0
    assert "capped" in capsys.readouterr().out
    assert torch.is_grad_enabled()  # the bench runs inside this process: it must leave autograd as it found it


class RandomConditions:
    """Just what ``write_pairs`` reads of a feature dataset: rows with ids, the sequence, and each row's raw
    conditions (random, fixed by the row's index)."""

    def __init__(self, count: int, sequence):
        self.rows = [type("Row", (), {"id": f"item{i}"})() for i in range(count)]
        self.sequence = sequence

    def conditions(self, index: int):
        g = torch.Generator().manual_seed(index)
        length, seq = self.sequence.latent_length, self.sequence
        cond = {"clip": torch.randn(seq.clip_frames, NET.clip_dim, generator=g),
                "synch": torch.randn(seq.synch_segments, seq.synch_tokens_per_segment, NET.synch_dim, generator=g),
                "phone_ids": torch.randint(1, NET.phone_vocab, (length,), generator=g),
                "lip": torch.zeros(length, NET.lip_dim), "speaker": torch.zeros(NET.speaker_dim)}
        return cond, {}, {}


def test_fit_is_exact_on_pairs_the_students_own_sampler_made_and_not_on_the_teachers(bench, checkpoints, tmp_path,
                                                                                    capsys):
    from vssflow_core.distill.pairs import PairsDataset, PairsPlan, write_pairs

    _, student_path, _ = checkpoints
    student = VSSFlowPipeline.load(student_path, device="cpu")
    own = student.model.recommended_sampler  # euler 4 at guidance scale 1
    sequence = student.components.sequence
    data = RandomConditions(3, sequence)
    write_pairs(student.model, data, tmp_path / "own", PairsPlan(shard_size=2, sampler=own), progress=False)
    rows = bench.measure_fit(student, PairsDataset(tmp_path / "own"), evals=(2, 4))
    exact = {r.name: r for r in rows}["student k=4"]
    assert exact.items == 3 and exact.mel_within == 1.0 and exact.mel_max_db_median < 1e-3
    other = {r.name: r for r in rows}["student k=2"]  # another schedule lands elsewhere
    assert other.mel_max_db_median > exact.mel_max_db_median
    assert other.mel_mean_db_median <= other.mel_p99_db_median <= other.mel_max_db_median
    assert [r.items for r in bench.measure_fit(student, PairsDataset(tmp_path / "own"), evals=(4,), limit=2)] == [2]
    out = tmp_path / "fit.json"
    assert bench.main(["--fit", "--student", str(student_path), "--pairs", str(tmp_path / "own"), "--evals", "4",
                       "--json", str(out)]) == 0
    assert "training pairs" in capsys.readouterr().out
    assert json.loads(out.read_text())["rows"][0]["mel_within"] == 1.0
