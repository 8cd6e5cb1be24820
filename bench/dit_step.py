"""One classifier-free-guided sampling step of the full-size VSSFlow DiT: ours against diffusers' StableAudioDiTModel.

What it measures
    The wall time of one guided velocity evaluation as the sampler makes it, on the full-size DiT of
    ``VSSFlowConfig()`` (10 layers, width 1536, 24 heads of 64, 12 key/value heads in cross-attention, 1952 in/out
    channels, 453 M parameters), 250 latent frames + 1 time token = 251 tokens, 251 context tokens of width 768,
    batch 1.  The ODE state stays float32.  Variants (``--variants``):
      ours-fast   what the pipeline samples with: ``CachedGuidedVelocity``, the unconditional and conditional inputs
                  as ONE pass of batch 2, everything constant over a generation prepared once (condition channels
                  through the input map, cross-attention keys/values, rotary tables; the preparation is not timed:
                  it happens once per generation, not per step); in bf16 the residual stream, norms and time
                  features stay float32
      ours-plain  the official guidance: ``GuidedVelocity(batched=False)``, TWO plain passes of batch 1; in bf16 the
                  network runs in bfloat16 with the casts ``_NetworkInItsDtype`` makes
      diffusers   the reference, driven exactly as ours-plain (two passes)
      diffusers-batched  the reference driven with batched guidance (one pass of batch 2), to separate what
                  batching gives from what the cache gives

    The reference is diffusers' ``StableAudioDiTModel`` with the same hyper-parameters (num_layers 10,
    attention_head_dim 64, num_attention_heads 24, num_key_value_attention_heads 12, in_channels = out_channels =
    1952, cross_attention_dim 768, time_proj_dim 256) and OUR weights copied in (the parameter names are identical),
    driven through the very same ``GuidedVelocity``.  All variants run alternately in one process (fast, plain, ref,
    ..., fast, plain, ref, ...) after warm-up runs, so a busy machine slows them alike; the median of ``--repeats``
    runs is printed.  The summary gives the ratios that matter: fp32 ours-fast / diffusers fp32 (<= 1 required),
    bf16 ours-fast / diffusers fp32 (goal <= 0.5), and the relative L2 error of the bf16 fast velocity against the
    fp32 reference velocity over the latent channels (the ones the sampler integrates; goal < 2%), plus each
    variant's max relative difference from the fp32 reference (max |v - v_ref| / max |v_ref|).

Differences from our DiT that diffusers' API forces, and how they are neutralised
    - diffusers projects the cross-attention tokens through ``cross_attention_proj`` (Linear-SiLU-Linear) and adds
      ``global_proj(global_hidden_states)`` to the time token; VSSFlow's DiT has neither (its conditions are projected
      once per generation, outside the DiT).  The benchmark replaces ``cross_attention_proj`` with ``nn.Identity`` and
      ``global_proj`` with a module returning zeros, so both models compute the same function (checked: the printed
      max relative difference).  Without the swap (``--keep-diffusers-projections``) the reference does slightly more
      work (two 768x768-ish MLPs over 251 tokens plus one over a 1536-d global vector: well under 1% of the FLOPs),
      computes a different function, and the difference column is meaningless.
    - diffusers takes the rotary tables as an argument (its pipeline computes them once per generation); the
      benchmark passes them precomputed, whereas our DiT, called as the sampler calls it, builds them in every forward
      (a [251, 32] table: negligible).
    - diffusers' block calls its cross-attention WITHOUT the rotary tables, so its cross-attention queries are not
      rotated, while VSSFlow's DiT rotates the cross-attention queries (keys untouched), as the official VSSFlow
      processor does.  By default the benchmark wraps each block's ``attn2`` so that it receives the same rotary
      tables (diffusers' own ``StableAudioAttnProcessor2_0`` then rotates the queries exactly as ours does), which
      makes the two functions identical; ``--stock-cross-attention`` measures diffusers unpatched (a different
      function, about 1/3 fewer rotary operations; the difference column is then ~6e-2 on random weights).
    - diffusers builds no attention mask when none is given, as ours; both use ``F.scaled_dot_product_attention``.

Run (diffusers lives in a separate virtual environment, never in the project's):
    python3 -m venv .bench-venv
    .bench-venv/bin/pip install torch==2.13.0 diffusers einops safetensors numpy
    .bench-venv/bin/python bench/dit_step.py --repeats 3 --threads 2

Options: ``--dtypes fp32,bf16``, ``--variants ours-fast,ours-plain,diffusers,diffusers-batched``, ``--repeats N``
(timed runs per variant and dtype), ``--warmup N``, ``--threads N`` (torch.set_num_threads), ``--clock wall|cpu``
(``cpu``: the process's CPU seconds, which other processes competing for the cores do not inflate; meaningful with
``--threads 1``, where no thread spins in a barrier), ``--tokens N`` (latent frames, default 250), ``--layers N``
(fewer layers for a quick look; the figures are for 10), ``--ours-only``,
``--stock-cross-attention``, ``--keep-diffusers-projections`` (see above).  If diffusers is not importable only our
variants are measured and the script says so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vssflow_core.config import SEQUENCE, VSSFlowConfig  # noqa: E402
from vssflow_core.flow.guidance import OFFICIAL_GUIDANCE_SCALE, CachedGuidedVelocity, GuidedVelocity  # noqa: E402
from vssflow_core.model.dit import VSSFlowDiT  # noqa: E402
from vssflow_core.model.vssflow import Conditions, VSSFlow  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
VARIANTS = ("ours-fast", "ours-plain", "diffusers", "diffusers-batched")


class _Zeros(nn.Module):
    """Stands in for diffusers' ``global_proj``: VSSFlow adds nothing to the time token."""

    def __init__(self, width: int):
        super().__init__()
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(*x.shape[:-1], self.width)


class OursNet:
    """Our DiT as GuidedVelocity calls a network: ``net(x, t, context)``, the network in its own dtype."""

    def __init__(self, dit: VSSFlowDiT, latent_channels: int):
        self.dit, self.latent_channels = dit, latent_channels
        self.dtype = next(dit.parameters()).dtype

    def __call__(self, x, t, context):
        if x.dtype == self.dtype:
            return self.dit(x, t, context)
        return self.dit(x.to(self.dtype), t.to(self.dtype), context.to(self.dtype)).float()


class DiffusersNet:
    """diffusers' StableAudioDiTModel behind the same ``net(x, t, context)`` interface."""

    def __init__(self, model, latent_channels: int, rope: tuple[torch.Tensor, torch.Tensor], global_dim: int):
        self.model, self.latent_channels, self.rope = model, latent_channels, rope
        self.dtype = next(model.parameters()).dtype
        self.global_dim = global_dim

    def __call__(self, x, t, context):
        dtype = self.dtype
        out = self.model(
            hidden_states=x.to(dtype),
            timestep=t.to(dtype),
            encoder_hidden_states=context.to(dtype),
            global_hidden_states=x.new_zeros(x.shape[0], 1, self.global_dim, dtype=dtype),
            rotary_embedding=self.rope,
            return_dict=False,
        )[0]
        return out.float()


class _CrossAttentionWithRope(nn.Module):
    """diffusers' cross-attention module, called with the rotary tables (so its processor rotates the queries)."""

    def __init__(self, attn: nn.Module, rope: tuple[torch.Tensor, torch.Tensor]):
        super().__init__()
        self.attn, self.rope = attn, rope

    def forward(self, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        return self.attn(hidden_states, encoder_hidden_states=encoder_hidden_states, attention_mask=attention_mask,
                         rotary_emb=self.rope, **kwargs)


def build_diffusers(cfg: VSSFlowConfig, ours: VSSFlowDiT, keep_projections: bool):
    from diffusers import StableAudioDiTModel

    global_dim = 2 * cfg.width
    model = StableAudioDiTModel(
        sample_size=1024,
        in_channels=cfg.in_channels,
        num_layers=cfg.num_layers,
        attention_head_dim=cfg.head_dim,
        num_attention_heads=cfg.num_heads,
        num_key_value_attention_heads=cfg.num_kv_heads,
        out_channels=cfg.in_channels,
        cross_attention_dim=cfg.context_dim,
        time_proj_dim=cfg.time_proj_dim,
        global_states_input_dim=global_dim,
        cross_attention_input_dim=cfg.context_dim,
    )
    missing, unexpected = model.load_state_dict(ours.state_dict(), strict=False)
    extra = sorted({k.split(".")[0] for k in missing})
    if unexpected or extra not in ([], ["cross_attention_proj", "global_proj"]):
        raise RuntimeError(f"weight copy mismatch: missing {missing}, unexpected {unexpected}")
    if not keep_projections:
        model.cross_attention_proj = nn.Identity()
        model.global_proj = _Zeros(cfg.width)
    return model.eval().requires_grad_(False), global_dim


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_once(velocity: GuidedVelocity, t: torch.Tensor, x: torch.Tensor,
              clock=time.perf_counter) -> tuple[float, torch.Tensor]:
    start = clock()
    v = velocity(t, x)
    return clock() - start, v


def rel_max(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--tokens", type=int, default=None, help="latent frames (default: the 10 s window, 250)")
    parser.add_argument("--layers", type=int, default=None, help="DiT layers (default: the official 10)")
    parser.add_argument("--guidance", type=float, default=OFFICIAL_GUIDANCE_SCALE)
    parser.add_argument("--ours-only", action="store_true")
    parser.add_argument("--keep-diffusers-projections", action="store_true")
    parser.add_argument("--stock-cross-attention", action="store_true")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    cfg = VSSFlowConfig() if args.layers is None else VSSFlowConfig(num_layers=args.layers)
    length = args.tokens or SEQUENCE.latent_length
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")

    diffusers_version = None
    if not args.ours_only and any(v.startswith("diffusers") for v in variants):
        try:
            import diffusers

            diffusers_version = diffusers.__version__
            diffusers.utils.logging.set_verbosity_error()  # its "cast with to()" warning does not apply here
        except Exception as exc:  # noqa: BLE001 - report and carry on with ours only
            print(f"diffusers is not importable ({type(exc).__name__}: {exc}); measuring ours only")
    if not diffusers_version:
        variants = [v for v in variants if not v.startswith("diffusers")]

    torch.manual_seed(0)
    model32 = VSSFlow(cfg).eval().requires_grad_(False)  # the DiT plus the (untimed) condition projections
    ours32 = model32.dit
    params = sum(p.numel() for p in ours32.parameters())
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, diffusers {diffusers_version or 'absent'}, "
          f"{args.clock} clock")
    print(f"DiT: {params / 1e6:.1f} M parameters, {cfg.num_layers} layers, {length + 1} tokens, batch 1, guidance "
          f"{args.guidance}, repeats {args.repeats}, warm-up {args.warmup}; variants {', '.join(variants)}")

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, cfg.in_channels, length, generator=gen)
    context = torch.randn(1, length + 1, cfg.context_dim, generator=gen)
    latent_cond = x[:, cfg.latent_channels:].clone()
    conditions = Conditions(context=context, latent_cond=latent_cond)
    t = torch.tensor([0.37])
    rope = ours32.rope(length)
    lat = slice(0, cfg.latent_channels)

    def velocity_of(variant: str, model: VSSFlow, ref_model=None, global_dim: int = 0):
        if variant == "ours-fast":
            return CachedGuidedVelocity(model, conditions, args.guidance)
        if variant == "ours-plain":
            return GuidedVelocity(OursNet(model.dit, cfg.latent_channels), conditions, args.guidance,
                                  latent_channels=cfg.latent_channels, batched=False)
        return GuidedVelocity(DiffusersNet(ref_model, cfg.latent_channels, rope, global_dim), conditions,
                              args.guidance, latent_channels=cfg.latent_channels,
                              batched=variant == "diffusers-batched")

    rows = []
    velocities: dict[tuple[str, str], torch.Tensor] = {}
    for name in dtypes:
        dtype = DTYPES[name]
        model = model32
        if dtype != torch.float32:
            model = VSSFlow(cfg).to(dtype).eval().requires_grad_(False)
            model.load_state_dict(model32.state_dict())
        ref, global_dim = None, 0
        if any(v.startswith("diffusers") for v in variants):
            ref, global_dim = build_diffusers(cfg, ours32, args.keep_diffusers_projections)
            ref = ref.to(dtype)
            if not args.stock_cross_attention:  # rope in float32, as our DiT uses (both rotate in float32)
                for block in ref.transformer_blocks:
                    block.attn2 = _CrossAttentionWithRope(block.attn2, rope)
        fields = {v: velocity_of(v, model, ref, global_dim) for v in variants}
        times: dict[str, list[float]] = {v: [] for v in fields}
        for i in range(args.warmup + args.repeats):
            for variant, velocity in fields.items():  # alternate: fast, plain, ref, ..., fast, plain, ref, ...
                seconds, v = time_once(velocity, t, x, CLOCKS[args.clock])
                if i >= args.warmup:
                    times[variant].append(seconds)
                velocities[(name, variant)] = v
        for variant in fields:
            rows.append({"dtype": name, "variant": variant, "median": statistics.median(times[variant]),
                         "all": times[variant]})
            print(f"  {name} {variant:<18} {['%.3f' % s for s in times[variant]]} s", flush=True)
        del fields, ref
        if model is not model32:
            del model

    reference = velocities.get(("fp32", "ours-plain"))
    by = {(r["dtype"], r["variant"]): r["median"] for r in rows}
    print()
    print(f"{'dtype':<6} {'variant':<18} {'median (s)':>11} {'max rel diff vs fp32 ours-plain':>32}")
    for row in rows:
        v = velocities[(row["dtype"], row["variant"])]
        diff = f"{rel_max(v[:, lat], reference[:, lat]):.2e}" if reference is not None else "-"
        print(f"{row['dtype']:<6} {row['variant']:<18} {row['median']:>11.3f} {diff:>32}")

    print()
    ref32 = by.get(("fp32", "diffusers"))

    def ratio(label: str, num, den, note: str = "") -> None:
        if num is not None and den is not None:
            print(f"{label:<58} {num / den:.3f}{note}")

    ratio("fp32 ours-fast / diffusers fp32 (2 passes) time", by.get(("fp32", "ours-fast")), ref32, "  (<= 1 required)")
    ratio("fp32 ours-fast / diffusers-batched fp32 time", by.get(("fp32", "ours-fast")),
          by.get(("fp32", "diffusers-batched")))
    ratio("fp32 ours-plain / diffusers fp32 time", by.get(("fp32", "ours-plain")), ref32)
    ratio("bf16 ours-fast / diffusers fp32 (2 passes) time", by.get(("bf16", "ours-fast")), ref32,
          "  (goal <= 0.5)")
    ratio("bf16 ours-fast / diffusers-batched fp32 time", by.get(("bf16", "ours-fast")),
          by.get(("fp32", "diffusers-batched")))
    ratio("bf16 ours-plain / diffusers fp32 time", by.get(("bf16", "ours-plain")), ref32)
    ratio("bf16 ours-fast / fp32 ours-fast time", by.get(("bf16", "ours-fast")), by.get(("fp32", "ours-fast")))
    if reference is not None:
        for variant in ("ours-fast", "ours-plain"):
            v16 = velocities.get(("bf16", variant))
            if v16 is not None:
                print(f"bf16 {variant} vs fp32 ours-plain guided velocity (latent channels): rel L2 "
                      f"{rel_l2(v16[:, lat], reference[:, lat]):.4f}, max rel diff "
                      f"{rel_max(v16[:, lat], reference[:, lat]):.4f}" + ("  (goal < 0.02)" if variant == "ours-fast"
                                                                           else ""))


if __name__ == "__main__":
    main()
