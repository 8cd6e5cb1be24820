"""Fast paths of sampling: the same velocity field and the same endpoints as the reference path, computed faster.

The reference is the official sampler's: two plain network passes per guided evaluation (unconditional, then
conditional), the network in float32.  The fast paths are batched guidance (both passes as one batch), the
per-generation DiT cache (:class:`~vssflow_core.model.dit.DiTCache`), bfloat16 with a float32 stream, batched
encoders, loading straight in the target dtype, and an optional ``torch.compile``.  Small random models; timings are
the benchmarks' business (``bench/``), never asserted here.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import warnings

import pytest
import torch

from tiny_models import CLIP_CFG, SYNCH_CFG, build_tiny_components
from vssflow_core import devices
from vssflow_core.config import VSSFlowConfig
from vssflow_core.devices import module_dtype, resolve_dtype
from vssflow_core.encoders.clip import CLIPVisualEncoder
from vssflow_core.encoders.synchformer import SynchformerVisualEncoder
from vssflow_core.flow.guidance import CachedGuidedVelocity, GuidedVelocity
from vssflow_core.flow.path import with_conditions
from vssflow_core.flow.settings import SamplerSettings
from vssflow_core.flow.solvers import SOLVER_NAMES, make_solver
from vssflow_core.model.compile import CompiledOrEager
from vssflow_core.model.dit import apply_rotary, rotary_tables
from vssflow_core.model.vssflow import Conditions, VSSFlow
from vssflow_core.loading import load_components, load_network
from vssflow_core.pipeline import VSSFlowPipeline
from vssflow_core.weights.checkpoint import load_vssflow, read_state_dict, save_vssflow, to_official_keys

# Grouped-query cross-attention (4 query heads, 2 key/value heads) and every condition route, at toy widths.
CFG = VSSFlowConfig(latent_channels=12, clip_dim=40, synch_dim=36, speaker_dim=20, lip_dim=28, context_dim=48,
                    lip_channels=24, phone_channels=8, synch_channels=16, phone_vocab=50, num_layers=2, num_heads=4,
                    head_dim=16, num_kv_heads=2, time_proj_dim=32, ff_mult=2)
LENGTH = 30  # latent frames
LAT = CFG.latent_channels
TIMES = torch.tensor([0.3, 0.85])  # one flow time per batch item


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every test here runs single-threaded (see the conftest fixture)."""


@pytest.fixture(scope="module")
def model() -> VSSFlow:
    torch.manual_seed(0)
    return VSSFlow(CFG).eval().requires_grad_(False)


def random_conditions(model: VSSFlow, batch: int, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return model.prepare_conditions(
        clip=torch.randn(batch, 12, CFG.clip_dim, generator=gen),
        synch=torch.randn(batch, 29, CFG.synch_dim, generator=gen),
        phone_ids=torch.randint(0, CFG.phone_vocab, (batch, LENGTH), generator=gen),
        lip=torch.randn(batch, LENGTH, CFG.lip_dim, generator=gen),
        speaker=torch.randn(batch, CFG.speaker_dim, generator=gen),
        latent_length=LENGTH,
    )


def random_state(conditions, seed: int = 2) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return with_conditions(torch.randn(conditions.batch_size, LAT, LENGTH, generator=gen), conditions.latent_cond)


def reference(model, conditions, guidance_scale: float = 3.0) -> GuidedVelocity:
    """The official field: two plain passes per evaluation."""
    return GuidedVelocity(model, conditions, guidance_scale, batched=False)


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


# --------------------------------------------------------------------------------------------------------------------
# Batched guidance and the DiT cache: the same field
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rotary_embedding_is_the_official_rotation_bit_for_bit(dtype):
    """The official formula, x_rot * cos + rotate_half(x_rot) * sin in float32; ours computes it half by half."""
    cos, sin = rope = rotary_tables(32, 11)
    x = torch.randn(2, 11, 3, 64).to(dtype).transpose(1, 2)  # [B, heads, L, head_dim], strided as in attention
    x_rot = x[..., :32].float()
    first, second = x_rot.chunk(2, dim=-1)
    official = torch.cat([x_rot * cos + torch.cat([-second, first], dim=-1) * sin, x[..., 32:].float()], dim=-1)
    assert torch.equal(apply_rotary(x, rope), official.to(dtype))



@pytest.mark.parametrize("batch", [1, 2])
def test_batched_guidance_equals_two_passes(model, batch):
    conditions = random_conditions(model, batch)
    x, t = random_state(conditions), TIMES[:batch]
    batched = GuidedVelocity(model, conditions, 3.0)
    torch.testing.assert_close(batched(t, x), reference(model, conditions)(t, x), rtol=1e-5, atol=1e-6)
    assert (batched.evaluations, batched.network_passes) == (1, 1)


@pytest.mark.parametrize("batch", [1, 2])
def test_cached_forward_equals_the_plain_forward(model, batch):
    conditions = random_conditions(model, batch)
    x, t = random_state(conditions), TIMES[:batch]
    cache = model.prepare(conditions)
    fast = model.latent_velocity(x[:, :LAT], t, cache)
    plain = model(x, t, conditions.context)[:, :LAT]
    assert fast.shape == (batch, LAT, LENGTH) and fast.dtype == torch.float32
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("guidance_scale", [3.0, 0.5])  # 0.5: guidance off, the unconditional field alone
def test_cached_guided_velocity_equals_the_reference(model, batch, batched, guidance_scale):
    conditions = random_conditions(model, batch)
    x, t = random_state(conditions), TIMES[:batch]
    fast = CachedGuidedVelocity(model, conditions, guidance_scale, batched=batched)
    v = fast(t, x)
    torch.testing.assert_close(v, reference(model, conditions, guidance_scale)(t, x), rtol=0, atol=1e-5)
    assert torch.count_nonzero(v[:, LAT:]) == 0
    assert fast.evaluations == 1
    assert fast.network_passes == (1 if batched or guidance_scale < 1 else 2)


def test_the_cache_holds_what_a_generation_shares(model):
    conditions = random_conditions(model, 2)
    cache = model.prepare(conditions)
    assert (cache.batch_size, cache.length) == (2, LENGTH)
    for table, expected in zip(cache.rope, model.dit.rope(LENGTH)):
        torch.testing.assert_close(table, expected, rtol=0, atol=0)
    assert len(cache.cross_kv) == CFG.num_layers
    for keys, values in cache.cross_kv:  # key/value heads already repeated for the grouped-query attention
        assert keys.shape == values.shape == (2, CFG.num_heads, 1 + LENGTH, CFG.head_dim)
    # the unconditional inputs are zeros, and the bias-free maps keep them exactly zero
    empty = model.prepare(conditions.zeros_like())
    assert torch.count_nonzero(empty.cond_tokens) == 0
    assert all(torch.count_nonzero(k) == 0 and torch.count_nonzero(v) == 0 for k, v in empty.cross_kv)


def test_a_cache_serves_only_its_own_batch_and_length(model):
    cache = model.prepare(random_conditions(model, 2))
    with pytest.raises(ValueError, match="prepared for batch 2 x 30 frames"):
        model.latent_velocity(torch.zeros(1, LAT, LENGTH), torch.tensor(0.5), cache)
    with pytest.raises(ValueError, match="prepared for batch 2 x 30 frames"):
        model.latent_velocity(torch.zeros(2, LAT, LENGTH + 1), torch.tensor(0.5), cache)


# --------------------------------------------------------------------------------------------------------------------
# Whole sampler runs
# --------------------------------------------------------------------------------------------------------------------


class RecordingVelocity:
    """Wraps a velocity field and keeps every state it was evaluated at."""

    def __init__(self, velocity):
        self.velocity, self.states = velocity, []

    def __call__(self, t, x):
        self.states.append(x.clone())
        return self.velocity(t, x)


@pytest.mark.parametrize("solver", SOLVER_NAMES)
def test_every_solver_carries_the_condition_channels_unchanged(model, solver):
    """What the cache relies on: guidance gives the condition channels zero velocity, so every state a solver
    evaluates holds them bit for bit as they started (the cache computes their contribution once)."""
    conditions = random_conditions(model, 1)
    x0 = random_state(conditions)
    recording = RecordingVelocity(reference(model, conditions))
    make_solver(solver, steps=3, atol=1e-3, rtol=1e-3).solve(recording, x0)
    assert len(recording.states) > 1
    assert all(torch.equal(state[:, LAT:], x0[:, LAT:]) for state in recording.states)


@pytest.mark.parametrize("solver", ["rk4", "dopri5"])
def test_the_fast_path_reaches_the_same_endpoint(model, solver):
    """As close to the reference's endpoint as float32 round-off lets the reference itself come to its float64
    twin: ~1e-6 for fixed steps; for dopri5 round-off also nudges the step sizes, so ~1e-4 on this rough field."""
    conditions = random_conditions(model, 2)
    x0 = random_state(conditions)
    ode = make_solver(solver, steps=6, atol=1e-5, rtol=1e-5)
    slow = ode.solve(reference(model, conditions), x0)
    fast = ode.solve(CachedGuidedVelocity(model, conditions, 3.0), x0)
    exact = ode.solve(reference(copy.deepcopy(model).double(),
                                Conditions(conditions.context.double(), conditions.latent_cond.double())), x0.double())
    round_off = max(float((slow.x - exact.x)[:, :LAT].abs().max()), 1e-6)
    assert float((fast.x - slow.x)[:, :LAT].abs().max()) <= 2 * round_off
    assert fast.evaluations == slow.evaluations


# --------------------------------------------------------------------------------------------------------------------
# bfloat16
# --------------------------------------------------------------------------------------------------------------------


def test_bfloat16_velocity_is_within_two_percent_of_float32(model):
    conditions = random_conditions(model, 2)
    x, t = random_state(conditions), TIMES
    half = copy.deepcopy(model).to(torch.bfloat16)
    v16 = CachedGuidedVelocity(half, conditions, 3.0)(t, x)  # float32 state and conditions, bfloat16 network
    v32 = reference(model, conditions)(t, x)
    assert v16.dtype == torch.float32  # the ODE state stays float32
    assert rel_l2(v16[:, :LAT], v32[:, :LAT]) < 0.02


# --------------------------------------------------------------------------------------------------------------------
# Loading straight in the target dtype
# --------------------------------------------------------------------------------------------------------------------


def test_network_loads_straight_in_bfloat16(model, tmp_path):
    path = save_vssflow(model, tmp_path / "vssflow.safetensors")
    tensors, _ = read_state_dict(path, dtype=torch.bfloat16)  # converted tensor by tensor as the file is read
    assert {t.dtype for t in tensors.values()} == {torch.bfloat16}
    loaded = load_network(path, device="cpu", dtype=torch.bfloat16)
    cast = load_vssflow(path).to(torch.bfloat16)  # load in float32, then cast
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    for (name, a), (_, b) in zip(loaded.state_dict().items(), cast.state_dict().items()):
        assert torch.equal(a, b), name


def test_pickled_checkpoint_loads_straight_in_bfloat16(model, tmp_path):
    path = tmp_path / "last.ckpt"  # a Lightning-style zip checkpoint, read memory-mapped
    torch.save({"state_dict": to_official_keys(model.state_dict())}, path)
    loaded = load_vssflow(path, head_dim=CFG.head_dim, dtype=torch.bfloat16)
    for (name, a), (_, b) in zip(loaded.state_dict().items(), model.state_dict().items()):
        assert a.dtype == torch.bfloat16 and torch.equal(a, b.to(torch.bfloat16)), name


# --------------------------------------------------------------------------------------------------------------------
# Encoders in batches
# --------------------------------------------------------------------------------------------------------------------


def _randomised(module: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(3)
    for p in module.parameters():  # zero-initialised embeddings would make every frame look alike
        torch.nn.init.normal_(p, std=0.02)
    return module.eval()


def test_clip_in_batches_equals_one_frame_at_a_time():
    clip = _randomised(CLIPVisualEncoder(CLIP_CFG))
    frames = torch.rand(7, 40, 56, 3, generator=torch.Generator().manual_seed(4))
    one_by_one = clip.encode_frames(frames, batch_size=1)
    for batch_size in (3, 32):  # a partial last batch, and everything at once
        torch.testing.assert_close(clip.encode_frames(frames, batch_size=batch_size), one_by_one, rtol=1e-5,
                                   atol=1e-6)


def test_synchformer_in_batches_equals_one_segment_at_a_time():
    synchformer = _randomised(SynchformerVisualEncoder(SYNCH_CFG))
    frames = torch.rand(40, 36, 48, 3, generator=torch.Generator().manual_seed(5))  # 4 segments of 16, stride 8
    one_by_one = synchformer.encode_video(frames, batch_size=1, num_frames=40)
    assert one_by_one.shape[0] == 4
    for batch_size in (3, 8):
        torch.testing.assert_close(synchformer.encode_video(frames, batch_size=batch_size, num_frames=40), one_by_one,
                                   rtol=1e-5, atol=1e-6)


def test_auto_dtype_is_bfloat16_only_where_the_hardware_multiplies_it(monkeypatch):
    monkeypatch.setattr(devices, "_cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16"}))
    assert resolve_dtype("auto", "cpu") == torch.bfloat16
    monkeypatch.setattr(devices, "_cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    assert resolve_dtype(None, "cpu") == torch.bfloat16
    monkeypatch.setattr(devices, "_cpu_flags", lambda: frozenset({"avx2"}))  # bf16 would be emulated: slower
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16 and resolve_dtype(torch.float32, "cpu") == torch.float32
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        resolve_dtype("float8", "cpu")


@pytest.mark.parametrize("encoder", ["clip", "synchformer"])
def test_bfloat16_encoder_features_are_within_two_percent_of_float32(encoder):
    if encoder == "clip":
        model = _randomised(CLIPVisualEncoder(CLIP_CFG))
        frames = torch.rand(6, 40, 56, 3, generator=torch.Generator().manual_seed(6))
        encode = lambda m: m.encode_frames(frames)  # noqa: E731
    else:
        model = _randomised(SynchformerVisualEncoder(SYNCH_CFG))
        frames = torch.rand(24, 36, 48, 3, generator=torch.Generator().manual_seed(7))
        encode = lambda m: m.encode_video(frames, num_frames=24)  # noqa: E731
    reference = encode(model)
    features = encode(copy.deepcopy(model).to(torch.bfloat16))
    assert features.dtype == torch.float32  # features leave the encoder in float32 whatever it computes in
    assert (features - reference).norm() / reference.norm() < 0.02


@pytest.mark.parametrize("encoder_dtype", [torch.float32, torch.bfloat16])
def test_components_load_the_encoders_in_the_chosen_dtype_and_the_rest_in_float32(tmp_path, encoder_dtype):
    paths = build_tiny_components(tmp_path)
    components = load_components(clip=paths["clip"], synchformer=paths["synchformer"], vae=paths["vae"],
                                         vocoder=paths["vocoder"], speaker=False, device="cpu",
                                         encoder_dtype=str(encoder_dtype).removeprefix("torch."))
    assert module_dtype(components.clip) == module_dtype(components.synchformer) == encoder_dtype
    assert module_dtype(components.vae) == module_dtype(components.vocoder) == torch.float32


# --------------------------------------------------------------------------------------------------------------------
# torch.compile
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_dynamo():
    """Compiled code is cached per function; each test starts and ends with an empty cache."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _no_compiler(graph, example_inputs):
    raise RuntimeError("no working C++ compiler found")


def test_compile_falls_back_to_eager_with_one_warning(model, fresh_dynamo):
    conditions = random_conditions(model, 1)
    x, t = random_state(conditions), TIMES[:1]
    forward = CompiledOrEager(model.latent_velocity, backend=_no_compiler)
    velocity = CachedGuidedVelocity(model, conditions, 3.0, latent_velocity=forward)
    with pytest.warns(RuntimeWarning, match="cannot compile the VSSFlow network here .*no working C\\+\\+ compiler"):
        v = velocity(t, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once is enough
        torch.testing.assert_close(velocity(t, x), v, rtol=0, atol=0)
    torch.testing.assert_close(v, CachedGuidedVelocity(model, conditions, 3.0)(t, x), rtol=0, atol=0)


@pytest.mark.skipif(not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")),
                    reason="TorchInductor needs a C++ compiler on the CPU")
def test_compiled_network_matches_eager(fresh_dynamo):
    torch.manual_seed(0)
    tiny = VSSFlow(dataclasses.replace(CFG, num_layers=1)).eval().requires_grad_(False)  # ~15 s to compile
    conditions = random_conditions(tiny, 1)
    x, t = random_state(conditions), TIMES[:1]
    compiled = CachedGuidedVelocity(tiny, conditions, 3.0, latent_velocity=CompiledOrEager(tiny.latent_velocity))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # it really compiled: no fallback
        v = compiled(t, x)
    torch.testing.assert_close(v, CachedGuidedVelocity(tiny, conditions, 3.0)(t, x), rtol=0, atol=1e-5)


# --------------------------------------------------------------------------------------------------------------------
# The pipeline samples on the fast path by default
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipe(tmp_path_factory) -> VSSFlowPipeline:
    components = build_tiny_components(tmp_path_factory.mktemp("models"))
    paths = {k: v for k, v in components.items() if k != "checkpoint"}
    return VSSFlowPipeline.load(components["checkpoint"], device="cpu", **paths)


def _pipe_conditions(pipe: VSSFlowPipeline, batch_size: int = 2):
    gen = torch.Generator().manual_seed(6)
    seq = pipe.components.sequence
    cfg = pipe.model.cfg
    clip = torch.randn(1, seq.clip_frames, cfg.clip_dim, generator=gen)
    synch = torch.randn(1, seq.synch_segments, seq.synch_tokens_per_segment, cfg.synch_dim, generator=gen)
    phones = torch.randint(0, cfg.phone_vocab, (1, seq.latent_length), generator=gen)
    return pipe.model.prepare_conditions(clip=clip.expand(batch_size, -1, -1),
                                         synch=synch.expand(batch_size, -1, -1, -1),
                                         phone_ids=phones.expand(batch_size, -1), latent_length=seq.latent_length)


def test_pipeline_fast_and_reference_paths_sample_the_same_latent(pipe):
    conditions = _pipe_conditions(pipe)
    fast = pipe.sample(conditions, seed=4, settings=SamplerSettings(solver="heun", steps=3))
    slow = pipe.sample(conditions, seed=4,
                       settings=SamplerSettings(solver="heun", steps=3, cache=False, batched_guidance=False))
    torch.testing.assert_close(fast.latent, slow.latent, rtol=0, atol=1e-5)
    assert fast.stats.evaluations == slow.stats.evaluations == 6


def test_pipeline_compile_flag_samples_the_same_latent(pipe, monkeypatch, fresh_dynamo):
    import vssflow_core.model.compile as compile_module

    original = compile_module.CompiledOrEager.__init__
    backends = []

    def no_compiler(self, fn, backend="inductor"):  # the plumbing, without paying for TorchInductor
        backends.append(backend)
        original(self, fn, backend=_no_compiler)

    monkeypatch.setattr(compile_module.CompiledOrEager, "__init__", no_compiler)
    conditions = _pipe_conditions(pipe, batch_size=1)
    with pytest.warns(RuntimeWarning, match="cannot compile"):
        compiled = pipe.sample(conditions, seed=1, settings=SamplerSettings(solver="euler", steps=2, compile=True))
    assert backends == ["inductor"]
    eager = pipe.sample(conditions, seed=1, settings=SamplerSettings(solver="euler", steps=2))
    torch.testing.assert_close(compiled.latent, eager.latent, rtol=0, atol=0)


def test_generate_command_offers_compile():
    from vssflow_core.generate import build_parser

    args = ["--video", "in.mp4", "-o", "out.mp4"]
    assert build_parser().parse_args([*args, "--compile"]).compile
    assert not build_parser().parse_args(args).compile  # off by default: compiling takes a minute or more
