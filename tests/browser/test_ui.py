"""The pack in the real ComfyUI frontend, in headless Chromium, against a real server (see conftest.py).

One browser session (``ui_check.mjs``) does the clicking and records what it saw; the tests below assert on that
record. Screenshots land in the pytest tmp dir and are copied to ``tests/browser/artifacts/`` (git-ignored); the
main one, ``ui.png``, is printed in the terminal summary.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import time
import urllib.request
import wave
from pathlib import Path

import pytest

from .conftest import CHROMIUM, REPO_ROOT, _state, copy_artifacts, run_driver

NODE_IDS = (
    "VSSFlowCheckpointLoader",
    "VSSFlowComponentsLoader",
    "VSSFlowVideoLoader",
    "VSSFlowPhonemeTokenizer",
    "VSSFlowVisualEncoder",
    "VSSFlowSampler",
    "VSSFlowVocoderDecode",
    "VSSFlowAudioMux",
)
TOKENIZER = "VSSFlowPhonemeTokenizer"
AUDIO_NODE = "VSSFlowAudioMux"  # our output node; its run sends ui.audio (the wav) beside the mp4 preview
EXTENSION = "vssflow.ui"
EXTENSION_URL = "/extensions/ComfyUI-VSSFlow/vssflow.js"
WORKFLOWS = sorted([*REPO_ROOT.glob("workflows/*.json"), *REPO_ROOT.glob("example_workflows/*.json")])
AUDIO_SECONDS = 2.5

# (tokens, start, end, duration): the layout the timeline draws must be the model's own (stretch_ids)
SPAN_CASES = [
    (["<blank>", "HH", "AH0", "L", "OW1", "<blank>"], 1.0, 3.0, 10.0),
    (["<blank>", "HH", "AH0", "L", "OW1", "<blank>"], 0.0, 10.0, 10.0),
    (["<blank>", "DH", "EH1", "R", ",", "HH", "AH0", "L", "OW1", "<blank>"], 2.8, 5.6, 10.0),
    ([f"T{i}" for i in range(37)], 0.13, 7.77, 10.0),
    ([f"T{i}" for i in range(30)], 8.5, 9.5, 10.0),  # more tokens than frames: some never sound
    (["<blank>", "AA1", "<blank>"], 9.92, 10.0, 10.0),  # (10 - 9.92) * 25 = 1.9999...: one frame
]


def _write_wav(path: Path, seconds: float, rate: int = 16000) -> None:
    frames = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * i / rate)))
                      for i in range(int(seconds * rate)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)


@pytest.fixture(scope="module")
def ui_report(comfy, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("browser")
    _write_wav(comfy.input_dir / "vssflow_browser_test.wav", AUDIO_SECONDS)
    # a fresh user would get the template browser over the canvas on first load
    status, body = comfy.request("POST", "/settings/Comfy.TutorialCompleted", True)
    assert status == 200, body
    config = {
        "url": comfy.base_url + "/",
        "chromium": CHROMIUM,
        "outDir": str(out / "screenshots"),
        "report": str(out / "report.json"),
        "nodeIds": list(NODE_IDS),
        "tokenizer": TOKENIZER,
        "audioNode": AUDIO_NODE,
        # a non-output node of ours (gets a player only if it ever sends ui.audio) and a core one (the stock code
        # adds no player to nodes outside its list: the reason this pack declares one on Audio Mux)
        "otherNodes": ["VSSFlowVocoderDecode", "EmptyImage"],
        "workflows": [{"name": f"{p.parent.name}/{p.name}", "path": str(p)} for p in WORKFLOWS],
        "audioFile": {"filename": "vssflow_browser_test.wav", "subfolder": "", "type": "input",
                      "seconds": AUDIO_SECONDS},
        "spanCases": SPAN_CASES,
    }
    config_path = out / "config.json"
    config_path.write_text(json.dumps(config, indent=2))
    started = time.monotonic()
    proc = run_driver(config_path, timeout=float(os.environ.get("VSSFLOW_BROWSER_TIMEOUT", "420")))
    _state["driver"] = proc
    report_path = Path(config["report"])
    assert report_path.is_file(), f"the browser driver wrote no report (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    report = json.loads(report_path.read_text())
    report["driver_seconds"] = time.monotonic() - started
    _state["screenshots"] = report.get("screenshots", {})
    _state["copied"] = {k: str(v) for k, v in copy_artifacts(report.get("screenshots", {})).items()}
    print(f"\nbrowser report: {report_path}\nscreenshots: {config['outDir']} (copied to {_state['copied'].get('ui')})")
    assert not report.get("fatal"), f"browser session aborted: {report['fatal']}\n{proc.stderr[-4000:]}"
    return report


def _step(report: dict, name: str) -> dict:
    step = report["steps"].get(name)
    assert step is not None, f"the browser session never reached step {name!r}"
    assert step["ok"], f"step {name!r} failed in the browser:\n{step.get('error')}"
    return step


# -- served and registered ---------------------------------------------------------------------------------------------

def test_extension_is_served(comfy):
    listed = comfy.get_json("/extensions")
    assert EXTENSION_URL in listed, f"{EXTENSION_URL} not in GET /extensions: {listed}"
    with urllib.request.urlopen(comfy.base_url + EXTENSION_URL, timeout=30) as resp:
        assert resp.status == 200
        assert b"registerExtension" in resp.read()


def test_page_loads_and_extension_is_registered(ui_report):
    boot = _step(ui_report, "boot")
    assert boot["nodeTypes"] > 100, boot
    assert EXTENSION in boot["extensions"], f"{EXTENSION} not among {len(boot['extensions'])} extensions"


def test_our_nodes_are_registered(ui_report):
    registered = _step(ui_report, "registered")
    assert not registered["missing"], f"not in LiteGraph.registered_node_types: {registered['missing']}"


def test_node_search_lists_our_nodes(ui_report):
    titles = _step(ui_report, "registered")["found"]
    results = _step(ui_report, "search")["results"]
    assert results, "typing 'VSSFlow' in the node search box listed nothing"
    missing = [node_id for node_id in NODE_IDS
               if not any(titles.get(node_id, node_id) in r or node_id in r for r in results)]
    names = [titles.get(m) for m in missing]
    assert not missing, f"search for 'VSSFlow' lacks {missing} ({names}); it listed {results}"


# -- shared workflows ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[f"{p.parent.name}/{p.name}" for p in WORKFLOWS])
def test_workflow_opens_without_missing_nodes(ui_report, workflow):
    name = f"{workflow.parent.name}/{workflow.name}"
    result = _step(ui_report, "workflows")["workflows"].get(name)
    assert result is not None, f"{name} was not opened"
    assert result["ok"], result.get("error")
    assert not result["missing"], f"{name}: node types missing in the browser: {result['missing']}"
    assert not result["unregisteredLoaded"], result["unregisteredLoaded"]
    assert result["loadedNodes"] == result["expectedNodes"], result
    assert not result["errors"], result["errors"]
    if any(n.get("type") == TOKENIZER for n in json.loads(workflow.read_text()).get("nodes", [])):
        assert result["timelines"] >= 1, f"{name}: the tokenizer has no timeline"


# -- the phoneme timeline --------------------------------------------------------------------------------------------

def test_token_layout_matches_vssflow_core(ui_report):
    from vssflow_core.text.phonemes import stretch_ids

    step = _step(ui_report, "spans")
    assert len(step["spans"]) == len(SPAN_CASES)
    for (tokens, start, end, _duration), spans in zip(SPAN_CASES, step["spans"], strict=True):
        expected = stretch_ids(list(range(1, len(tokens) + 1)), start, end).tolist()  # id = token index + 1
        drawn = [0] * len(expected)
        for span in spans:
            assert span["token"] == tokens[span["index"]]
            for frame in range(round(span["t0"] * 25), round(span["t1"] * 25)):
                drawn[frame] = span["index"] + 1
        assert drawn == expected, f"tokens {tokens} over {start}..{end} s: drawn {drawn} != stretch_ids {expected}"


def test_arpabet_table_matches_vssflow_core():
    """The ARPAbet preview accepts exactly the phones the node accepts (no browser needed)."""
    from vssflow_core.text.phonemes import PHONES

    js = (REPO_ROOT / "web" / "vssflow.js").read_text()
    vowels = re.findall(r'"(\w+)"', re.search(r"const VOWELS = \[(.*?)\];", js, re.DOTALL).group(1))
    consonants = re.findall(r'"(\w+)"', re.search(r"const CONSONANTS = \[(.*?)\];", js, re.DOTALL).group(1))
    assert {f"{v}{stress}" for v in vowels for stress in "012"} | set(consonants) == set(PHONES)


def test_timeline_renders(ui_report):
    step = _step(ui_report, "timeline")
    before = step["before"]
    assert before["present"], "the tokenizer node has no timeline widget"
    assert before["visible"] and before["connected"], before
    w, h = before["pixels"]
    assert w >= 200 and h >= 60, before["pixels"]
    assert before["painted"] > 0.9 * w * h, f"canvas mostly empty: {before['painted']} of {w * h} pixels painted"
    state = before["state"]
    assert (state["start"], state["end"], state["duration"]) == (1, 3, 10), state
    assert state["source"] == "ARPAbet preview" and state["tokens"] == 10, state  # 8 tokens + <blank> at both ends
    assert "vssflow_timeline" in before["widgets"]
    # the timeline is not an input: not in widgets_values (positional!) and not in the prompt
    assert "vssflow_timeline" not in before["serializable"], before["serializable"]
    assert len(before["serialized"]) == len(before["serializable"]), (before["serialized"], before["serializable"])
    assert "vssflow_timeline" not in before["promptInputs"], before["promptInputs"]
    # inside the window (2 s) the track is shaded, outside (0.5 s) it is not
    assert before["sample"]["at2"] != before["sample"]["at05"], before["sample"]


def test_timeline_follows_speech_start(ui_report):
    step = _step(ui_report, "timeline")
    before, after, edit = step["before"], step["after"], step["edit"]
    assert edit["now"] == pytest.approx(2.4), edit
    assert after["state"]["start"] == pytest.approx(2.4) and after["state"]["end"] == 3, after["state"]
    assert after["checksum"] != before["checksum"], "the picture did not change when speech_start changed"
    assert after["sample"]["at2"] != before["sample"]["at2"], "2 s is still drawn inside the speech window"
    assert after["sample"]["at2"] == after["sample"]["at05"], "2 s should now look like the rest of the clip"
    # a real mouse click on the widget's increment arrow moves the window too
    clicked = step["clicked"]
    assert clicked["state"]["start"] > after["state"]["start"], (step["click"], clicked["state"])
    assert clicked["checksum"] != after["checksum"]


def test_timeline_follows_linked_inputs(ui_report):
    step = _step(ui_report, "timeline")
    constants = step["linkedConstants"]  # Float constants wired into speech_start (1.5) and duration (8)
    assert "error" not in constants, constants
    assert set(constants["inputs"]) == {"speech_start", "duration"}, constants
    state = constants["probe"]["state"]
    assert (state["start"], state["end"], state["duration"], state["linked"]) == (1.5, 3, 8, []), state
    computed = step["linkedComputed"]  # duration from VideoLoader: known only when it runs
    assert "error" not in computed, computed
    state = computed["probe"]["state"]
    assert state["linked"] == ["duration"] and state["duration"] == 10 and not state["problem"], state


def test_timeline_shows_tokens_after_a_run(ui_report):
    step = _step(ui_report, "run")
    if step.get("skipped"):
        pytest.skip(step["skipped"])
    assert not step["errors"], f"the run failed: {step['errors']}"
    ours = [e for e in step["executed"] if "vssflow_phonemes" in (e.get("output") or {})]
    assert ours, f"no executed message carried vssflow_phonemes: {step['executed']}"
    message = ours[-1]["output"]["vssflow_phonemes"][0]
    state = step["probe"]["state"]
    assert state["source"] == "last run", state
    assert state["tokens"] == len(message["tokens"]) and state["tokens"] >= 10, (state, message)
    assert (state["start"], state["end"]) == (message["start"], message["end"]) == (1, 3), (state, message)
    # duration is null in the message when the optional duration input is not connected: the 10 s window
    assert state["duration"] == pytest.approx(message["duration"] or 10.0), (state, message)


def test_timeline_in_modern_node_design(ui_report):
    step = _step(ui_report, "vue")  # Comfy.VueNodes.Enabled: nodes drawn as DOM, widgets as Vue components
    before, after = step["before"], step["after"]
    assert before["inVueNode"] and before["rect"][0] > 100 and before["rect"][1] > 50, before
    state = before["state"]
    assert (state["source"], state["start"], state["end"]) == ("ARPAbet preview", 0.5, 10), state
    assert after["state"]["start"] == 4 and after["state"]["end"] == 10, after["state"]


# -- audio on our outputs --------------------------------------------------------------------------------------------

def test_audio_player_on_our_audio_node(ui_report):
    step = _step(ui_report, "audio")
    node = step["nodes"][AUDIO_NODE]
    assert node["outputNode"], node
    # the stock player (Comfy.AudioWidget's AUDIO_UI), declared for our output node: there but hidden before a run,
    # never serialized, never sent in the prompt
    before = node["before"]
    assert before and before["element"] == "AUDIO" and not before["ours"], f"no stock player on {AUDIO_NODE}: {node}"
    assert before["hidden"] and before["serialize"] is False and before["optionsSerialize"] is False, before
    assert "audioUI" not in node["promptInputs"], node["promptInputs"]
    after = node["after"]
    assert "filename=vssflow_browser_test.wav" in after["src"] and not after["hidden"], after
    playable = step["playable"]
    assert "error" not in playable, f"the browser could not load the audio: {playable}"
    assert playable["duration"] == pytest.approx(AUDIO_SECONDS, abs=0.05), playable


def test_audio_player_only_where_audio_is_sent(ui_report):
    nodes = _step(ui_report, "audio")["nodes"]
    decode = nodes["VSSFlowVocoderDecode"]
    assert decode["created"] and decode["before"] is None, decode  # not an output node: no player up front
    assert decode["after"] and decode["after"]["ours"], decode  # a ui.audio message gives it one
    assert "filename=vssflow_browser_test.wav" in decode["after"]["src"], decode
    core = nodes["EmptyImage"]
    assert core["before"] is None and core["after"] is None, core  # other packs' and core nodes: untouched


# -- health ----------------------------------------------------------------------------------------------------------

def test_no_errors_from_our_extension(ui_report):
    ours = [e for e in ui_report["pageErrors"] if "vssflow" in (e["message"] + e["stack"]).lower()]
    ours += [e for e in ui_report["consoleErrors"] if "vssflow" in (e["text"] + e["location"]).lower()]
    assert not ours, json.dumps(ours, indent=2)


def test_screenshot_saved(ui_report):
    shot = Path(ui_report["screenshots"].get("ui", ""))
    assert shot.is_file() and shot.stat().st_size > 10_000, shot
    with shot.open("rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (1600, 1000)
    print(f"\nscreenshot: {shot}\ncopy: {_state['copied'].get('ui')}")
