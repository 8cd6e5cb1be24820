"""Training: configuration, manifests, the feature cache, sound + speech mixing, the loop, exact resume and DDP.

Everything runs on tiny widths and a 2 s window (50 latent frames), with cached items written by hand where the
extractors do not matter, so the whole file takes seconds.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vssflow_core.config import SequenceConfig
from vssflow_core.train.config import ConfigError, TrainConfig, load_config
from vssflow_core.train.dataset import CachedFeatureDataset, ResumableBatchSampler
from vssflow_core.train.features import CACHE_VERSION, item_path, read_item, sequence_key, write_item
from vssflow_core.train.manifest import ManifestError, read_manifests, write_manifest
from vssflow_core.train.mixing import MixPlan, MixSource, SoundSpeechMixDataset, draw_plan, mix_sound_and_speech
from vssflow_core.train.trainer import Trainer, autocast_dtype, draw_step, warmup_factor

REPO = Path(__file__).resolve().parents[1]
WINDOW = 2.0
SEQ = SequenceConfig(duration_sec=WINDOW)
TINY_MODEL = dict(clip_dim=16, synch_dim=16, speaker_dim=8, lip_dim=8, context_dim=32, lip_channels=8,
                  phone_channels=8, synch_channels=8, num_layers=1, num_heads=2, head_dim=16, num_kv_heads=1,
                  time_proj_dim=16, ff_mult=2)
TASKS = ("v2s", "vtts", "tts")


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs single-threaded (see the conftest fixture)."""


def fake_dataset(root: Path, count: int = 10, seed: int = 0, waveform: bool = True) -> Path:
    """A manifest of ``count`` rows (v2s / vtts / tts in turn) and cache items written by hand; returns the
    manifest.  The targets have a strong, learnable structure."""
    rows = []
    for i in range(count):
        task = TASKS[i % 3]
        row = {"id": f"item{i:02d}", "task": task, "audio": f"a{i}.wav"}
        if task != "tts":
            row["video"] = f"v{i}.mp4"
        if task != "v2s":
            row["transcript"] = "HH AH0 L OW1 W ER1 L D"
        rows.append(row)
    manifest = write_manifest(root / "data.jsonl", rows)
    g = torch.Generator().manual_seed(seed)
    pattern = torch.sin(torch.linspace(0, 12, SEQ.latent_length))[None] * torch.linspace(-4, 4, 128)[:, None]
    for row in read_manifests([manifest]):
        i = int(row.id[4:])
        tensors = {"latent_mean": pattern * (1 + 0.1 * (i % 3)) + 0.1 * torch.randn(128, SEQ.latent_length,
                                                                                      generator=g),
                   "latent_std": torch.full((128, SEQ.latent_length), 0.05)}
        if waveform:
            tensors["waveform"] = (0.3 * torch.randn(SEQ.num_samples, generator=g)).half()
        if row.has_video:
            tensors["clip"] = torch.randn(SEQ.clip_frames, 16, generator=g)
            tensors["synch"] = torch.randn(SEQ.synch_segments, 8, 16, generator=g)
        if row.has_speech:
            tensors["phone_tokens"] = torch.tensor([59, 17, 68, 58, 56, 50, 60, 58, 7, 59])
            tensors["speaker"] = torch.randn(8, generator=g)
        meta = {"version": CACHE_VERSION, "id": row.id, "task": row.task, "duration": 1.2 + 0.05 * i,
                "speech_window": [0.1, 1.1] if row.has_speech else None, "fingerprint": row.fingerprint(),
                "sequence": sequence_key(SEQ), "extractors": "hand-made", "has_waveform": waveform}
        write_item(item_path(root / "cache", row.id), tensors, meta)
    return manifest


def tiny_vae_folder(root: Path) -> Path:
    from vssflow_core.codec.vae import MelVAE, VAEConfig
    from safetensors.torch import save_file
    import dataclasses

    cfg = VAEConfig(block_out_channels=(8, 8, 8), layers_per_block=1, latent_channels=8, norm_num_groups=4)
    torch.manual_seed(3)
    folder = root / "vae"
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in MelVAE(cfg).state_dict().items()},
              str(folder / "diffusion_pytorch_model.safetensors"))
    (folder / "config.json").write_text(json.dumps(dataclasses.asdict(cfg)))
    return folder


def config_values(**sections) -> dict:
    values = {
        "model": dict(TINY_MODEL),
        "sequence": {"duration_sec": WINDOW},
        "data": {"manifests": ["data.jsonl"], "cache_dir": "cache", "batch_size": 4, "accumulate_grad_batches": 1},
        "optim": {"learning_rate": 2e-3, "warmup_steps": 0},
        "train": {"out_dir": "run", "max_steps": 4, "checkpoint_every": 1000, "progress": False, "device": "cpu"},
    }
    for name, updates in sections.items():
        values.setdefault(name, {}).update(updates)
    return values


def weights_of(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "vssflow.safetensors"))


def logged_losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "log.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------------------------------------- configuration


def test_config_files_json_and_toml_defaults_and_errors(tmp_path, monkeypatch):
    (tmp_path / "run.json").write_text(json.dumps({"data": {"batch_size": 8}, "train": {"mask_ratios": [0.0, 1.0]}}))
    (tmp_path / "run.toml").write_text('[data]\nbatch_size = 8\n[train]\nmask_ratios = [0.0, 1.0]\n')
    a, b = load_config(tmp_path / "run.json"), load_config(tmp_path / "run.toml")
    assert a.to_dict() == b.to_dict()
    assert a.train.mask_ratios == (0.0, 1.0) and a.data.batch_size == 8
    # the official recipe as defaults
    d = TrainConfig()
    assert (d.optim.betas, d.optim.eps, d.optim.weight_decay) == ((0.9, 0.999), 1e-8, 0.01)
    assert d.optim.learning_rate_for(36 * 2 * 4) == pytest.approx(1.152e-4)
    assert (d.train.unconditional_prob, d.train.seed, d.optim.warmup_steps) == (0.1, 42, 2000)
    factor = warmup_factor(2000)
    assert [factor(s) for s in (0, 1000, 1999, 2000, 10**6)] == [0.0, 0.5, 1999 / 2000, 1.0, 1.0]
    # relative paths resolve against the file; overrides
    c = load_config(tmp_path / "run.json", ["train.max_steps=7", "data.mix.ratio=0.5"])
    assert c.train.max_steps == 7 and c.data.mix.ratio == 0.5 and c.data.keeps_waveform
    assert c.cache_dir == tmp_path / "cache"
    # a path typed on the command line is where the user stands, not beside the file
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    e = load_config(tmp_path / "run.json", ['data.manifests=["data/train.jsonl"]', "data.cache_dir=data/cache",
                                            "train.resume=auto", "encoders.rawnet3=none"])
    assert e.manifest_paths == [elsewhere / "data/train.jsonl"] and e.cache_dir == elsewhere / "data/cache"
    assert e.train.resume == "auto" and e.encoders.rawnet3 == "none"
    with pytest.raises(ConfigError, match="unknown key"):
        TrainConfig.from_dict({"optim": {"lr": 1.0}})
    with pytest.raises(ConfigError, match="mix.modes"):
        TrainConfig.from_dict({"data": {"mix": {"modes": ["blend"]}}})



def test_autocast_auto_is_bfloat16_only_where_the_hardware_multiplies_it(monkeypatch):
    from vssflow_core import devices

    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "_cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert autocast_dtype("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(devices, "_cpu_flags", lambda: frozenset({"avx2"}))  # emulated bf16: float32 instead
    assert autocast_dtype("auto", cpu) is None
    assert autocast_dtype("bfloat16", cpu) == torch.bfloat16 and autocast_dtype(None, cpu) is None
    assert TrainConfig.from_dict({"train": {"autocast": "auto"}}).train.autocast == "auto"
    with pytest.raises(ConfigError, match="train.autocast must be"):
        TrainConfig.from_dict({"train": {"autocast": "fp8"}})
    assert load_config(Path(__file__).parents[1] / "vssflow_core/demo/train.toml").train.autocast == "auto"

def test_manifest_rows_are_validated(tmp_path):
    good = [{"task": "v2s", "video": "a.mp4"},
            {"task": "vtts", "video": "b.mp4", "transcript": "hello", "speech_start": 0.5},
            {"id": "c", "task": "tts", "audio": "c.wav", "transcript": "hi", "speaker_ref": "none", "label": 3}]
    rows = read_manifests([write_manifest(tmp_path / "m.jsonl", good)])
    assert [r.id for r in rows] == ["a.mp4", "b.mp4", "c"]
    assert rows[0].audio == tmp_path / "a.mp4" and rows[0].speaker_ref is None
    assert rows[1].speaker_ref == "self" and rows[1].speech_start == 0.5
    assert rows[2].speaker_ref is None and rows[2].extra == {"label": 3}
    for bad, message in [({"task": "tts", "audio": "x.wav"}, "transcript"),
                         ({"task": "v2s", "audio": "x.wav"}, "video"),
                         ({"task": "sing", "video": "x.mp4"}, "task")]:
        write_manifest(tmp_path / "bad.jsonl", [bad])
        with pytest.raises(ManifestError, match=message):
            read_manifests([tmp_path / "bad.jsonl"])


# ---------------------------------------------------------------------------------------------------- mixing


def _source(clip_value: float, duration: float, seq: SequenceConfig, phone: int) -> MixSource:
    g = torch.Generator().manual_seed(int(clip_value * 10))
    phone_ids = torch.zeros(seq.latent_length, dtype=torch.long)
    phone_ids[: int(duration * 25)] = phone
    return MixSource(
        clip=torch.full((seq.clip_frames, 4), clip_value) + torch.arange(seq.clip_frames)[:, None],
        synch=torch.randn(seq.synch_segments, 8, 4, generator=g),
        waveform=torch.randn(seq.num_samples, generator=g),
        duration=duration, phone_ids=phone_ids,
        lip=torch.randn(seq.latent_length, 6, generator=g), speaker=torch.randn(5, generator=g))


@pytest.mark.parametrize("mode", ["add", "insert"])
def test_mixing_modes_produce_the_spec_slices(mode):
    seq = SequenceConfig()  # the official 10 s window: 10 CLIP fps, 24 Synchformer tokens/s, 16 kHz, 25 latent fps
    sound, speech = _source(1.0, 8.0, seq, phone=0), _source(50.0, 3.0, seq, phone=17)
    plan = MixPlan(start=0.83, mode=mode, gain=0.4)
    out = mix_sound_and_speech(sound, speech, plan, seq)
    fs, ss, ws, lead = 8, 19, 13280, 20  # int(0.83 * 10), int(0.83 * 24), int(0.83 * 16000), int(0.83 * 25)
    combine = (lambda a, s: a + s) if mode == "add" else (lambda a, s: s)
    # CLIP: untouched before the start; from it on, the speech item's frames from its first, as many as fit
    assert torch.equal(out["clip"][:fs], sound.clip[:fs])
    assert torch.equal(out["clip"][fs:], combine(sound.clip[fs:], speech.clip[: seq.clip_frames - fs]))
    flat_a, flat_s, flat = (x.reshape(-1, 4) for x in (sound.synch, speech.synch, out["synch"]))
    assert out["synch"].shape == sound.synch.shape
    assert torch.equal(flat[:ss], flat_a[:ss]) and torch.equal(flat[ss:], combine(flat_a[ss:], flat_s[: 240 - ss]))
    # waveform: int(d_s * 16000) samples from the start; 'add' scales the sound there by the gain
    n = 3 * 16000
    expected = sound.waveform.clone()
    expected[ws:ws + n] = (expected[ws:ws + n] * 0.4 + speech.waveform[:n]) if mode == "add" else speech.waveform[:n]
    assert torch.equal(out["waveform"], expected)
    # phonemes and lip: the speech item's, delayed by int(start * 25) frames; speaker: the speech item's
    assert torch.equal(out["phone_ids"][:lead], torch.zeros(lead, dtype=torch.long))
    assert torch.equal(out["phone_ids"][lead:lead + 75], torch.full((75,), 17))
    assert torch.equal(out["phone_ids"][lead + 75:], torch.zeros(250 - lead - 75, dtype=torch.long))
    assert torch.equal(out["lip"][lead:], speech.lip[: 250 - lead]) and not out["lip"][:lead].any()
    assert torch.equal(out["speaker"], speech.speaker)


def test_mix_plan_follows_the_official_draws():
    from vssflow_core.train.config import MixConfig

    mix = MixConfig(ratio=1.0)
    plans = [draw_plan(random.Random(i), 10.0, 3.0, mix) for i in range(200)]
    assert all(0.0 <= p.start <= 7.0 for p in plans) and {p.mode for p in plans} == {"add", "insert"}
    assert all(0.3 <= p.gain <= 0.7 for p in plans if p.mode == "add")
    assert all(p.start == 0.0 for p in (draw_plan(random.Random(i), 2.0, 3.0, mix) for i in range(20)))


def test_mixing_dataset_is_keyed_by_epoch_and_index(tmp_path):
    from vssflow_core.config import VSSFlowConfig
    from vssflow_core.train.config import MixConfig

    manifest = fake_dataset(tmp_path, count=6)
    base = CachedFeatureDataset(read_manifests([manifest]), tmp_path / "cache", VSSFlowConfig(**TINY_MODEL), SEQ)
    mixed = SoundSpeechMixDataset(base, MixConfig(ratio=1.0), seed=5)
    a, b, c = mixed[(2, 0)], mixed[(2, 0)], mixed[(2, 1)]
    assert "waveform" in a and not a["latent_mean"].any()  # the target is a waveform for the VAE
    assert torch.equal(a["waveform"], b["waveform"]) and a["info"]["mix"] == b["info"]["mix"]
    assert a["info"]["mix"] != c["info"]["mix"]
    assert a["info"]["mix"]["speech"] in {"item01", "item02", "item04", "item05"}
    assert a["info"]["mix"]["sound"] in {"item00", "item03"}
    plain = SoundSpeechMixDataset(base, MixConfig(ratio=0.0), seed=5)[(2, 0)]
    assert "waveform" not in plain and plain["latent_mean"].any()


# ---------------------------------------------------------------------------------------------------- batches


def test_sampler_splits_global_batches_and_resumes():
    single = ResumableBatchSampler(10, 4, seed=1)
    ranks = [ResumableBatchSampler(10, 2, world_size=2, rank=r, seed=1) for r in range(2)]
    it1, it2 = iter(single), [iter(r) for r in ranks]
    for _ in range(5):  # over epoch boundaries (2 batches per epoch, the last 2 items dropped)
        assert next(it1) == next(it2[0]) + next(it2[1])
    resumed = iter(ResumableBatchSampler(10, 4, seed=1, epoch=2, batch_in_epoch=1))
    fresh = iter(ResumableBatchSampler(10, 4, seed=1))
    for _ in range(5):
        next(fresh)
    assert next(resumed) == next(fresh)


def test_step_draws_are_global_and_cfg_dropout_is_batch_wide():
    whole = draw_step(42, 7, 1, 4, slice(0, 4), 8, 5, 0.5, (0.0, 0.5))
    halves = [draw_step(42, 7, 1, 4, slice(r * 2, r * 2 + 2), 8, 5, 0.5, (0.0, 0.5)) for r in range(2)]
    for name in ("x0", "eps", "t", "lip_keep", "synch_keep"):
        assert torch.equal(getattr(whole, name), torch.cat([getattr(h, name) for h in halves]))
    assert whole.dropped == halves[0].dropped == halves[1].dropped
    drops = [draw_step(42, s, 0, 2, slice(0, 2), 1, 1, 0.1, (0.0,)).dropped for s in range(2000)]
    assert 0.07 < sum(drops) / len(drops) < 0.13


# ---------------------------------------------------------------------------------------------------- training


def test_objective_dropouts_zero_exactly_the_official_parts():
    from vssflow_core.config import VSSFlowConfig
    from vssflow_core.flow.path import flow_matching_loss
    from vssflow_core.model.vssflow import Conditions, VSSFlow
    from vssflow_core.train.trainer import FlowMatchingObjective

    torch.manual_seed(0)
    model = VSSFlow(VSSFlowConfig(**TINY_MODEL))
    objective = FlowMatchingObjective(model, SEQ.latent_length)
    B, L = 2, SEQ.latent_length
    clip, synch = torch.randn(B, SEQ.clip_frames, 16), torch.randn(B, SEQ.synch_segments, 8, 16)
    phones, lip, speaker = torch.randint(1, 70, (B, L)), torch.randn(B, L, 8), torch.randn(B, 8)
    x0, x1, t = torch.randn(B, 128, L), torch.randn(B, 128, L), torch.rand(B)
    ones, zeros = torch.ones(B, 1, L), torch.zeros(B, 1, L)
    one, zero = torch.tensor(1.0), torch.tensor(0.0)
    # CFG dropout: both routes are zeros, i.e. the unconditional inputs of guidance
    cond = model.prepare_conditions(clip, synch, phones, lip, speaker, latent_length=L)
    unconditional = flow_matching_loss(model, x0, x1, t, cond.zeros_like())
    assert torch.equal(objective(clip, synch, phones, lip, speaker, x0, x1, t, zero, ones, ones), unconditional)
    # frame dropout of every frame = no lip and no Synchformer input (the projections have no bias)
    dropped = objective(clip, synch, phones, lip, speaker, x0, x1, t, one, zeros, zeros)
    absent = objective(clip, torch.zeros_like(synch), phones, torch.zeros_like(lip), speaker, x0, x1, t, one, ones,
                       ones)
    assert torch.equal(dropped, absent)
    conditional = flow_matching_loss(model, x0, x1, t, Conditions(cond.context, cond.latent_cond))
    assert torch.equal(objective(clip, synch, phones, lip, speaker, x0, x1, t, one, ones, ones), conditional)



def test_loss_decreases_on_a_tiny_overfit_batch(tmp_path):
    fake_dataset(tmp_path, count=4)
    cfg = TrainConfig.from_dict(config_values(train={"max_steps": 40, "unconditional_prob": 0.0},
                                              optim={"learning_rate": 3e-3}), base_dir=tmp_path)
    result = Trainer(cfg).fit()
    first, last = np.mean(result.losses[:5]), np.mean(result.losses[-5:])
    assert last < 0.6 * first, (first, last)
    assert logged_losses(tmp_path / "run") == result.losses
    # the checkpoint's network loads with the library's loader
    from vssflow_core.weights.checkpoint import load_vssflow

    from vssflow_core.model.vssflow import VSSFlow

    model = load_vssflow(result.checkpoint)
    torch.manual_seed(cfg.train.seed)
    initial = VSSFlow(cfg.model)
    assert model.cfg == cfg.model
    assert torch.equal(model.dit.time_proj.weight, initial.dit.time_proj.weight)  # frozen Fourier weights
    assert not torch.equal(model.dit.proj_in.weight, initial.dit.proj_in.weight)


def test_resume_reproduces_the_uninterrupted_loss_curve_exactly(tmp_path):
    fake_dataset(tmp_path, count=10)
    vae = tiny_vae_folder(tmp_path)
    values = config_values(
        data={"batch_size": 2, "accumulate_grad_batches": 2, "mix": {"ratio": 0.5}},
        train={"max_steps": 6, "unconditional_prob": 0.3, "mask_ratios": [0.0, 0.5], "checkpoint_every": 3},
        optim={"learning_rate": 1e-3, "warmup_steps": 2}, encoders={"vae": str(vae)})
    straight = TrainConfig.from_dict({**values, "train": {**values["train"], "out_dir": "straight"}},
                                     base_dir=tmp_path)
    full = Trainer(straight).fit()

    split = {**values, "train": {**values["train"], "out_dir": "split"}}
    first = Trainer(TrainConfig.from_dict(split, base_dir=tmp_path)).fit(max_steps=4)  # checkpoint at 3 and 4
    assert first.losses == full.losses[:4]
    # kill after step 4, resume from the step-3 checkpoint in a fresh trainer: steps 4..6 are recomputed
    import shutil

    shutil.rmtree(tmp_path / "split" / "checkpoints" / "step_00000004")
    (tmp_path / "split" / "checkpoints" / "latest").write_text("step_00000003\n")
    resumed_trainer = Trainer(TrainConfig.from_dict(split, base_dir=tmp_path))
    resumed = resumed_trainer.fit()
    assert resumed_trainer.resumed_from.name == "step_00000003"
    assert resumed.steps == [4, 5, 6]
    assert resumed.losses == full.losses[3:]  # bit-for-bit the same losses
    assert logged_losses(tmp_path / "split") == logged_losses(tmp_path / "straight") == full.losses
    a, b = weights_of(full.checkpoint), weights_of(resumed.checkpoint)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the mixtures were really encoded by the VAE, and CFG dropout happened
    log = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert any(any(rec["cfg_dropped"]) for rec in log) and resumed_trainer.vae is not None


def test_two_process_ddp_matches_a_single_process_run(tmp_path):
    fake_dataset(tmp_path, count=10)
    common = dict(train={"max_steps": 3, "unconditional_prob": 0.3, "mask_ratios": [0.0, 0.5],
                         "checkpoint_every": 1000})
    ddp_values = config_values(data={"batch_size": 2}, **{k: {**v, "out_dir": "ddp"} for k, v in common.items()})
    (tmp_path / "ddp.json").write_text(json.dumps(ddp_values))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "vssflow_core.train", "--config", str(tmp_path / "ddp.json"), "--skip-cache", "--no-progress"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    single_values = config_values(data={"batch_size": 4}, **{k: {**v, "out_dir": "single"} for k, v in common.items()})
    single = Trainer(TrainConfig.from_dict(single_values, base_dir=tmp_path)).fit()
    ddp_losses = logged_losses(tmp_path / "ddp")
    assert len(ddp_losses) == 3
    np.testing.assert_allclose(ddp_losses, single.losses, rtol=1e-5, atol=1e-6)
    ddp_ckpt = tmp_path / "ddp" / "checkpoints" / "step_00000003"
    a, b = weights_of(ddp_ckpt), weights_of(single.checkpoint)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=3e-5, msg=key)
    meta = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert meta["data"]["batch_size"] == 2


# ---------------------------------------------------------------------------------------------------- the cache


def _tiny_extractor(fingerprint: str = "tiny"):
    from vssflow_core.codec.vae import MelVAE, VAEConfig
    from vssflow_core.components import PipelineComponents
    from vssflow_core.encoders.clip import CLIPVisionConfig, CLIPVisualEncoder
    from vssflow_core.encoders.rawnet3 import RawNet3, RawNet3Config
    from vssflow_core.encoders.synchformer import SynchformerConfig, SynchformerVisualEncoder
    from vssflow_core.train.features import FeatureExtractor

    torch.manual_seed(0)
    # 64-wide single-head towers: the loaders read the head count as width / 64, as for the real ones
    clip = CLIPVisualEncoder(CLIPVisionConfig(width=64, layers=1, heads=1, patch_size=16, input_resolution=32,
                                              output_dim=8))
    synch = SynchformerVisualEncoder(SynchformerConfig(embed_dim=64, depth=1, num_heads=1, patch_size=16, img_size=32,
                                                       num_frames=16))
    for p in [*clip.parameters(), *synch.parameters()]:
        torch.nn.init.normal_(p, std=0.02)
    vae = MelVAE(VAEConfig(block_out_channels=(8, 8, 8), layers_per_block=1, latent_channels=8, norm_num_groups=4))
    rawnet = RawNet3(RawNet3Config(channels=16, n_out=8, pooled_channels=24, attention_channels=8)).eval()
    components = PipelineComponents(clip, synch, vae, None, rawnet, sequence=SEQ)
    return FeatureExtractor(components, lip_dim=8, fingerprint=fingerprint)


def test_feature_cache_is_computed_once_and_resumable(tmp_path):
    from vssflow_core.synthetic import SceneSpec, espeak_available, generate_item
    from vssflow_core.train.features import build_cache

    spec = SceneSpec(size=32, duration=WINDOW)
    rows = [generate_item(tmp_path, "train", "sound", 0, seed=1, spec=spec)]
    if espeak_available():
        rows.append(generate_item(tmp_path, "train", "talk", 0, seed=1, spec=spec))
    rows.append({"id": "sound-again", "task": "v2s", "video": rows[0]["video"]})
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    parsed = read_manifests([manifest])
    extractor = _tiny_extractor()
    report = build_cache(parsed, tmp_path / "cache", extractor, sequence=SEQ, progress=False)
    assert (report.computed, report.skipped) == (len(rows), 0)
    tensors, meta = read_item(item_path(tmp_path / "cache", parsed[0].id))
    assert tensors["clip"].shape == (20, 64) and tensors["synch"].shape == (5, 8, 64)
    assert tensors["latent_mean"].shape == (128, 50) and (tensors["latent_std"] > 0).all()
    assert "phone_tokens" not in tensors and "speaker" not in tensors and meta["duration"] == WINDOW
    if espeak_available():
        talk, talk_meta = read_item(item_path(tmp_path / "cache", parsed[1].id))
        assert talk["speaker"].shape == (8,) and talk["phone_tokens"][0] == talk["phone_tokens"][-1] == 59
        assert talk_meta["speech_window"] == [rows[1]["speech_start"], rows[1]["speech_end"]]

    def must_not_load():
        raise AssertionError("a complete cache must not load the extractors")

    again = build_cache(parsed, tmp_path / "cache", must_not_load, sequence=SEQ, extractors_fingerprint="tiny",
                        progress=False)
    assert (again.computed, again.skipped) == (0, len(rows))
    # a missing item, a changed file or other extractors are recomputed, nothing else
    item_path(tmp_path / "cache", parsed[1].id).unlink()
    third = build_cache(parsed, tmp_path / "cache", extractor, sequence=SEQ, progress=False)
    assert (third.computed, third.skipped) == (1, len(rows) - 1)
    video = tmp_path / rows[0]["video"]
    os.utime(video, ns=(video.stat().st_atime_ns, video.stat().st_mtime_ns + 10**9))
    changed = build_cache(read_manifests([manifest]), tmp_path / "cache", extractor, sequence=SEQ, progress=False)
    assert (changed.computed, changed.skipped) == (2, len(rows) - 2)  # both rows of that video
    fourth = build_cache(parsed, tmp_path / "cache", _tiny_extractor("other"), sequence=SEQ, progress=False)
    assert fourth.computed == len(rows)
    assert not list((tmp_path / "cache" / "items").glob(".*"))  # no temporary files left behind


def test_command_line_builds_the_cache_then_trains(tmp_path, capsys):
    import dataclasses

    from safetensors.torch import save_file

    from vssflow_core.synthetic import SceneSpec, espeak_available, generate_item
    from vssflow_core.train.__main__ import main

    spec = SceneSpec(size=32, duration=WINDOW)
    rows = [generate_item(tmp_path, "train", "sound", i, seed=2, spec=spec) for i in range(2)]
    if espeak_available():
        rows.append(generate_item(tmp_path, "train", "talk", 0, seed=2, spec=spec))
    write_manifest(tmp_path / "data.jsonl", rows)
    ex = _tiny_extractor().components
    files = {"clip": ex.clip, "synchformer": ex.synchformer, "rawnet3": ex.rawnet3}
    for name, module in files.items():
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(tmp_path / f"{name}.safetensors"))
    (tmp_path / "vae").mkdir()
    save_file({k: v.contiguous() for k, v in ex.vae.state_dict().items()},
              str(tmp_path / "vae" / "diffusion_pytorch_model.safetensors"))
    (tmp_path / "vae" / "config.json").write_text(json.dumps(dataclasses.asdict(ex.vae.config)))
    values = config_values(model={"clip_dim": 64, "synch_dim": 64}, data={"batch_size": 2},
                           train={"max_steps": 2, "progress": True},
                           encoders={name: f"{name}.safetensors" for name in files} | {"vae": "vae"})
    config = tmp_path / "run.json"
    config.write_text(json.dumps(values))
    assert main(["--config", str(config), "--cache-only", "--no-progress"]) == 0
    assert f"{len(rows)} computed, 0 already there" in capsys.readouterr().out
    assert main(["--config", str(config), "--set", "train.max_steps=3"]) == 0
    out = capsys.readouterr()
    assert f"0 computed, {len(rows)} already there" in out.out and "trained to step 3" in out.out
    assert "training" in out.err  # the tqdm bar
    assert len(logged_losses(tmp_path / "run")) == 3
    assert main(["--config", str(config), "--set", "data.batch_size=1"]) == 1  # refuses another global batch
    assert "global batch" in capsys.readouterr().err
