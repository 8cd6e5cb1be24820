"""The harness end to end: a real ComfyUI imports the pack, serves /object_info and runs core-node workflows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .comfy_server import PACK_DIR_NAME, PromptRejected

# nodes.py: logging.info("{:6.1f} seconds{}: {}".format(seconds, " (IMPORT FAILED)" or "", module_path))
IMPORT_TIME_ROW = re.compile(r"(\d+\.\d) seconds( \(IMPORT FAILED\))?: (\S.*?)\s*$")


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _flac_streaminfo(data: bytes) -> dict:
    """Sample rate, channels and total samples from a FLAC file's STREAMINFO block (always the first)."""
    assert data[:4] == b"fLaC", data[:16]
    bits = int.from_bytes(data[8 + 10:8 + 18], "big")  # 20 bits rate, 3 channels-1, 5 bps-1, 36 total samples
    return {"sample_rate": bits >> 44, "channels": ((bits >> 41) & 0x7) + 1, "total_samples": bits & ((1 << 36) - 1)}


def _saved_file(comfy, item: dict) -> Path:
    assert item["type"] == "output", item
    path = comfy.output_dir / item["subfolder"] / item["filename"]
    assert path.is_file(), f"{path} missing; output dir has {sorted(p.name for p in comfy.output_dir.rglob('*'))}"
    assert comfy.view(item["filename"], item["subfolder"], "output") == path.read_bytes()
    return path


def test_pack_is_imported_without_failure(comfy):
    log = comfy.log_text()
    rows = [m for m in map(IMPORT_TIME_ROW.search, log.splitlines()) if m]
    assert rows, f"no 'Import times for custom nodes' table in the ComfyUI log:\n{comfy.log_tail()}"
    ours = [m for m in rows if Path(m.group(3)).name == PACK_DIR_NAME]
    assert len(ours) == 1, f"custom_nodes/{PACK_DIR_NAME} is not in the import table: {[m.group(0) for m in rows]}"
    lines = log.splitlines()
    failed_at = [i for i, line in enumerate(lines) if f"Cannot import {ours[0].group(3)} module" in line]
    context = ""
    if failed_at:  # the traceback ComfyUI logged just before its "Cannot import" line
        starts = [i for i in range(failed_at[0]) if "Traceback (most recent call last)" in lines[i]]
        context = "\n".join(lines[starts[-1] if starts else max(0, failed_at[0] - 40):failed_at[0] + 1])
    assert ours[0].group(2) is None and not failed_at, f"ComfyUI could not import the pack: {ours[0].group(0)}\n{context}"


def test_object_info_lists_core_nodes(comfy):
    info = comfy.object_info()
    # the core nodes the pack's workflows are built around
    for node in ("EmptyImage", "SaveImage", "EmptyAudio", "SaveAudio", "LoadVideo", "GetVideoComponents",
                 "CreateVideo", "SaveVideo"):
        assert node in info, f"{node} missing from /object_info ({len(info)} nodes)"
    assert info["EmptyAudio"]["input"]["required"]["sample_rate"][0] == "INT"
    assert set(comfy.object_info("EmptyAudio")) == {"EmptyAudio"}


def test_image_workflow_runs(comfy):
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 24, "batch_size": 1, "color": 0xFF8000}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "harness/image"}},
    }
    entry = comfy.run(prompt, timeout=60)
    assert entry["status"]["status_str"] == "success"
    (item,) = entry["outputs"]["2"]["images"]
    assert _png_size(_saved_file(comfy, item).read_bytes()) == (32, 24)


def test_audio_workflow_runs(comfy):
    prompt = {
        "1": {"class_type": "EmptyAudio", "inputs": {"duration": 0.5, "sample_rate": 16000, "channels": 1}},
        "2": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": "harness/audio"}},
    }
    entry = comfy.run(prompt, timeout=60)
    (item,) = entry["outputs"]["2"]["audio"]
    info = _flac_streaminfo(_saved_file(comfy, item).read_bytes())
    assert info == {"sample_rate": 16000, "channels": 1, "total_samples": 8000}


def test_invalid_prompt_is_rejected_with_node_errors(comfy):
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 0, "height": 24, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "harness/bad"}},
    }
    with pytest.raises(PromptRejected) as err:
        comfy.queue_prompt(prompt)
    assert err.value.status == 400
    errors = err.value.body["node_errors"]["1"]["errors"]
    assert any(e["type"] == "value_smaller_than_min" and e["extra_info"]["input_name"] == "width" for e in errors), errors


def test_interrupt_while_idle_does_not_break_the_next_prompt(comfy):
    comfy.interrupt()
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "harness/after_interrupt"}},
    }
    entry = comfy.run(prompt, timeout=60)
    assert len(entry["outputs"]["2"]["images"]) == 2
