"""Speech without the picture's sound effects: the visual conditions of one window with what drives the sound
effects set to the official unconditional inputs (zeros, what condition dropout trained the model with), and what
times the speech kept.

* CLIP (cross-attention, what the scene is: "a car", "a street") drives *which* sounds the scene makes: all zeros.
* Synchformer (concatenated per frame) times the speech from the mouth, but also every other visual event: kept
  inside the lines (widened by :data:`MARGIN_SEC` at both ends, for the attack and release of the words), zeros
  elsewhere, so outside the lines the model sees neither what nor when.
* The lip features and the phonemes are the speech itself: untouched (the caller does not pass them here).

The projections of the conditions have no bias, so zero raw features are exactly the unconditional inputs.

Measured on the demo model (README, dialogue section), these conditions move its speech onsets 100-300 ms early
and leave the pauses only about 8 dB below the lines, while :func:`gate_outside_lines` on the ordinary generation
keeps the onsets and puts everything outside the lines more than 40 dB down; so speech-only generation
(``generate(speech_only=True)``, ``--speech-only``, the sampler's ``speech_only``) is the gate, and
:func:`speech_only_visuals` stays available (``sample_windows(speech_mask=...)``) for models whose scene conditions
drive sound effects inside the lines too.
"""

from __future__ import annotations

import torch

MARGIN_SEC = 0.2  # Synchformer kept this long before and after every line


def speech_only_visuals(clip: torch.Tensor, synch: torch.Tensor, in_lines: torch.Tensor,
                        latent_rate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(clip, synch)`` of one or more windows for speech-only generation.

    ``clip`` ``[W, Tc, D]`` becomes zeros; ``synch`` ``[W, S, 8, D]`` or ``[W, Ts, D]`` keeps only its tokens whose
    time (tokens spread evenly over the window) lies within :data:`MARGIN_SEC` of a latent frame where ``in_lines``
    ``[W, L]`` (or ``[L]`` for every window) is true.
    """
    windows = synch.shape[0]
    flat = synch.reshape(windows, -1, synch.shape[-1])
    tokens, length = flat.shape[1], in_lines.shape[-1]
    mask = in_lines.reshape(-1, length).expand(windows, length).float()
    widen = int(round(MARGIN_SEC * latent_rate))
    if widen:  # dilate the line frames by the margin
        mask = torch.nn.functional.max_pool1d(mask[:, None], 2 * widen + 1, stride=1, padding=widen)[:, 0]
    # the latent frame each token's centre falls in
    frame = ((torch.arange(tokens, dtype=torch.float64) + 0.5) * length / tokens).long().clamp_(max=length - 1)
    keep = mask[:, frame].to(flat.dtype)[..., None]
    return torch.zeros_like(clip), (flat * keep).reshape(synch.shape)


GATE_MARGIN_SEC = 0.15  # the generated sound is kept this long beyond every line (attack, release)
GATE_FADE_SEC = 0.05  # then faded out over this long


def gate_outside_lines(waveform: torch.Tensor, lines: list[tuple[float, float]], sample_rate: int) -> torch.Tensor:
    """``waveform`` ``[..., samples]`` silenced outside the lines (each widened by :data:`GATE_MARGIN_SEC`, with
    raised-cosine fades of :data:`GATE_FADE_SEC`): what is left between the lines once the conditions no longer
    drive sound effects is residue, and speech alone means silence there."""
    samples = waveform.shape[-1]
    t = torch.arange(samples, dtype=torch.float64) / sample_rate
    gain = torch.zeros(samples, dtype=torch.float64)
    for start, end in lines:
        a, b = start - GATE_MARGIN_SEC, end + GATE_MARGIN_SEC
        rise = ((t - (a - GATE_FADE_SEC)) / GATE_FADE_SEC).clamp(0, 1)
        fall = (((b + GATE_FADE_SEC) - t) / GATE_FADE_SEC).clamp(0, 1)
        line_gain = 0.5 - 0.5 * torch.cos(torch.pi * torch.minimum(rise, fall))
        gain = torch.maximum(gain, line_gain)
    return waveform * gain.to(waveform.dtype)
