"""Distillation: the teacher's pairs (reproducible, sharded, resumable), guidance folded into the student (equal to
the teacher's two-pass guidance at initialisation), and the student as an ordinary checkpoint that recommends its own
sampler.

Tiny widths, a 2 s window (50 latent frames) and cache items written by hand, so the file takes seconds.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from vssflow_core.config import SequenceConfig, VSSFlowConfig
from vssflow_core.distill.pairs import (PairsDataset, PairsError, PairsPlan, read_shard, shard_path, teacher_endpoint,
                                        write_pairs)
from vssflow_core.distill.student import (ENDS_SHARPNESS, FoldedGuidance, StudentPlan, sample_times, student_from,
                                          train_student)
from vssflow_core.flow.guidance import CachedGuidedVelocity, GuidedVelocity
from vssflow_core.flow.settings import SamplerSettings, recommended_settings
from vssflow_core.loading import recommended_sampler
from vssflow_core.model.vssflow import VSSFlow
from vssflow_core.train.dataset import CachedFeatureDataset
from vssflow_core.train.features import CACHE_VERSION, item_path, sequence_key, write_item
from vssflow_core.train.manifest import read_manifests, write_manifest
from vssflow_core.weights.checkpoint import load_vssflow, save_vssflow

SEQ = SequenceConfig(duration_sec=2.0)
NET = VSSFlowConfig(clip_dim=16, synch_dim=16, speaker_dim=8, lip_dim=8, context_dim=32, lip_channels=8,
                    phone_channels=8, synch_channels=8, latent_channels=16, num_layers=1, num_heads=2, head_dim=16,
                    num_kv_heads=1, time_proj_dim=16, ff_mult=2)
ITEMS = 5
# The folded student at initialisation against the teacher's two-pass guidance: the same sums in another order, so
# float32 rounding only, relative to the field's size.
FOLD_TOLERANCE = 1e-5
# A cheaper teacher sampler than the official dopri5 for the tests that only need *a* teacher endpoint.
QUICK = SamplerSettings(solver="heun", steps=4)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs single-threaded (see the conftest fixture)."""


def random_teacher(seed: int = 0) -> VSSFlow:
    """A tiny network whose every weight is random (the DiT's zero-initialised output layers would make every
    velocity zero and every comparison trivial)."""
    torch.manual_seed(seed)
    model = VSSFlow(NET)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    return model.eval().requires_grad_(False)


def fake_cache(root, count: int = ITEMS):
    rows = []
    for i in range(count):
        row = {"id": f"clip{i}", "task": "vtts" if i % 2 else "v2s", "audio": f"a{i}.wav", "video": f"v{i}.mp4"}
        if i % 2:
            row["transcript"] = "HH AH0 L OW1"
        rows.append(row)
    manifest = write_manifest(root / "data.jsonl", rows)
    g = torch.Generator().manual_seed(1)
    for row in read_manifests([manifest]):
        tensors = {"latent_mean": torch.randn(NET.latent_channels, SEQ.latent_length, generator=g),
                   "latent_std": torch.full((NET.latent_channels, SEQ.latent_length), 0.1),
                   "clip": torch.randn(SEQ.clip_frames, NET.clip_dim, generator=g),
                   "synch": torch.randn(SEQ.synch_segments, SEQ.synch_tokens_per_segment, NET.synch_dim, generator=g)}
        if row.has_speech:
            tensors["phone_tokens"] = torch.tensor([59, 17, 68, 58])
        meta = {"version": CACHE_VERSION, "id": row.id, "task": row.task, "duration": 2.0,
                "speech_window": [0.2, 1.6] if row.has_speech else None, "fingerprint": row.fingerprint(),
                "sequence": sequence_key(SEQ), "extractors": "hand-made", "has_waveform": False}
        write_item(item_path(root / "cache", row.id), tensors, meta)
    return manifest


@pytest.fixture
def dataset(tmp_path):
    manifest = fake_cache(tmp_path)
    return CachedFeatureDataset(read_manifests([manifest]), tmp_path / "cache", NET, SEQ)


def shard_tensors(folder) -> dict[str, torch.Tensor]:
    items = PairsDataset(folder).items
    return {k: torch.stack([item[k] for item in items]) for k in items[0]}


# ---------------------------------------------------------------------------------------------------- pairs


def test_pairs_are_reproducible_and_do_not_depend_on_sharding(tmp_path, dataset):
    teacher = random_teacher()
    plan = PairsPlan(seed=7, shard_size=2)  # the official sampler: dopri5 1e-5, guidance scale 3
    assert plan.sampler.solver == "dopri5" and plan.sampler.guidance_scale == 3.0
    first = write_pairs(teacher, dataset, tmp_path / "a", plan, progress=False)
    write_pairs(teacher, dataset, tmp_path / "b", plan, progress=False)
    write_pairs(teacher, dataset, tmp_path / "c", PairsPlan(seed=7, shard_size=3), progress=False)
    a, b, c = (shard_tensors(tmp_path / name) for name in "abc")
    assert first.written == -(-ITEMS // 2) and first.evaluations > 0
    for key in a:
        assert torch.equal(a[key], b[key]), key  # same seed, same pairs
        assert torch.equal(a[key], c[key]), key  # and the same whatever the shard size
    assert a["noise"].shape == (ITEMS, NET.latent_channels, SEQ.latent_length)
    assert not torch.equal(a["noise"], a["endpoint"])
    # each endpoint is the teacher's official-sampler solve of its own noise on its own conditions
    cond, _, _ = dataset.conditions(3)
    endpoint, used = teacher_endpoint(teacher, cond, a["noise"][3], plan.sampler, SEQ.latent_length)
    assert torch.equal(endpoint, a["endpoint"][3]) and used == int(a["evaluations"][3])
    write_pairs(teacher, dataset, tmp_path / "d", PairsPlan(seed=8, shard_size=2), progress=False)
    assert not torch.equal(shard_tensors(tmp_path / "d")["noise"], a["noise"])  # another seed, other noise


def test_pair_generation_resumes_skipping_finished_shards(tmp_path, dataset):
    teacher = random_teacher()
    plan = PairsPlan(seed=0, shard_size=2, sampler=QUICK)
    out = tmp_path / "pairs"
    shards = -(-ITEMS // 2)
    # two torchrun ranks share the shards: rank r takes shards r, r + 2, ...
    r0 = write_pairs(teacher, dataset, out, plan, rank=0, world_size=2, progress=False)
    r1 = write_pairs(teacher, dataset, out, plan, rank=1, world_size=2, progress=False)
    assert (r0.written, r1.written) == ((shards + 1) // 2, shards // 2)
    assert sorted(read_shard(shard_path(out, k))[1]["ids"][0] for k in range(shards)) == ["clip0", "clip2", "clip4"]
    # an interrupted run: one shard missing, one cut short, a temporary file left behind
    shard_path(out, 1).unlink()
    with pytest.raises(PairsError, match="has 2 of 3 shards"):  # the student refuses an unfinished set
        PairsDataset(out)
    shard_path(out, 2).write_bytes(shard_path(out, 2).read_bytes()[:100])
    kept = shard_path(out, 0).stat().st_mtime_ns
    again = write_pairs(teacher, dataset, out, plan, progress=False)
    assert (again.written, again.skipped) == (2, shards - 2)
    assert shard_path(out, 0).stat().st_mtime_ns == kept  # finished shards are not touched
    assert len(PairsDataset(out)) == ITEMS
    assert not list(out.glob(".*"))  # no temporary files
    done = write_pairs(teacher, dataset, out, plan, progress=False)
    assert (done.written, done.skipped) == (0, shards)
    # pairs of another seed (or teacher, or sampler) are made again, and mixed folders are refused
    other = write_pairs(teacher, dataset, out, PairsPlan(seed=1, shard_size=2, sampler=QUICK), rank=0, world_size=2,
                        progress=False)
    assert other.written == (shards + 1) // 2
    with pytest.raises(PairsError, match="another teacher, seed or sampler"):
        PairsDataset(out)


def test_pairs_of_several_folders_train_together_each_item_once(tmp_path):
    manifest = fake_cache(tmp_path)
    rows = read_manifests([manifest])
    teacher = random_teacher()
    plan = PairsPlan(seed=0, shard_size=2, sampler=QUICK)
    first, more = (CachedFeatureDataset(part, tmp_path / "cache", NET, SEQ) for part in (rows[:3], rows[2:]))
    write_pairs(teacher, first, tmp_path / "a", plan, progress=False)  # clip0-2
    write_pairs(teacher, more, tmp_path / "b", plan, progress=False)  # clip2-4: more pairs, the first kept
    both = PairsDataset(tmp_path / "a", tmp_path / "b")
    assert both.ids == [f"clip{i}" for i in range(ITEMS)] and len(both) == ITEMS  # clip2 once
    whole = tmp_path / "whole"
    write_pairs(teacher, CachedFeatureDataset(rows, tmp_path / "cache", NET, SEQ), whole, plan, progress=False)
    for got, want in zip(both.items, PairsDataset(whole).items):
        assert all(torch.equal(got[k], want[k]) for k in want)  # the same pairs as one folder of every row
    write_pairs(teacher, more, tmp_path / "c", PairsPlan(seed=1, shard_size=2, sampler=QUICK), progress=False)
    with pytest.raises(PairsError, match="another teacher, seed or sampler than those in"):
        PairsDataset(tmp_path / "a", tmp_path / "c")
    with pytest.raises(PairsError, match="no pairs folder"):
        PairsDataset()


# ---------------------------------------------------------------------------------------------------- the student


def test_folded_guidance_is_the_teachers_two_pass_guidance_at_initialisation(dataset):
    teacher = random_teacher()
    folded = FoldedGuidance(student_from(teacher), teacher, guidance_scale=3.0)
    cond, _, _ = dataset.conditions(1)
    raw = {k: v[None] for k, v in cond.items()}
    prepared = teacher.prepare_conditions(*raw.values(), latent_length=SEQ.latent_length)
    official = GuidedVelocity(teacher, prepared, 3.0, batched=False)  # the official sampler's two passes
    g = torch.Generator().manual_seed(3)
    for t in (0.0, 0.3, 0.9):
        latent = torch.randn(1, NET.latent_channels, SEQ.latent_length, generator=g)
        x = torch.cat([latent, prepared.latent_cond], dim=1)
        expected = official(torch.tensor([t]), x)[:, : NET.latent_channels]
        with torch.no_grad():
            got = folded(latent, torch.tensor([t]), raw, fold=0.0)
            alone = folded(latent, torch.tensor([t]), raw, fold=1.0)
        scale = float(expected.abs().max())
        assert scale > 0.1  # a real field, not zeros
        assert float((got - expected).abs().max()) <= FOLD_TOLERANCE * scale
        # fully folded, the velocity is the student's one conditional pass, which is not yet the guided field
        conditional = GuidedVelocity(teacher, prepared, 1.0)(torch.tensor([t]), x)[:, : NET.latent_channels]
        assert torch.allclose(alone, conditional, atol=FOLD_TOLERANCE * scale)
        assert float((alone - expected).abs().max()) > 100 * FOLD_TOLERANCE * scale


def test_training_times_follow_the_chosen_distribution_reproducibly():
    def histogram(distribution):
        t = sample_times(100_000, distribution, torch.Generator().manual_seed(0))
        assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0
        return torch.histc(t, 10, 0.0, 1.0) / 10_000  # density per tenth of the flow, 1 = uniform

    assert torch.allclose(histogram("uniform"), torch.ones(10), atol=0.05)
    ends = histogram("ends")  # density proportional to cosh(a (t - 1/2)), symmetric, highest at both ends
    centres = torch.arange(10, dtype=torch.float64) / 10 + 0.05
    expected = torch.cosh(ENDS_SHARPNESS * (centres - 0.5))
    assert torch.allclose(ends.double(), expected / expected.mean(), rtol=0.05)
    same = [sample_times(8, "ends", torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(*same)
    with pytest.raises(ValueError, match="unknown time distribution 'normal'"):
        StudentPlan(time_distribution="normal")


def test_cosine_decay_takes_the_learning_rate_to_a_tenth_by_the_last_step(tmp_path, dataset):
    teacher = random_teacher()
    write_pairs(teacher, dataset, tmp_path / "pairs", PairsPlan(shard_size=2, sampler=QUICK), progress=False)
    plan = StudentPlan(max_steps=5, fold_steps=1, batch_size=2, learning_rate=1e-3, lr_decay="cosine")
    rates = train_student(teacher, PairsDataset(tmp_path / "pairs"), tmp_path / "s.safetensors", plan,
                          progress=False).learning_rates
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-4)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    with pytest.raises(ValueError, match="unknown learning-rate decay 'step'"):
        StudentPlan(lr_decay="step")


def test_a_trained_student_is_an_ordinary_checkpoint_that_recommends_its_sampler(tmp_path, dataset):
    teacher = random_teacher()
    teacher_file = save_vssflow(teacher, tmp_path / "teacher.safetensors")
    write_pairs(teacher, dataset, tmp_path / "pairs", PairsPlan(shard_size=2, sampler=QUICK), progress=False)
    plan = StudentPlan(max_steps=3, fold_steps=1, batch_size=2, learning_rate=1e-3, solver="euler", sample_steps=4,
                       time_distribution="ends")
    result = train_student(teacher, PairsDataset(tmp_path / "pairs"), tmp_path / "student.safetensors", plan,
                           teacher_path=teacher_file, progress=False)
    assert len(result.losses) == 3 and all(loss > 0 for loss in result.losses)
    assert result.learning_rates == [1e-3] * 3  # constant unless told to decay

    student = load_vssflow(result.path)  # the ordinary loader, no distillation code involved
    assert student.cfg == teacher.cfg
    changed = [n for n, p in student.state_dict().items() if not torch.equal(p, teacher.state_dict()[n])]
    assert changed  # it was trained
    with pytest.raises(FileExistsError):  # an existing student is not overwritten by accident
        train_student(teacher, PairsDataset(tmp_path / "pairs"), result.path, plan, progress=False)

    # loaded by name, its recommended sampler is the default: 4 euler steps, guidance folded (scale 1)
    settings = recommended_sampler(result.path)
    assert settings == SamplerSettings(solver="euler", steps=4, schedule="uniform", guidance_scale=1.0)
    assert recommended_sampler(result.path, steps=8, solver=None).steps == 8  # the user's choice wins
    renamed = tmp_path / "student.sft"  # the format comes from the bytes, as for the weights themselves
    shutil.copyfile(result.path, renamed)
    assert recommended_sampler(renamed) == settings
    assert recommended_sampler(teacher_file) == SamplerSettings()  # a teacher keeps the official sampler
    assert recommended_settings(None, guidance_scale=2.0).guidance_scale == 2.0
    with pytest.raises(TypeError, match="unknown sampler settings"):
        recommended_sampler(result.path, step=8)

    # at guidance scale 1 each evaluation is one conditional network pass (half the official cost)
    cond, _, _ = dataset.conditions(0)
    prepared = student.prepare_conditions(*(v[None] for v in cond.values()), latent_length=SEQ.latent_length)
    velocity = GuidedVelocity(student, prepared, settings.guidance_scale)
    x = torch.cat([torch.randn(1, NET.latent_channels, SEQ.latent_length), prepared.latent_cond], dim=1)
    solution = settings.make_solver().solve(velocity, x)
    assert solution.evaluations == 4 and velocity.network_passes == 4
    # the pipeline's cached field takes the same one pass, and it is the conditional field u + 1 (c - u)
    cached = CachedGuidedVelocity(student, prepared, 1.0)
    t = torch.tensor([0.5])
    one_pass = cached(t, x)
    assert cached.network_passes == 1
    c = student(x, t, prepared.context)[:, : NET.latent_channels].detach()
    assert torch.allclose(one_pass[:, : NET.latent_channels], c, atol=1e-5 * float(c.abs().max()))


def test_command_line_makes_pairs_then_a_student_folder(tmp_path, capsys):
    from vssflow_core.__main__ import main

    fake_cache(tmp_path, count=3)  # --limit 2 takes the first two
    teacher_dir = tmp_path / "teacher"
    save_vssflow(random_teacher(), teacher_dir / "vssflow.safetensors")
    (teacher_dir / "frontend.json").write_text("{}\n")  # a demo folder's extra file travels with the student
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"model": {}, "sequence": {"duration_sec": SEQ.duration_sec},
                                  "data": {"manifests": ["data.jsonl"], "cache_dir": "cache"}}))
    pairs = tmp_path / "pairs"
    args = ["distill", "pairs", "--config", str(config), "--teacher", str(teacher_dir), "--out", str(pairs),
            "--shard-size", "1", "--limit", "2", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    assert "2 shards written, 0 already there" in capsys.readouterr().out
    assert main(args) == 0
    assert "0 shards written, 2 already there" in capsys.readouterr().out
    student = tmp_path / "student"
    train = ["distill", "train", "--teacher", str(teacher_dir), "--pairs", str(pairs), "--out", str(student),
             "--steps", "2", "--fold-steps", "1", "--batch-size", "1", "--sample-steps", "2", "--device", "cpu",
             "--no-progress"]
    assert main(train) == 0
    assert "euler 2 steps" in capsys.readouterr().out
    assert sorted(p.name for p in student.iterdir()) == ["frontend.json", "vssflow.safetensors"]
    assert recommended_sampler(student).steps == 2 and load_vssflow(student).cfg == NET
    assert main(train) == 1 and "exists" in capsys.readouterr().err
    assert main(["distill", "train", "--teacher", str(teacher_dir), "--pairs", str(tmp_path / "none"), "--out",
                 str(tmp_path / "s2"), "--steps", "2", "--fold-steps", "1"]) == 1
    assert "no pairs" in capsys.readouterr().err
    other = save_vssflow(random_teacher(seed=1), tmp_path / "other.safetensors")
    assert main([*train[:3], str(other), *train[4:7], str(tmp_path / "s3")]) == 1
    assert "another teacher" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------------
# A student's recommendation is the default of the command line, the pipeline and the nodes; explicit options win
# ---------------------------------------------------------------------------------------------------------------------

STUDENT_SAMPLER = SamplerSettings(solver="euler", steps=2, guidance_scale=1.0)


def tiny_student(folder):
    """The tiny pipeline's components under ``folder``, beside a tiny network that recommends STUDENT_SAMPLER."""
    from tiny_models import NET_CFG, build_tiny_components
    from vssflow_core.flow.settings import sampler_metadata

    paths = build_tiny_components(folder)
    torch.manual_seed(0)
    paths["student"] = save_vssflow(VSSFlow(NET_CFG), folder / "student.safetensors",
                                    metadata=sampler_metadata(STUDENT_SAMPLER, guidance_folded=True))
    return paths


def test_the_command_line_samples_a_student_as_it_recommends_unless_told_otherwise(tmp_path, capsys):
    import av

    from vssflow_core.generate import main as generate_main
    from vssflow_core.video.synthetic import make_counter_video

    paths = tiny_student(tmp_path / "models")
    video = make_counter_video(tmp_path / "clip.mp4", 50, 25)  # 2 s: one window
    weights = ["--checkpoint", str(paths["student"]), "--clip", str(paths["clip"]), "--synchformer",
               str(paths["synchformer"]), "--vae", str(paths["vae"]), "--vocoder", str(paths["vocoder"]),
               "--device", "cpu", "-q"]

    def run(name, *options):
        out = tmp_path / f"{name}.mp4"
        assert generate_main(["--video", str(video), "-o", str(out), *weights, *options]) == 0
        with av.open(str(out)) as container:
            return capsys.readouterr().out, json.loads(container.metadata["vssflow"])

    summary, tags = run("recommended")
    assert "euler 2 steps (uniform) at guidance scale 1: 2 steps / 2 evaluations" in summary
    assert (tags["solver"], tags["steps"], tags["guidance_scale"]) == ("euler", 2, 1.0)
    summary, tags = run("heun", "--solver", "heun")  # the user's solver, the student's other settings
    assert "heun 2 steps (uniform) at guidance scale 1: 2 steps / 4 evaluations" in summary
    assert (tags["solver"], tags["steps"], tags["guidance_scale"]) == ("heun", 2, 1.0)
    summary, tags = run("teacher", "--checkpoint", str(paths["checkpoint"]), "--solver", "euler")
    assert "guidance scale 3:" in summary and tags["guidance_scale"] == 3.0  # an ordinary checkpoint: the defaults


def test_the_pipeline_and_the_sampler_node_follow_the_loaded_students_recommendation(tmp_path):
    from tiny_models import TINY_FILES
    from vssflow_core.loading import load_network
    from vssflow_core.pipeline import VSSFlowPipeline
    from workflow_tools import load_pack, pack_nodes

    root = tmp_path / "models" / "vssflow"
    paths = tiny_student(root / "tiny")  # the dropdowns' names: tiny/<file>
    names = {key: f"tiny/{name}" for key, name in TINY_FILES.items()}
    teacher, student = paths.pop("checkpoint"), paths.pop("student")
    assert load_network(student, device="cpu").recommended_sampler == STUDENT_SAMPLER
    assert load_network(teacher, device="cpu").recommended_sampler is None
    parts = {k: v for k, v in paths.items() if k != "rawnet3"}
    assert VSSFlowPipeline.load(student, device="cpu", **parts).default_settings == STUDENT_SAMPLER
    assert VSSFlowPipeline.load(teacher, device="cpu", **parts).default_settings == SamplerSettings()

    pack = load_pack()
    nodes = pack_nodes(pack)
    pack.nodes.comfy_bridge.configure(models_dirs=[root], input_dir=tmp_path / "input",
                                      output_dir=tmp_path / "output", temp_dir=tmp_path / "temp")
    (model,) = nodes["VSSFlowCheckpointLoader"].execute("tiny/student.safetensors", "auto", "float32")
    (components,) = nodes["VSSFlowComponentsLoader"].execute(names["clip"], names["synchformer"], names["vae"],
                                                             names["vocoder"], names["rawnet3"], False, "auto")
    video, *_ = nodes["VSSFlowVideoLoader"].execute(images=torch.rand(10, 8, 8, 3), frame_rate=10.0)
    (visual,) = nodes["VSSFlowVisualEncoder"].execute(components, video)
    widgets = {"seed": 0, "steps": 5, "guidance_scale": 3.0, "solver": "heun", "batch_size": 1}

    (latent,) = nodes["VSSFlowSampler"].execute(model, components, visual, **widgets)
    assert (latent.stats.solver, latent.stats.steps, latent.stats.evaluations) == ("euler", 2, 2)
    (latent,) = nodes["VSSFlowSampler"].execute(model, components, visual, **widgets, use_checkpoint_sampler=False)
    assert (latent.stats.solver, latent.stats.steps) == ("heun", 5)  # switched off: the widgets
