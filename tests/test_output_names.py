"""The Audio Mux node's output names: an empty prefix gets a visible default name, a prefix no file system can
store is refused with the reason before the prompt runs (the node's input validation), and any video it is given is
saved, its picture copied or re-encoded as the output plan says."""

from __future__ import annotations

import os
import re
from pathlib import Path

import av
import pytest
import torch

from test_output_plan import encode_clip, video_codec
from vssflow_core.config import SEQUENCE
from vssflow_core.media import OutputPathError
from workflow_tools import load_pack, pack_nodes

SR = SEQUENCE.sample_rate


@pytest.fixture(scope="module")
def pack():
    return load_pack()


@pytest.fixture(scope="module")
def mux(pack):
    return pack_nodes(pack)["VSSFlowAudioMux"]


@pytest.fixture
def output(pack, tmp_path) -> Path:
    pack.nodes.comfy_bridge.configure(output_dir=tmp_path / "output", temp_dir=tmp_path / "temp")
    return tmp_path / "output"


@pytest.fixture(scope="module")
def prores(tmp_path_factory) -> Path:
    return encode_clip(tmp_path_factory.mktemp("in") / "clip.mov", "prores_ks", "yuv422p10le")


def audio(seconds: float = 1.0) -> dict:
    return {"waveform": torch.zeros(1, 1, round(seconds * SR)), "sample_rate": SR}


def saved(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("prefix, expected", [("", "vssflow/VSSFlow"), ("   ", "vssflow/VSSFlow"),
                                              ("takes/", "takes/VSSFlow"), (".", "vssflow/VSSFlow")])
def test_a_prefix_without_a_name_saves_visible_files_under_the_default_name(pack, mux, output, prores, prefix,
                                                                           expected):
    # before: ComfyUI's normpath turned "" into ".", and the files were the hidden "._00001_.mp4"
    video = pack.nodes.comfy_bridge.video_from_file(prores)
    mux.execute(video, audio(), prefix, False, 1.0, 1.0)
    assert saved(output) == [f"{expected}_00001_.mp4", f"{expected}_00001_.wav"]


@pytest.mark.parametrize("prefix, problem", [
    ("take\x00s", r"contains a NUL byte \(\\x00, in 'take\\x00s_00001_\.mp4'\), which no file system allows in a name; "
                  r"remove it from the "
                  r"filename_prefix"),
    (lambda limit: "t" * limit, r"the filename_prefix is too long: the name 't+\.\.\.' is \d+ bytes, more than the "
                                r"\d+ allowed here .*shorten the filename_prefix"),
], ids=["NUL byte", "too long"])
def test_a_prefix_no_file_system_can_store_is_refused_before_the_prompt_runs(pack, mux, output, prores, prefix,
                                                                            problem):
    if callable(prefix):
        output.mkdir(parents=True, exist_ok=True)
        prefix = prefix(os.pathconf(output, "PC_NAME_MAX"))
    # ComfyUI calls validate_inputs when the prompt is queued, before any node runs: nothing is generated
    message = mux.validate_inputs(filename_prefix=prefix)
    assert isinstance(message, str) and re.search(problem, message), message
    with pytest.raises(OSError, match=problem) as raised:  # and the node itself refuses it the same way
        mux.execute(pack.nodes.comfy_bridge.video_from_file(prores), audio(), prefix, False, 1.0, 1.0)
    assert type(raised.value).__name__ == OutputPathError.__name__  # the pack's own copy of the core's type
    assert not output.exists() or saved(output) == []


def test_a_good_prefix_passes_validation(mux, output):
    assert mux.validate_inputs(filename_prefix="vssflow/VSSFlow") is True


def test_a_prores_file_is_saved_with_its_picture_re_encoded(pack, mux, output, prores):
    mux.execute(pack.nodes.comfy_bridge.video_from_file(prores), audio(), "codecs/prores", False, 1.0, 1.0)
    mp4 = output / "codecs" / "prores_00001_.mp4"
    assert video_codec(mp4) == "h264"
    with av.open(str(mp4)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    assert saved(output) == ["codecs/prores_00001_.mp4", "codecs/prores_00001_.wav"]
