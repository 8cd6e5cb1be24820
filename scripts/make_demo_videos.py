"""Write the example videos the README's first command uses: silent procedural clips of the kind the demo model
was trained on (never the training or held-out ones), with what they show in ``demo_videos/examples.json``.

    python scripts/make_demo_videos.py       # rewrites demo_videos/*.mp4 and demo_videos/examples.json
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vssflow_core.synthetic.generator import write_video  # noqa: E402
from vssflow_core.synthetic.scenes import SceneSpec, make_sound_clip, make_talking_clip  # noqa: E402

SEED = 20261121  # not the data set's seed: these clips are new to the model
SPEC = SceneSpec(duration=10.0, events=(4, 10))


def strip_audio(src: Path, dst: Path) -> None:
    """Copy only the video stream (the examples are silent videos, as users bring them)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)


def main() -> int:
    out_dir = ROOT / "demo_videos"
    out_dir.mkdir(exist_ok=True)
    described = {}
    for name, make in (("bouncing", make_sound_clip), ("talking", make_talking_clip)):
        clip = make(np.random.default_rng([SEED, len(name)]), SPEC)
        with tempfile.TemporaryDirectory() as tmp:
            with_sound = write_video(Path(tmp) / "clip.mp4", clip.frames, SPEC.fps, clip.audio, SPEC.sample_rate)
            strip_audio(with_sound, out_dir / f"{name}.mp4")
        truth = {k: v for k, v in clip.truth.items() if k not in ("mouth_open", "geometry")}
        described[f"{name}.mp4"] = truth
    (out_dir / "examples.json").write_text(json.dumps(described, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
