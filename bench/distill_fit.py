"""How well a student fits the pairs it was trained on (``bench/distill.py --fit``): from each pair's own noise and
conditions, the student's endpoint at each evaluation count against the teacher's endpoint in the pair, both decoded
to log-mel by the student's VAE, in the quality bench's dB.  Held-out clips say whether the student generalises;
this says whether it has learnt its training set at all: a gap as large here as on held-out clips is underfitting,
which more steps or a stronger objective close, not more pairs."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from distill_quality import DEFAULT_EVALS, mel_percentile_db, student_settings  # noqa: E402
from sampler_efficiency import MEL_TOLERANCE_DB, mel_difference_db  # noqa: E402
from vssflow_core.codec.vae import unpack_latent  # noqa: E402
from vssflow_core.distill.pairs import teacher_endpoint  # noqa: E402


@dataclass
class FitRow:
    """One student setting over the pairs measured: medians over the items, and the fraction within tolerance."""

    name: str
    solver: str
    items: int
    mel_within: float  # fraction of items with every decoded mel bin within the tolerance of the teacher's
    mel_max_db_median: float
    mel_p99_db_median: float
    mel_mean_db_median: float


def spread(count: int, limit: int | None) -> list[int]:
    """``limit`` item indices spread evenly over ``count`` items (all of them without a limit)."""
    if limit is None or limit >= count:
        return list(range(count))
    return sorted({int(i) for i in np.linspace(0, count - 1, max(1, limit))})


@torch.inference_mode()
def measure_fit(student, pairs, *, evals: Sequence[int] = DEFAULT_EVALS, limit: int | None = None,
                mel_tolerance_db: float = MEL_TOLERANCE_DB) -> list[FitRow]:
    """``student``: a loaded student pipeline; ``pairs``: a :class:`~vssflow_core.distill.pairs.PairsDataset`."""
    model, vae = student.model, student.components.vae
    recommended = getattr(model, "recommended_sampler", None)
    if recommended is None:
        raise ValueError("the student checkpoint recommends no sampler: it is not a distilled student")
    channels = vae.config.latent_channels

    def mel(latent: torch.Tensor) -> torch.Tensor:
        return vae.decode(unpack_latent(latent[None].float(), channels))[:, 0].double().cpu()

    settings = {f"student k={k}": student_settings(recommended, k) for k in evals}
    found: dict[str, list[tuple[float, float, float]]] = {name: [] for name in settings}
    for index in spread(len(pairs), limit):
        item = pairs[index]
        reference = mel(item["endpoint"])
        for name, sampler in settings.items():
            # the very solve the pairs step made, with the student and its sampler
            endpoint, _ = teacher_endpoint(model, item, item["noise"], sampler, item["noise"].shape[-1])
            decoded = mel(endpoint)
            largest, mean = mel_difference_db(decoded, reference)
            found[name].append((largest, mel_percentile_db(decoded, reference), mean))
    rows = []
    for name, values in found.items():  # never empty: a pairs set has items, spread() takes at least one
        largest, p99, mean = (np.array(column) for column in zip(*values))
        rows.append(FitRow(name, settings[name].describe(), len(values), float(np.mean(largest <= mel_tolerance_db)),
                           float(np.median(largest)), float(np.median(p99)), float(np.median(mean))))
    return rows


def print_fit(rows: Sequence[FitRow], mel_tolerance_db: float = MEL_TOLERANCE_DB) -> None:
    print(f"the student from each pair's own noise and conditions against the teacher's endpoint in the pair "
          f"({rows[0].items if rows else 0} training pairs)")
    print(f"{'setting':<14} {'solver':<26} {f'<= {mel_tolerance_db:g} dB':>8} {'max dB med':>10} "
          f"{'p99 dB med':>10} {'mean dB med':>11}")
    for r in rows:
        print(f"{r.name:<14} {r.solver:<26} {r.mel_within:>8.2f} {r.mel_max_db_median:>10.2f} "
              f"{r.mel_p99_db_median:>10.2f} {r.mel_mean_db_median:>11.2f}")
