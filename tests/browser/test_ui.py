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
import urllib.parse
import urllib.request
import wave
from pathlib import Path

import pytest

from .conftest import CHROMIUM, REPO_ROOT, _state, copy_artifacts, frontend_version, run_driver

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
RUN_TEMPLATE = REPO_ROOT / "example_workflows" / "Add sound in one node.json"

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
def ui_report(comfy, frontend, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp(f"browser-{frontend}")
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
        # the one-node template on the pack's own demo clip: a fresh install's first run, pressed in the browser
        "runTemplate": {"name": RUN_TEMPLATE.name, "path": str(RUN_TEMPLATE), "timeoutMs": 240_000},
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
    copied = {k: str(v) for k, v in copy_artifacts(report.get("screenshots", {}), frontend).items()}
    _state["copied"][frontend] = copied
    report["copied"] = copied
    print(f"\nbrowser report ({frontend} frontend {report.get('frontendVersion')}): {report_path}\n"
          f"screenshots: {config['outDir']} (copied to {Path(copied['ui']).parent if 'ui' in copied else None})")
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


def test_pack_routes_are_served(comfy):
    from vssflow_core.config import SEQUENCE

    for prefix in ("", "/api"):  # the frontend's api.fetchApi uses /api
        facts = comfy.get_json(prefix + "/vssflow/facts")
        assert facts["phoneme_fps"] == SEQUENCE.phoneme_fps and "dopri5" in facts["adaptive_solvers"], facts
    status, body = comfy.request("POST", "/api/vssflow/timeline", {"text": "1-2 [a]: Hi\nnot a row", "rows": True})
    answer = json.loads(body)
    assert status == 200 and not answer["ok"] and "row 2" in answer["error"], answer
    answer = comfy.get_json("/api/vssflow/duration?file=..%2F..%2Fsecret.mp4")  # refused (by ComfyUI or by us)
    assert not answer["ok"] and "secret.mp4" in answer["error"] and "duration" not in answer, answer
    spec = comfy.object_info("VSSFlowVideoLoader")["VSSFlowVideoLoader"]["input"]["optional"]["file"]
    choices = spec[1]["options"] if spec[0] == "COMBO" else spec[0]  # V3 combos list their options apart
    name = next(v for v in choices if str(v).startswith("demo_videos/"))
    answer = comfy.get_json("/api/vssflow/duration?" + urllib.parse.urlencode({"file": name}))
    assert answer["ok"] and answer["duration"] > 0, answer


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


def test_a_template_opened_in_the_browser_runs_as_shipped(ui_report):
    """Open the template, press Run: it finishes with a result and no missing-media or other error dialog."""
    step = _step(ui_report, "templateRun")
    assert step["queued"], step
    assert not step["errors"], f"the template's run failed: {step['errors']}"
    assert not any("missing" in d.lower() for d in step["dialogs"]), step["dialogs"]
    outputs = [e.get("output") or {} for e in step["executed"]]
    assert any(o.get("audio") for o in outputs) and any(o.get("images") or o.get("animated") for o in outputs), \
        f"no audio and video result came back: {step['executed']}"


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


def test_served_frontend_is_the_one_asked_for(ui_report, frontend):
    want = frontend_version(frontend)
    assert want and ui_report["frontendVersion"] == want, (frontend, ui_report["frontendVersion"], want)


# -- a live timeline before any run (issue 14 item 6) ------------------------------------------------------------------

def test_live_timeline_measures_the_clip_and_phonemizes_english(ui_report):
    from vssflow_core.text.phonemes import transcript_to_tokens
    from vssflow_core.video.inputs import resolve_video_input

    step = _step(ui_report, "live")
    assert step["wired"] == {"ok": True}, step["wired"]
    state = step["state"]
    clip = resolve_video_input(path=REPO_ROOT / step["file"], sequence=None)
    assert state["durationFrom"] == "video file" and state["duration"] == pytest.approx(clip.duration), state
    assert state["source"] == "phoneme preview" and not state["problem"], state
    assert state["tokens"] == len(transcript_to_tokens("Hello there", "text")), state
    assert (state["start"], state["end"]) == (1, 3), state


# -- dialogue rows on the timeline, dragged (issue 14 item 4) ----------------------------------------------------------

def test_dialogue_rows_are_drawn_line_by_line(ui_report):
    from vssflow_core.text.speech import describe_rows

    step = _step(ui_report, "dialogue")
    expected = describe_rows(step["text"])
    lines = step["before"]["lines"]
    assert [(l["start"], l["end"], l["voice"], l["row"]) for l in lines] == \
        [(e["start"], e["end"], e["voice"], e["row"]) for e in expected], lines
    assert [l["tokens"] for l in lines] == [len(e["tokens"]) for e in expected], lines
    assert not step["before"]["problem"], step["before"]


def test_dragging_retimes_the_rows_in_the_widget_and_the_prompt(ui_report):
    from vssflow_core.text.speech import describe_rows

    step = _step(ui_report, "dialogue")
    text = step["values"]["values"]["transcript"]
    assert step["values"]["prompt"]["transcript"] == text  # the prompt sends what the widget holds
    lines = describe_rows(text)  # still valid rows, in the core's own reading
    assert [l["voice"] for l in lines] == ["alice", "bob"], text
    (a, b) = lines
    # alice: start edge 0.5 -> 1.0, then the whole line +0.5 s; bob: end edge 4.5 -> 6.2 (mouse: within a frame)
    assert a["start"] == pytest.approx(1.5, abs=0.05) and a["end"] == pytest.approx(2.5, abs=0.05), text
    assert b["start"] == 3 and b["end"] == pytest.approx(6.2, abs=0.05), text
    assert "# a comment row" in text and text.count("\n") == step["text"].count("\n")  # the rest kept as typed
    # with rows the one-line speech window does nothing, and looks it
    assert {"speech_start", "speech_end"} <= set(step["values"]["disabled"]), step["values"]["disabled"]
    drawn = step["after"]["lines"]
    assert [(l["start"], l["end"]) for l in drawn] == [(l["start"], l["end"]) for l in lines], (drawn, lines)


def test_dialogue_node_has_the_timeline(ui_report):
    from vssflow_core.text.speech import describe_rows

    step = _step(ui_report, "dialogueNode")
    if step.get("skipped"):
        pytest.skip(step["skipped"])
    expected = describe_rows(step["text"])
    assert [(l["start"], l["end"], l["voice"], l["tokens"]) for l in step["before"]["lines"]] == \
        [(e["start"], e["end"], e["voice"], len(e["tokens"])) for e in expected], step["before"]
    lines = describe_rows(step["values"]["values"]["lines"])
    assert lines[1]["end"] == pytest.approx(5.5, abs=0.05) and step["values"]["prompt"]["lines"] == \
        step["values"]["values"]["lines"], step["values"]


def test_dragging_the_one_line_form_writes_speech_end(ui_report):
    one = _step(ui_report, "dialogue")["one"]
    assert not {"speech_start", "speech_end"} & set(one["disabled"]), one
    assert one["values"]["speech_start"] == 1 and one["values"]["speech_end"] == pytest.approx(4, abs=0.05), one
    assert one["prompt"]["speech_end"] == one["values"]["speech_end"], one


def test_vue_nodes_drag_reaches_the_widget_store(ui_report):
    step = _step(ui_report, "vueEdit")
    assert step["before"]["texts"] == [step["text"]], step["before"]  # the Vue textarea shows the widget's value
    text = step["values"]["values"]["transcript"]
    assert text != step["text"] and step["after"]["texts"] == [text], (step["after"], text)
    assert step["values"]["prompt"]["transcript"] == text
    assert step["stateAfter"]["lines"][1]["end"] == pytest.approx(6.0, abs=0.05), step["stateAfter"]


# -- widgets that do nothing in the current setting (issue 16 item 5) ------------------------------------------------

def test_sampler_widgets_unused_by_the_solver_are_inactive(ui_report):
    from vssflow_core.flow.solvers import Dopri5Solver, make_solver

    assert isinstance(make_solver("dopri5"), Dopri5Solver) and not isinstance(make_solver("euler"), Dopri5Solver)
    step = _step(ui_report, "inactive")
    dopri5, euler = step["dopri5"]["sampler"], step["euler"]["sampler"]
    assert {"steps", "schedule"} <= set(dopri5["disabled"]) and not {"atol", "rtol"} & set(dopri5["disabled"]), dopri5
    assert {"atol", "rtol"} <= set(euler["disabled"]) and not {"steps", "schedule"} & set(euler["disabled"]), euler
    assert euler["values"]["solver"] == "euler" and euler["prompt"]["solver"] == "euler"
    assert "seed" not in dopri5["disabled"] and "guidance_scale" not in euler["disabled"]


def test_loader_file_picker_is_inactive_while_a_video_is_connected(ui_report):
    step = _step(ui_report, "inactive")
    alone, wired = step["dopri5"]["loader"], step["withVideo"]["loader"]
    assert alone["values"]["file"].startswith("demo_videos/") and "file" not in alone["disabled"], alone
    assert "frame_rate" in alone["disabled"], alone  # read only with images
    assert step["wired"] == {"ok": True}, step["wired"]
    # connecting a VIDEO clears the file (both at once is an error) and greys the picker
    assert wired["values"]["file"] == "(none)" and "file" in wired["disabled"], wired
    assert wired["prompt"].get("file", "(none)") == "(none)", wired["prompt"]


def test_vue_nodes_show_the_sampler_widgets_inactive(ui_report):
    step = _step(ui_report, "vueEdit")
    assert {"steps", "schedule"} <= set(step["sampler"]["disabled"]), step["sampler"]
    assert not {"steps", "schedule"} & set(step["samplerEuler"]["disabled"]), step["samplerEuler"]
    # the Vue node draws the steps widget's controls disabled under dopri5 and enabled under euler (schedule is an
    # advanced input, folded away by default; seed and batch_size keep their decrement disabled at their minimum)
    dopri5, euler = step["after"]["disabled"], step["euler"]["disabled"]
    assert len(dopri5) >= len(euler) + 2, (dopri5, euler)


# -- the public extension API only (issue 16 item 3) -----------------------------------------------------------------

def test_no_deprecated_api_from_our_extension(ui_report):
    warnings = ui_report["deprecations"]
    assert isinstance(warnings, list), warnings  # the frontend's deprecation hook was reachable
    ours = [w for w in warnings if "vssflow" in w["stack"].lower()]
    assert not ours, json.dumps(ours[:5], indent=2)


def test_extension_patches_no_prototype_and_reads_no_input_link():
    js = (REPO_ROOT / "web" / "vssflow.js").read_text()
    code = "\n".join(line.split("//")[0] for line in js.splitlines())  # comments may name what is avoided
    assert ".prototype" not in code, "the extension patches a prototype"
    assert not re.search(r"\.link\b(?!s)", code), "the extension reads input.link (deprecated in frontend 1.58)"


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
    print(f"\nscreenshot: {shot}\ncopy: {ui_report['copied'].get('ui')}")
