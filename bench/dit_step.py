"""One classifier-free-guided sampling step of the full-size VSSFlow DiT: ours against diffusers' StableAudioDiTModel.

What it measures
    The wall time of one guided velocity evaluation as the sampler makes it: ``GuidedVelocity`` (the official
    guidance: an unconditional pass with zero context and zeroed condition channels, then a conditional pass, i.e.
    TWO network passes at batch 1) on the full-size DiT of ``VSSFlowConfig()`` (10 layers, width 1536, 24 heads of 64,
    12 key/value heads in cross-attention, 1952 in/out channels, 453 M parameters), 250 latent frames + 1 time token =
    251 tokens, 251 context tokens of width 768.  The ODE state stays float32; in bf16 the network runs in bfloat16
    with the casts the pipeline makes (``_NetworkInItsDtype``).

    The reference is diffusers' ``StableAudioDiTModel`` with the same hyper-parameters (num_layers 10,
    attention_head_dim 64, num_attention_heads 24, num_key_value_attention_heads 12, in_channels = out_channels =
    1952, cross_attention_dim 768, time_proj_dim 256) and OUR weights copied in (the parameter names are identical),
    driven through the very same ``GuidedVelocity``.  Ours and the reference run alternately in one process
    (ours, ref, ours, ref, ...) after warm-up runs; the median of ``--repeats`` runs is printed with the ratio
    ours / reference (< 1 means ours is faster).  It also prints the max relative difference of the two outputs, and
    of our bf16 velocity against our fp32 velocity (max |bf16 - fp32| / max |fp32| over the latent channels, the ones
    the sampler integrates; also the relative L2 error).

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

Options: ``--dtypes fp32,bf16``, ``--repeats N`` (timed runs per model and dtype), ``--warmup N``, ``--threads N``
(torch.set_num_threads), ``--tokens N`` (latent frames, default 250), ``--ours-only``,
``--stock-cross-attention``, ``--keep-diffusers-projections`` (see above).  If diffusers is not importable
only our model is measured and the script says so.
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

from vssflow_core.config import VSSFlowConfig  # noqa: E402
from vssflow_core.flow.guidance import GuidedVelocity  # noqa: E402
from vssflow_core.model.dit import VSSFlowDiT  # noqa: E402
from vssflow_core.model.vssflow import Conditions  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


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


def time_once(velocity: GuidedVelocity, t: torch.Tensor, x: torch.Tensor) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    v = velocity(t, x)
    return time.perf_counter() - start, v


def rel_max(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--tokens", type=int, default=None, help="latent frames (default: the 10 s window, 250)")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--ours-only", action="store_true")
    parser.add_argument("--keep-diffusers-projections", action="store_true")
    parser.add_argument("--stock-cross-attention", action="store_true")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    cfg = VSSFlowConfig()
    length = args.tokens or 250
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]

    diffusers_version = None
    if not args.ours_only:
        try:
            import diffusers

            diffusers_version = diffusers.__version__
            diffusers.utils.logging.set_verbosity_error()  # its "cast with to()" warning does not apply here
        except Exception as exc:  # noqa: BLE001 - report and carry on with ours only
            print(f"diffusers is not importable ({type(exc).__name__}: {exc}); measuring ours only")

    torch.manual_seed(0)
    ours32 = VSSFlowDiT(cfg).eval().requires_grad_(False)
    params = sum(p.numel() for p in ours32.parameters())
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, diffusers {diffusers_version or 'absent'}")
    print(f"DiT: {params / 1e6:.1f} M parameters, {length + 1} tokens, batch 1, guidance {args.guidance} "
          f"(2 network passes per step), repeats {args.repeats}, warm-up {args.warmup}")

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, cfg.in_channels, length, generator=gen)
    context = torch.randn(1, length + 1, cfg.context_dim, generator=gen)
    latent_cond = x[:, cfg.latent_channels:].clone()
    conditions = Conditions(context=context, latent_cond=latent_cond)
    t = torch.tensor([0.37])
    rope = ours32.rope(length)

    rows = []
    velocities: dict[str, torch.Tensor] = {}
    for name in dtypes:
        dtype = DTYPES[name]
        ours = ours32 if dtype == torch.float32 else VSSFlowDiT(cfg).to(dtype).eval().requires_grad_(False)
        if ours is not ours32:
            ours.load_state_dict(ours32.state_dict())
        models = {"ours": GuidedVelocity(OursNet(ours, cfg.latent_channels), conditions, args.guidance,
                                         latent_channels=cfg.latent_channels)}
        if diffusers_version:
            ref, global_dim = build_diffusers(cfg, ours32, args.keep_diffusers_projections)
            ref = ref.to(dtype)
            ref_rope = rope  # float32, as our DiT uses (both processors rotate in float32)
            if not args.stock_cross_attention:
                for block in ref.transformer_blocks:
                    block.attn2 = _CrossAttentionWithRope(block.attn2, ref_rope)
            models["diffusers"] = GuidedVelocity(
                DiffusersNet(ref, cfg.latent_channels, ref_rope, global_dim), conditions,
                args.guidance, latent_channels=cfg.latent_channels)
        times: dict[str, list[float]] = {k: [] for k in models}
        outs: dict[str, torch.Tensor] = {}
        for i in range(args.warmup + args.repeats):
            for key, velocity in models.items():  # alternate: ours, ref, ours, ref, ...
                seconds, v = time_once(velocity, t, x)
                if i >= args.warmup:
                    times[key].append(seconds)
                outs[key] = v
        velocities[name] = outs["ours"]
        row = {"dtype": name, "ours": statistics.median(times["ours"]), "ours_all": times["ours"]}
        if "diffusers" in models:
            row["diffusers"] = statistics.median(times["diffusers"])
            row["diffusers_all"] = times["diffusers"]
            lat = slice(0, cfg.latent_channels)
            row["diff"] = rel_max(outs["ours"][:, lat], outs["diffusers"][:, lat])
        rows.append(row)
        print(f"  {name}: ours {['%.3f' % s for s in times['ours']]} s"
              + (f", diffusers {['%.3f' % s for s in times['diffusers']]} s" if "diffusers" in times else ""),
              flush=True)
        del models
        if ours is not ours32:
            del ours

    print()
    print(f"{'dtype':<6} {'ours (s)':>10} {'diffusers (s)':>14} {'ours/diffusers':>15} {'max rel diff':>13}")
    for row in rows:
        ref = row.get("diffusers")
        if ref:
            tail = f"{ref:>14.3f} {row['ours'] / ref:>15.3f} {row['diff']:>13.2e}"
        else:
            tail = f"{'-':>14} {'-':>15} {'-':>13}"
        print(f"{row['dtype']:<6} {row['ours']:>10.3f} " + tail)
    by = {r["dtype"]: r for r in rows}
    if "fp32" in by and "bf16" in by:
        print()
        print(f"ours bf16 / ours fp32 time: {by['bf16']['ours'] / by['fp32']['ours']:.3f}")
        if "diffusers" in by["fp32"]:
            print(f"ours bf16 / diffusers fp32 time: {by['bf16']['ours'] / by['fp32']['diffusers']:.3f}")
            print(f"ours fp32 / diffusers fp32 time: {by['fp32']['ours'] / by['fp32']['diffusers']:.3f}")
        lat = slice(0, cfg.latent_channels)
        v16, v32 = velocities["bf16"][:, lat], velocities["fp32"][:, lat]
        print(f"ours bf16 vs fp32 guided velocity (latent channels): max rel diff {rel_max(v16, v32):.4f} "
              f"(max |d| / max |v32|), rel L2 {rel_l2(v16, v32):.4f}")


if __name__ == "__main__":
    main()
