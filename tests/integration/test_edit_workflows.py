"""The two editing templates on a real ComfyUI server, on tiny random weights: "Fix a range" keeps the picked take
outside the range, reports the take's seed and tags the video with the workflow and the settings; "Restyle existing
audio" delivers at the streaming loudness with the true peak under the ceiling."""

from __future__ import annotations

import io
import json

import av
import numpy as np
import pytest
import soundfile as sf

from vssflow_core.media.loudness import integrated_loudness, true_peak_db
from vssflow_core.video.synthetic import make_counter_video
from workflow_tools import EXAMPLES_DIR, load_workflow, to_api

from .test_workflows import api_prompt, info, only, saved  # noqa: F401 (info: a fixture)

FIX, RESTYLE = "Fix a range", "Restyle existing audio"
SR = 16_000


@pytest.fixture(scope="module")
def clip(comfy) -> str:
    make_counter_video(comfy.input_dir / "edit_clip.mp4", 75, 25)  # 3 s
    return "edit_clip.mp4"


def run_with_workflow(comfy, prompt: dict, workflow: dict) -> dict:
    """Queue with the editor's graph in extra_pnginfo, as the frontend sends it."""
    entry = comfy.wait(comfy.queue_prompt(prompt, {"extra_pnginfo": {"workflow": workflow}}), 300.0)
    assert entry.get("status", {}).get("status_str") == "success", comfy.log_tail()
    return entry


def tags(mp4) -> dict:
    with av.open(str(mp4)) as container:
        return dict(container.metadata)


def test_fix_a_range_keeps_the_picked_take_outside_the_range(comfy, info, tiny_models, clip):
    prompt = api_prompt(info, tiny_models, FIX, VSSFlowVideoLoader={"file": clip},
                        VSSFlowAudioEdit={"regenerate": "1.0-2.0"}, VSSFlowSampler={"steps": 2, "solver": "euler"})
    entry = run_with_workflow(comfy, prompt, load_workflow(EXAMPLES_DIR / f"{FIX}.json"))
    mp4, wav = saved(comfy, entry, prompt)
    pick = entry["outputs"][only(prompt, "VSSFlowPickTake")]
    first_seed = next(n for n in prompt.values() if n["class_type"] == "VSSFlowSampler"
                      and n["inputs"]["batch_size"] > 1)["inputs"]["seed"]
    take = prompt[only(prompt, "VSSFlowPickTake")]["inputs"]["take"]
    takes = next(n for n in prompt.values() if n["class_type"] == "VSSFlowSampler"
                 and n["inputs"]["batch_size"] > 1)["inputs"]["batch_size"]
    assert pick["text"] == [f"take {take} of {takes}, seed {first_seed + take - 1}"]
    (preview,) = pick["audio"]
    picked, _ = sf.read(io.BytesIO(comfy.view(preview["filename"], preview["subfolder"], "temp")), dtype="float32")
    fixed, rate = sf.read(str(wav), dtype="float32")
    assert rate == SR and fixed.shape == picked.shape
    t = (np.arange(fixed.size) + 0.5) / SR
    kept = (t < 1.0) | (t >= 2.0)
    # the take is kept outside the range (the delivery limiter may only lower its loudest peaks)
    close = np.abs(fixed[kept] - picked[kept]) <= 2 / 32768
    assert close.mean() > 0.99 and np.all(np.abs(fixed[kept]) <= np.abs(picked[kept]) + 2 / 32768)
    settings = json.loads(tags(mp4)["vssflow"])
    assert settings["seed"] == 21 and settings["solver"] == "euler"
    assert json.loads(tags(mp4)["prompt"]).keys() == prompt.keys()
    assert json.loads(tags(mp4)["workflow"])["nodes"]


def test_restyle_delivers_at_the_streaming_loudness(comfy, info, tiny_models, clip):
    prompt = api_prompt(info, tiny_models, RESTYLE, VSSFlowVideoLoader={"file": clip},
                        VSSFlowSampler={"steps": 2, "solver": "euler"})
    entry = comfy.run(prompt, timeout=300.0)
    mp4, wav = saved(comfy, entry, prompt)
    samples, rate = sf.read(str(wav), dtype="float32")
    peak = true_peak_db(samples, rate)
    assert peak <= -1.0 + 0.1  # 16-bit rounding
    # at the target, unless the ceiling stops it first: the tiny random vocoder's output is mostly a slow offset,
    # which K-weighting hardly hears but which fills the headroom (tests/test_loudness.py checks real-like material)
    assert abs(integrated_loudness(samples, rate) - (-14.0)) <= 0.5 or peak >= -1.0 - 0.3
    edit = prompt[only(prompt, "VSSFlowAudioEdit")]["inputs"]
    assert edit["regenerate"] == "" and 0 < edit["strength"] < 1
