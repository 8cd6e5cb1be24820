// ComfyUI-VSSFlow front-end extension ("vssflow.ui").
//
// 1. A speech timeline on our nodes that take a transcript (Phoneme Tokenizer, Add Sound to Video): the clip's time
//    axis with every line of speech on it, live before any run.
//    - One line: the transcript over [speech_start, speech_end] (speech_end 0 = the end of the clip). Dialogue: one
//      `start-end [voice]: text` per row of the text (vssflow_core/text/speech.py parse_rows), each line coloured by
//      its voice. Drag a line's start or end edge, or the line itself, to retime it: the widgets (or the row's
//      times) are written through the widget's own setValue, so the value reaches the widget store and the prompt.
//    - The clip's real duration: a constant wired into `duration`, or the file of the VideoLoader / Load Video
//      upstream, measured by the pack's server route (GET /vssflow/duration); else the last run's; else one window.
//    - Phonemes: English text is turned into the model's phonemes by the server (POST /vssflow/timeline, the core's
//      own G2P and checks, whose message is shown when the node would refuse the text); ARPAbet is drawn at once.
//      Each line's tokens are placed by the model's own rule (vssflow_core.text.phonemes.stretch_ids): ids stretched
//      over int((end - start) * 25) frames. After a run, the node's `vssflow_phonemes` ui message is used.
// 2. Widgets that do nothing in the current setting look inactive (widget.disabled): the sampler's steps and
//    schedule under an adaptive solver (dopri5), its tolerances under a fixed-step one; the VideoLoader's file picker
//    while a VIDEO or images are connected (connecting one clears a chosen file: both at once is an error), and its
//    frame_rate unless images are connected.
// 3. Playable audio on our outputs: the stock player (Comfy.AudioWidget's AUDIO_UI) declared on our output nodes the
//    way the core declares it on SaveAudio; a non-output node of ours that sends `ui.audio` gets the same player.
//
// Only the public extension API: hooks of app.registerExtension, per-node callbacks set on the instance in
// nodeCreated (never a prototype), connectivity through node.isInputConnected / getInputNode / getInputLink (never
// input.link), widget values through widget.setValue. Robust by construction: nothing happens when our nodes are not
// installed; every hook is guarded so that an error here is logged once and never breaks the canvas.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const EXTENSION = "vssflow.ui";
const OUR_PREFIX = "VSSFlow";
const SAMPLER = "VSSFlowSampler";
const VIDEO_LOADER = "VSSFlowVideoLoader";
const NO_FILE = "(none)"; // the VideoLoader's "no file" choice
const TIMELINE_WIDGET = "vssflow_timeline";
const AUDIO_WIDGET = "audioUI"; // the stock name: Comfy.AudioWidget looks it up by it
const TEXT_WIDGETS = ["lines", "dialogue", "transcript"]; // the speech: dialogue rows, or a transcript (maybe rows)
const ROW_WIDGETS = new Set(["lines", "dialogue"]); // always dialogue rows (the Dialogue node)
const BLANK = "<blank>";
const PAUSE_MARKS = new Set([",", ".", "!", "?", ";", ":", "-", "'", "..."]);
const ARPABET_LIKE = /^(?:[A-Za-z]{1,2}[0-9]?|<blank>|[,.!?;:'\-]|\.\.\.)$/i;
const STRESSED = /^[A-Za-z]{1,2}[0-9]$/;
// the official 70-entry token table (vssflow_core.text.phonemes.TOKEN_IDS): 15 vowels x 3 stresses, 24 consonants
const VOWELS = ["AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"];
const CONSONANTS = ["B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH", "T",
    "TH", "V", "W", "Y", "Z", "ZH"];
const PHONES = new Set([...VOWELS.flatMap((v) => [`${v}0`, `${v}1`, `${v}2`]), ...CONSONANTS]);
// a dialogue row, as vssflow_core.text.speech parses it: times in seconds or m:ss.s, the voice optional
const TIME = String.raw`(?:\d+:)?(?:\d+:)?\d+(?:[.,]\d+)?`;
const ROW = new RegExp(String.raw`^(\s*)(${TIME})\s*-\s*(${TIME})(\s*(?:\[([^\]]*)\])?\s*:\s*)(.*)$`);
const HEIGHT = 132; // px (canvas units) of the timeline widget
const EDGE_PX = 6; // how near a line's edge a press grabs the edge
const SNAP_SEC = 0.01;
const POLL_MS = 250; // widget values can change without a callback (Vue widgets, undo): re-read them this often

// What the server's GET /vssflow/facts says (read from vssflow_core); these stand in until it answers.
const facts = {
    phoneme_fps: 25, window_sec: 10, adaptive_solvers: ["dopri5"],
    fixed_step_inputs: ["steps", "schedule"], adaptive_inputs: ["atol", "rtol"],
};

const COLORS = {
    bg: "#1b1d21", track: "#2c3038", trackEdge: "#4a505c",
    bad: "rgba(230, 70, 70, 0.35)", badEdge: "#ff6b6b",
    blank: "rgba(255, 255, 255, 0.10)", text: "#d8dce3", dim: "#8c93a0", tick: "#6a7180",
};
// per voice: [window shading, edge, token A, token B]; the first is also the colour of a line without a voice
const VOICE_COLORS = [
    ["rgba(64, 156, 255, 0.30)", "#4aa3ff", "#3d7fd6", "#2f68b3"],
    ["rgba(255, 160, 64, 0.30)", "#ffad5c", "#d6843d", "#b36a2f"],
    ["rgba(90, 200, 120, 0.30)", "#6fd68c", "#3fae62", "#2f8a4d"],
    ["rgba(190, 110, 255, 0.30)", "#c48cff", "#9a5cd6", "#7c45b3"],
];

// -- small helpers ---------------------------------------------------------------------------------------------------

const warned = new Set();
function guard(where, fn) {
    try {
        return fn();
    } catch (error) {
        const key = `${where}: ${error?.message ?? error}`;
        if (!warned.has(key)) {
            warned.add(key);
            console.warn(`[${EXTENSION}] ${key}`, error);
        }
        return undefined;
    }
}

function comfyClassOf(node) {
    return node?.constructor?.comfyClass ?? node?.comfyClass ?? node?.type;
}

function finite(value) {
    const x = typeof value === "string" && value.trim() === "" ? NaN : Number(value);
    return Number.isFinite(x) ? x : null;
}

function widgetOf(node, name) {
    return node?.widgets?.find((w) => w?.name === name);
}

function slotOf(node, name) {
    const slot = typeof node?.findInputSlot === "function" ? node.findInputSlot(name) : -1;
    return slot ?? -1;
}

function connected(node, name) {
    const slot = slotOf(node, name);
    return slot >= 0 && !!node.isInputConnected?.(slot);
}

/** The node at the other end of input `name` and the name of its output there, or null when not connected. */
function upstream(node, name) {
    const slot = slotOf(node, name);
    if (slot < 0 || !node.isInputConnected?.(slot)) return null;
    const origin = node.getInputNode?.(slot) ?? null;
    const link = node.getInputLink?.(slot);
    const output = origin && link ? origin.outputs?.[link.origin_slot]?.name : undefined;
    return { origin, output };
}

/** Writes a widget's value the way the user's own edits do (widget.setValue: callback, store, redraw). */
function setWidgetValue(node, widget, value) {
    if (!widget || widget.value === value) return;
    if (typeof widget.setValue === "function") {
        widget.setValue(value, { e: undefined, node, canvas: app.canvas });
    } else {
        widget.value = value;
        widget.callback?.(value, app.canvas, node);
    }
    node.setDirtyCanvas?.(true, true);
}

function chainCallback(object, name, after) {
    if (!object) return;
    const before = object[name];
    object[name] = function (...args) {
        const result = typeof before === "function" ? before.apply(this, args) : undefined;
        guard(name, () => after.apply(this, args));
        return result;
    };
}

/**
 * The value an input will have at run time, where the frontend can know it: its widget's value, or, when the input
 * is linked, the value of a constant one hop upstream (a "value" widget, as on the core Float / Int / String nodes,
 * or the widget of a legacy Primitive node). Anything computed upstream is unknown until the run: then `known` is
 * false and `value` is the widget's last value.
 */
function inputValue(node, name, kind = "number") {
    const own = widgetOf(node, name);
    const up = upstream(node, name);
    if (!up) return { value: own ? own.value : undefined, linked: false, known: !!own };
    const origin = up.origin;
    const w = origin?.widgets?.find((x) => x?.name === "value") ??
        (origin?.type === "PrimitiveNode" ? origin.widgets?.[0] : undefined);
    const usable = w && !connected(origin, w.name) &&
        (kind === "number" ? finite(w.value) !== null : typeof w.value === "string");
    if (usable) return { value: w.value, linked: true, known: true };
    return { value: own ? own.value : undefined, linked: true, known: false, origin, output: up.output };
}

function looksLikeArpabet(text) {
    const tokens = String(text ?? "").split(/\s+/).filter(Boolean);
    return tokens.length > 0 && tokens.every((t) => ARPABET_LIKE.test(t)) && tokens.some((t) => STRESSED.test(t));
}

/** ARPAbet transcript -> {tokens} with <blank> at both ends, as parse_arpabet; or {bad}: what it would reject. */
function arpabetTokens(text) {
    const tokens = [];
    for (const raw of String(text ?? "").split(/\s+/).filter(Boolean)) {
        const token = raw.toLowerCase() === BLANK ? BLANK : PAUSE_MARKS.has(raw) ? raw : raw.toUpperCase();
        if (token !== BLANK && !PAUSE_MARKS.has(token) && !PHONES.has(token)) {
            return { bad: PHONES.has(`${token}1`) ? `${raw} (a vowel needs a stress digit 0/1/2)` : raw };
        }
        tokens.push(token);
    }
    if (!tokens.some((t) => PHONES.has(t))) return { bad: "nothing to pronounce" };
    if (tokens[0] !== BLANK) tokens.unshift(BLANK);
    if (tokens.length === 1 || tokens[tokens.length - 1] !== BLANK) tokens.push(BLANK);
    return { tokens };
}

/**
 * Where each token falls, in seconds: vssflow_core.text.phonemes.stretch_ids (the official infer.py rule).
 * Returns [{token, index, t0, t1}] (runs of equal token index), clipped to the clip.
 */
export function tokenSpans(tokens, start, end, duration, fps = facts.phoneme_fps) {
    const n = tokens.length;
    if (!n || !(end > start)) return [];
    const frames = Math.trunc((end - start) * fps); // float arithmetic as Python's int((end - start) * fps)
    const lead = Math.trunc(start * fps);
    const visible = Math.max(0, Math.min(frames, Math.round(duration * fps) - lead));
    if (frames < 1) return [];
    if (frames > 200000) {
        // absurd window: spread evenly rather than walk millions of frames
        return tokens.map((token, index) => ({
            token, index, t0: start + ((end - start) * index) / n, t1: start + ((end - start) * (index + 1)) / n,
        }));
    }
    const repeat = Math.ceil(frames / n);
    const length = n * repeat;
    const scale = Math.fround(length / frames); // torch nearest: src = floor(dst * (in / out)) in float32
    const spans = [];
    for (let j = 0; j < visible; j++) {
        const src = Math.min(Math.floor(Math.fround(Math.fround(j) * scale)), length - 1);
        const index = Math.floor(src / repeat);
        const last = spans[spans.length - 1];
        if (last && last.index === index) last.t1 = (lead + j + 1) / fps;
        else spans.push({ token: tokens[index], index, t0: (lead + j) / fps, t1: (lead + j + 1) / fps });
    }
    return spans;
}

function seconds(text) {
    return String(text).replace(",", ".").split(":").reduce((acc, part) => acc * 60 + Number(part), 0);
}

/** True when the text is dialogue rows: its first row that is not blank or a comment is a `start-end ...: text`. */
export function looksLikeRows(text) {
    const first = String(text ?? "").split(/\r\n|\r|\n/).find((row) => row.trim() && !row.trim().startsWith("#"));
    return !!first && ROW.test(first.replace(/^\ufeff/, ""));
}

/** Dialogue rows -> [{row, start, end, voice, text}] or, for a row that is not one, {row, bad}. */
export function parseRows(text) {
    const out = [];
    String(text ?? "").replace(/^\ufeff/, "").split(/\r\n|\r|\n/).forEach((raw, i) => {
        if (!raw.trim() || raw.trim().startsWith("#")) return;
        const m = ROW.exec(raw);
        if (!m) out.push({ row: i + 1, bad: "not a dialogue row (write 'start-end [voice]: text')" });
        else if (!m[6].trim()) out.push({ row: i + 1, bad: "has no text" });
        else out.push({ row: i + 1, start: seconds(m[2]), end: seconds(m[3]), voice: m[5]?.trim() || null,
                        text: m[6].trim() });
    });
    return out;
}

/** The text with row `row`'s times replaced (everything else kept as typed). */
export function retimeRow(text, row, start, end) {
    const rows = String(text ?? "").split(/(\r\n|\r|\n)/); // separators kept at odd indices
    const index = 2 * (row - 1);
    const m = ROW.exec(rows[index] ?? "");
    if (!m) return text;
    rows[index] = `${m[1]}${fmt(start)}-${fmt(end)}${m[4]}${m[6]}`;
    return rows.join("");
}

function niceStep(duration, maxTicks) {
    const raw = duration / Math.max(1, maxTicks);
    for (const step of [0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 15, 30, 60, 120, 300, 600]) {
        if (step >= raw) return step;
    }
    return Math.ceil(raw / 600) * 600;
}

function fmt(value, digits = 2) {
    return Number.isFinite(value) ? value.toFixed(digits).replace(/\.?0+$/, "") || "0" : "?";
}

// -- what the server knows: facts, the clip's duration, phonemes of English text ------------------------------------

const durations = new Map(); // file name -> {pending} | {duration} | {error}
const previews = new Map(); // request key -> {pending} | server answer
const tokenCache = new Map(); // `${mode}\n${text}` -> tokens, from any answer
const timelines = new Set(); // nodes with a timeline, for redraws when an answer arrives

function redrawAll() {
    for (const node of timelines) refresh(node, true);
}

async function postJSON(path, body) {
    const response = await api.fetchApi(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                                body: JSON.stringify(body) });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
}

function clipDuration(file) {
    const known = durations.get(file);
    if (known) return known;
    const entry = { pending: true };
    durations.set(file, entry);
    api.fetchApi(`/vssflow/duration?${new URLSearchParams({ file })}`)
        .then((r) => (r.ok ? r.json() : { ok: false, error: `HTTP ${r.status}` }))
        .then((answer) => durations.set(file, answer.ok ? { duration: answer.duration } : { error: answer.error }))
        .catch((error) => durations.set(file, { error: String(error?.message ?? error) }))
        .finally(redrawAll);
    return entry;
}

let previewTimer = null;
const previewQueue = new Map();
function requestPreview(key, body) {
    if (previews.has(key)) return previews.get(key);
    previewQueue.set(key, body);
    clearTimeout(previewTimer);
    previewTimer = setTimeout(() => { // typing and dragging send one request per pause, not per keystroke
        const batch = [...previewQueue];
        previewQueue.clear();
        for (const [k, b] of batch.slice(-4)) {
            previews.set(k, { pending: true });
            postJSON("/vssflow/timeline", b)
                .then((answer) => {
                    previews.set(k, answer);
                    for (const line of answer.lines ?? []) tokenCache.set(`${b.mode}\n${line.text}`, line.tokens);
                })
                .catch((error) => previews.set(k, { ok: false, offline: true, error: String(error?.message ?? error) }))
                .finally(redrawAll);
        }
        if (previews.size > 200) previews.delete(previews.keys().next().value);
    }, 200);
    return { pending: true };
}

// -- the timeline ----------------------------------------------------------------------------------------------------

/** The file a node upstream of `duration` reads (our VideoLoader, core Load Video), following VIDEO inputs. */
function videoFileOf(node, depth = 0) {
    if (!node || depth > 4) return null;
    if (connected(node, "video")) return videoFileOf(upstream(node, "video")?.origin, depth + 1);
    if (connected(node, "images")) return null;
    const file = widgetOf(node, "file") ?? widgetOf(node, "video");
    return typeof file?.value === "string" && file.value && file.value !== NO_FILE ? file.value : null;
}

function clipLength(node, timeline) {
    const last = timeline.last?.duration > 0 ? timeline.last.duration : null;
    const durIn = inputValue(node, "duration");
    if (durIn.known && finite(durIn.value) > 0) return { duration: finite(durIn.value), from: "input" };
    const file = durIn.linked ? videoFileOf(durIn.origin) : videoFileOf(node); // Add Sound to Video has the file
    if (file) {
        const answer = clipDuration(file);
        if (answer.duration > 0) return { duration: answer.duration, from: "video file", file };
        if (answer.error) return { duration: last ?? facts.window_sec, from: last ? "last run" : "default",
                                   problem: `cannot measure ${file}: ${answer.error}` };
    }
    if (last) return { duration: last, from: "last run" };
    return { duration: facts.window_sec, from: "default", linked: durIn.linked };
}

/** Everything the drawing depends on, read from the node (cheap; called on every canvas frame and poll). */
function readState(node, timeline) {
    const textName = TEXT_WIDGETS.find((name) => widgetOf(node, name) || slotOf(node, name) >= 0) ?? "transcript";
    const textIn = inputValue(node, textName, "string");
    const modeIn = inputValue(node, "mode", "string");
    const startIn = inputValue(node, "speech_start");
    const endIn = inputValue(node, "speech_end");
    const clip = clipLength(node, timeline);
    const duration = clip.duration;
    const text = typeof textIn.value === "string" ? textIn.value : "";
    const mode = typeof modeIn.value === "string" ? modeIn.value : "auto";
    const rows = ROW_WIDGETS.has(textName) || looksLikeRows(text);
    const subtitle = widgetOf(node, "subtitle_file")?.value; // the Dialogue node's other source of lines
    const fromFile = typeof subtitle === "string" && !!subtitle && subtitle !== NO_FILE && !text.trim();
    const state = { duration, durationFrom: clip.from, text, textName, mode, rows, lines: [], problem: "",
                    source: "none", linked: [], silent: false, invalid: "", editable: !textIn.linked && !fromFile };
    if (textIn.linked && !textIn.known) state.linked.push(textName);
    if (clip.linked && clip.from === "default") state.linked.push("duration");
    if (clip.problem) state.problem = clip.problem;

    if (fromFile) {
        // the file's cues, as the node reads them (the server's subtitle reader); a file's times are not dragged
        const body = { subtitle_file: subtitle, mode, duration: clip.from === "default" ? null : duration };
        const answer = requestPreview(JSON.stringify(body), body);
        if (answer.ok) {
            state.lines = answer.lines.map((l) => ({ row: l.row, start: l.start, end: l.end, voice: l.voice,
                                                     text: l.text, tokens: l.tokens }));
        } else if (answer.error) state.problem = answer.error;
        state.source = answer.pending ? "subtitle file: reading" : answer.offline ? "no preview (server route unavailable)"
            : `subtitle file ${subtitle}`;
        state.silent = false;
        return state;
    }
    if (rows) {
        for (const item of parseRows(text)) {
            if (item.bad) { state.problem ||= `row ${item.row}: ${item.bad}`; continue; }
            state.lines.push(item);
        }
    } else if (text.trim() || (textIn.linked && !textIn.known)) {
        const start = finite(startIn.value) ?? 0;
        const endRaw = finite(endIn.value) ?? 0;
        state.lines.push({ row: null, start, end: endRaw > 0 ? endRaw : duration, voice: null, text });
        state.editable = state.editable && !startIn.linked && !endIn.linked && !!widgetOf(node, "speech_start") &&
            !!widgetOf(node, "speech_end"); // Add Sound to Video speaks over the whole clip
        for (const [name, input] of [["speech_start", startIn], ["speech_end", endIn]]) {
            if (input.linked && !input.known) state.linked.push(name);
        }
    }
    state.silent = textIn.known && !state.lines.length && !state.problem;

    // the lines' own problems, at once (the server's checks follow)
    state.lines.forEach((line, i) => {
        const where = line.row != null ? `row ${line.row}: ` : "speech ";
        if (state.problem) return;
        if (!(line.end > line.start)) state.problem = `${where}ends (${fmt(line.end)} s) before it starts (${fmt(line.start)} s)`;
        else if (line.start < 0 || line.end > duration + 1e-9) state.problem = `${where}${fmt(line.start)}–${fmt(line.end)} s lies outside the ${fmt(duration, 1)} s clip`;
        else if (Math.trunc((line.end - line.start) * facts.phoneme_fps) < 1) state.problem = `${where}shorter than one frame (0.04 s)`;
        else if (i > 0 && line.start < state.lines[i - 1].end - 1e-3) state.problem = `${where}starts before row ${state.lines[i - 1].row} ends`;
    });

    // tokens: the last run's while the text is the same, else the server's (English) or the ARPAbet read here
    const last = timeline.last;
    const sameText = last && ((textIn.linked && !textIn.known) || (last.text === text && last.mode === mode));
    if (last?.lines?.length && sameText) {
        state.lines.forEach((line, i) => { line.tokens = last.lines[i]?.tokens ?? last.lines[0].tokens; });
        const moved = state.lines.some((line, i) => Math.abs(line.start - (last.lines[i]?.start ?? NaN)) > 1e-9 ||
                                                    Math.abs(line.end - (last.lines[i]?.end ?? NaN)) > 1e-9);
        state.source = moved ? "last run, times edited" : "last run";
    } else if (textIn.known && state.lines.length) {
        const arpabet = state.lines.every((line) => mode === "arpabet" || (mode === "auto" && looksLikeArpabet(line.text)));
        if (arpabet) {
            for (const line of state.lines) {
                const parsed = arpabetTokens(line.text);
                line.tokens = parsed.tokens ?? null;
                if (!line.tokens) state.invalid ||= parsed.bad;
            }
            state.source = state.invalid ? "invalid ARPAbet" : "ARPAbet preview";
        }
        const body = { text, mode, rows, speech_start: finite(startIn.value) ?? 0, speech_end: finite(endIn.value) ?? 0,
                       duration: clip.from === "default" ? null : duration };
        const answer = requestPreview(JSON.stringify(body), body);
        if (!arpabet) {
            for (const line of state.lines) line.tokens = tokenCache.get(`${mode}\n${line.text}`) ?? null;
            const have = state.lines.every((line) => line.tokens);
            state.source = answer.offline ? "no phoneme preview (server route unavailable)"
                : have ? (answer.pending ? "phoneme preview, updating" : "phoneme preview") : "phonemes: asking the server";
        }
        if (answer.ok === false && !answer.offline && !state.problem) state.problem = answer.error;
    } else if (last?.lines?.length) {
        state.source = "text edited: run to update";
    }
    return state;
}

function stateKey(state, pixels, selected) {
    return JSON.stringify([state.duration, state.durationFrom, state.problem, state.source, state.linked, state.silent,
        state.invalid, state.lines.map((l) => [l.start, l.end, l.voice, l.text, l.tokens?.join(" ") ?? ""]), pixels,
        selected]);
}

function drawTicks(ctx, x, from, to, y, width, labels) {
    const step = niceStep(to - from, Math.max(2, Math.floor(width / 48)));
    ctx.fillStyle = COLORS.tick;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    for (let i = Math.ceil(from / step - 1e-9), n = 0; i * step <= to + 1e-9 && n < 200; i++, n++) {
        const t = i * step;
        const xt = Math.round(x(t)) + 0.5;
        ctx.fillRect(xt - 0.5, y, 1, 4);
        if (labels) ctx.fillText(`${fmt(t, 2)}s`, Math.min(Math.max(xt, x(from) + 8), x(to) - 8), y + 10);
    }
}

const LAYOUT = { pad: 10, top: 28, bottom: 52 }; // css px of the overview track (voice names above it)

function voiceColors(state) {
    const voices = [...new Set(state.lines.map((l) => (l.voice ?? "").toLowerCase()))];
    return (line) => VOICE_COLORS[Math.max(0, voices.indexOf((line.voice ?? "").toLowerCase())) % VOICE_COLORS.length];
}

function draw(canvas, state, pixelWidth, pixelHeight, ratio, selected) {
    const ctx = canvas.getContext("2d");
    if (!ctx) return null;
    if (canvas.width !== pixelWidth) canvas.width = pixelWidth;
    if (canvas.height !== pixelHeight) canvas.height = pixelHeight;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    const w = pixelWidth / ratio;
    const h = pixelHeight / ratio;
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = COLORS.bg;
    ctx.beginPath();
    if (ctx.roundRect) ctx.roundRect(0, 0, w, h, 6);
    else ctx.rect(0, 0, w, h);
    ctx.fill();

    const { pad, top, bottom } = LAYOUT;
    const inner = w - 2 * pad;
    const font = (px) => `${px}px Inter, Arial, sans-serif`;
    const colorOf = voiceColors(state);
    ctx.textBaseline = "middle";

    // -- header: the speech in words (left), where durations and tokens come from (right)
    ctx.font = font(11);
    const phones = state.lines.reduce((n, l) => n + (l.tokens?.filter((t) => t !== BLANK && !PAUSE_MARKS.has(t)).length ?? 0), 0);
    const voices = new Set(state.lines.map((l) => l.voice).filter(Boolean));
    const one = state.lines.length === 1 && state.lines[0].row == null ? state.lines[0] : null;
    const header = state.problem ? `⚠ ${state.problem}`
        : state.silent ? "no transcript: sound effects only, no speech"
        : (one ? `speech ${fmt(one.start)}–${fmt(one.end)} s` : `${state.lines.length} lines` +
           (voices.size ? ` · ${voices.size} voice${voices.size > 1 ? "s" : ""}` : "")) +
          ` of ${fmt(state.duration, 2)} s` + (phones ? ` · ${phones} phones` : "") +
          (state.linked.length ? ` · linked: ${state.linked.join(", ")}` : "");
    const clipNote = { input: "", "video file": "clip measured", "last run": "clip from last run",
                       default: `${fmt(facts.window_sec)} s assumed` }[state.durationFrom] ?? "";
    const note = [clipNote, state.source !== "none" ? state.source : state.silent ? "" : "run to see phonemes"]
        .filter(Boolean).join(" · ");
    const noteWidth = Math.min(ctx.measureText(note).width, inner * 0.45);
    ctx.fillStyle = COLORS.dim;
    ctx.textAlign = "right";
    ctx.fillText(note, w - pad, 9, noteWidth);
    ctx.fillStyle = state.problem ? COLORS.badEdge : COLORS.text;
    ctx.textAlign = "left";
    ctx.fillText(header, pad, 9, Math.max(20, inner - noteWidth - 8));

    // -- overview: the whole clip, 0..duration, every line on it with its phones
    const x = (t) => pad + (Math.min(Math.max(t, 0), state.duration) / state.duration) * inner;
    ctx.fillStyle = COLORS.track;
    ctx.fillRect(pad, top, inner, bottom - top);
    ctx.strokeStyle = COLORS.trackEdge;
    ctx.lineWidth = 1;
    ctx.strokeRect(pad + 0.5, top + 0.5, inner - 1, bottom - top - 1);
    ctx.font = font(9);
    drawTicks(ctx, x, 0, state.duration, bottom, inner, true);
    const faded = /preview|edited|updating/.test(state.source);
    const boxes = state.lines.map((line, i) => {
        const [shade, edge, tokenA, tokenB] = colorOf(line);
        const lo = Math.min(line.start, line.end);
        const hi = Math.max(line.start, line.end);
        const x0 = x(lo);
        const x1 = Math.max(x(hi), x0 + 2);
        ctx.fillStyle = state.problem ? COLORS.bad : shade;
        ctx.fillRect(x0, top, x1 - x0, bottom - top);
        const spans = line.tokens?.length && hi > lo ? tokenSpans(line.tokens, lo, hi, state.duration) : [];
        ctx.globalAlpha = faded ? 0.7 : 1;
        spans.forEach((span, j) => {
            const pause = span.token === BLANK || PAUSE_MARKS.has(span.token);
            ctx.fillStyle = pause ? COLORS.blank : j % 2 ? tokenB : tokenA;
            ctx.fillRect(x(span.t0), top + 3, Math.max(0.5, x(span.t1) - x(span.t0) - 0.5), bottom - top - 6);
        });
        ctx.globalAlpha = 1;
        ctx.save();
        if (state.linked.length) ctx.setLineDash([3, 3]);
        ctx.strokeStyle = state.problem ? COLORS.badEdge : edge;
        ctx.lineWidth = i === selected ? 3 : 2;
        for (const xe of [x0, x1]) {
            ctx.beginPath();
            ctx.moveTo(xe, top - 2);
            ctx.lineTo(xe, bottom + 2);
            ctx.stroke();
        }
        ctx.restore();
        if (line.voice && x1 - x0 > 24) {
            ctx.font = font(9);
            ctx.fillStyle = COLORS.text;
            ctx.textAlign = "left";
            ctx.fillText(line.voice, x0 + 3, top - 5, x1 - x0 - 4);
        }
        return { x0, x1, spans };
    });

    // -- zoom: the selected line stretched over the full width, one box per phone where the model puts it
    const ztop = h - 38;
    const zbottom = h - 16;
    const line = state.lines[selected] ?? state.lines[0];
    const box = boxes[state.lines.indexOf(line)];
    ctx.fillStyle = COLORS.track;
    ctx.fillRect(pad, ztop, inner, zbottom - ztop);
    ctx.font = font(11);
    if (line && box) {
        const lo = Math.min(line.start, line.end);
        const hi = Math.max(line.start, line.end);
        const zx = (t) => pad + ((t - lo) / Math.max(hi - lo, 1e-6)) * inner;
        const [, , tokenA, tokenB] = colorOf(line);
        ctx.fillStyle = state.problem ? COLORS.bad : "rgba(64, 156, 255, 0.10)";
        ctx.beginPath(); // the lens joining the line to its zoom
        ctx.moveTo(box.x0, bottom + 12);
        ctx.lineTo(box.x1, bottom + 12);
        ctx.lineTo(w - pad, ztop);
        ctx.lineTo(pad, ztop);
        ctx.closePath();
        ctx.fill();
        ctx.fillStyle = COLORS.track;
        ctx.fillRect(pad, ztop, inner, zbottom - ztop);
        if (box.spans.length) {
            ctx.globalAlpha = faded ? 0.75 : 1;
            box.spans.forEach((span, j) => {
                const sx0 = zx(span.t0);
                const sx1 = zx(span.t1);
                const pause = span.token === BLANK || PAUSE_MARKS.has(span.token);
                ctx.fillStyle = pause ? COLORS.blank : j % 2 ? tokenB : tokenA;
                ctx.fillRect(sx0 + 0.5, ztop + 2, Math.max(0.5, sx1 - sx0 - 1), zbottom - ztop - 4);
                const label = [span.token, span.token.replace(/[0-9]$/, "")]
                    .find((t) => span.token !== BLANK && ctx.measureText(t).width + 3 <= sx1 - sx0);
                if (label) {
                    ctx.fillStyle = COLORS.text;
                    ctx.textAlign = "center";
                    ctx.fillText(label, (sx0 + sx1) / 2, (ztop + zbottom) / 2);
                }
            });
            ctx.globalAlpha = 1;
        } else {
            const words = state.invalid ? `not valid ARPAbet: ${state.invalid}`
                : line.text.trim() ? `“${line.text.trim().replace(/\s+/g, " ")}”` : "transcript linked: known at run time";
            ctx.fillStyle = COLORS.dim;
            ctx.textAlign = "center";
            ctx.fillText(words, w / 2, (ztop + zbottom) / 2, inner - 8);
        }
        ctx.font = font(9);
        if (hi > lo) drawTicks(ctx, zx, lo, hi, zbottom, inner, true);
    } else {
        ctx.fillStyle = state.problem ? COLORS.badEdge : COLORS.dim;
        ctx.textAlign = "center";
        ctx.fillText(state.problem ? state.problem : "no speech", w / 2, (ztop + zbottom) / 2, inner - 8);
    }
    return { pad, overview: [top, bottom], zoom: [ztop, zbottom], width: w,
             lines: boxes.map((b) => [b.x0, b.x1]) }; // css px, for the pointer and for tests
}

function refresh(node, force = false) {
    const timeline = node?.__vssflowTimeline;
    if (!timeline) return;
    guard("draw", () => {
        const canvas = timeline.canvas;
        if (!canvas.isConnected && !force) return;
        const cssWidth = canvas.clientWidth || timeline.widget?.width || node.size?.[0] || 300;
        const cssHeight = canvas.clientHeight || HEIGHT;
        const zoom = Math.min(3, Math.max(1, app.canvas?.ds?.scale ?? 1));
        const ratio = Math.min(4, (window.devicePixelRatio || 1) * zoom);
        const pw = Math.max(1, Math.round(cssWidth * ratio));
        const ph = Math.max(1, Math.round(cssHeight * ratio));
        const state = readState(node, timeline);
        const key = stateKey(state, [pw, ph], timeline.selected);
        timeline.state = state;
        // dialogue rows carry their own times: the one-line speech window does nothing then
        for (const name of ["speech_start", "speech_end"]) setActive(widgetOf(node, name), !state.rows);
        if (!force && key === timeline.key) return;
        timeline.key = key;
        timeline.layout = draw(canvas, state, pw, ph, ratio, timeline.selected);
        // for tests and for curious users: what is drawn, in numbers
        canvas.dataset.state = JSON.stringify({
            duration: state.duration, durationFrom: state.durationFrom, problem: state.problem, source: state.source,
            linked: state.linked, rows: state.rows, layout: timeline.layout,
            start: state.lines[0]?.start ?? null, end: state.lines[0]?.end ?? null,
            tokens: state.lines.reduce((n, l) => n + (l.tokens?.length ?? 0), 0),
            lines: state.lines.map((l) => ({ start: l.start, end: l.end, voice: l.voice, row: l.row,
                                             tokens: l.tokens?.length ?? 0 })),
        });
        timeline.draws += 1;
    });
}

// -- dragging a line's start, end or whole self ----------------------------------------------------------------------

function hitTest(timeline, event) {
    const { layout, state, canvas } = timeline;
    if (!layout || !state?.lines.length) return null;
    const r = canvas.getBoundingClientRect();
    const scale = r.width / (layout.width || r.width || 1); // the canvas may be drawn scaled (canvas zoom)
    const px = (event.clientX - r.left) / scale;
    const py = (event.clientY - r.top) / scale;
    if (py > layout.zoom[0]) return null;
    let best = null;
    layout.lines.forEach(([x0, x1], index) => {
        for (const [part, xe] of [["start", x0], ["end", x1]]) {
            const d = Math.abs(px - xe);
            if (d <= EDGE_PX && (!best || d < best.d)) best = { index, part, d };
        }
    });
    if (best) return best;
    const inside = layout.lines.findIndex(([x0, x1]) => px > x0 && px < x1);
    return inside >= 0 ? { index: inside, part: "move", d: 0 } : null;
}

function timeAt(timeline, event) {
    const { layout, state, canvas } = timeline;
    const r = canvas.getBoundingClientRect();
    const scale = r.width / (layout.width || r.width || 1);
    const px = (event.clientX - r.left) / scale;
    return ((px - layout.pad) / (layout.width - 2 * layout.pad)) * state.duration;
}

function applyTimes(node, timeline, index, start, end) {
    const state = timeline.state;
    const line = state.lines[index];
    if (!line) return;
    if (line.row != null) {
        const widget = widgetOf(node, state.textName);
        setWidgetValue(node, widget, retimeRow(widget.value, line.row, start, end));
    } else {
        setWidgetValue(node, widgetOf(node, "speech_start"), start);
        setWidgetValue(node, widgetOf(node, "speech_end"), end);
    }
    refresh(node);
}

function attachPointer(node, timeline) {
    const { canvas } = timeline;
    let drag = null;
    const stop = (event) => { event.stopPropagation(); };
    canvas.addEventListener("pointerdown", (event) => guard("pointerdown", () => {
        refresh(node);
        const hit = hitTest(timeline, event);
        if (!hit || event.button !== 0) return;
        event.preventDefault();
        stop(event);
        timeline.selected = hit.index;
        if (!timeline.state.editable) { refresh(node, true); return; }
        const line = timeline.state.lines[hit.index];
        drag = { ...hit, pointer: event.pointerId, t0: timeAt(timeline, event), start: line.start, end: line.end,
                 prevEnd: timeline.state.lines[hit.index - 1]?.end ?? 0,
                 nextStart: timeline.state.lines[hit.index + 1]?.start ?? timeline.state.duration };
        canvas.setPointerCapture?.(event.pointerId);
        refresh(node, true);
    }));
    canvas.addEventListener("pointermove", (event) => guard("pointermove", () => {
        if (!drag) {
            const hit = hitTest(timeline, event);
            canvas.style.cursor = !hit ? "" : !timeline.state?.editable ? "not-allowed"
                : hit.part === "move" ? "grab" : "ew-resize";
            return;
        }
        stop(event);
        event.preventDefault();
        const snap = (t) => Math.round(t / SNAP_SEC) * SNAP_SEC;
        const minLen = 1 / facts.phoneme_fps;
        const t = timeAt(timeline, event);
        let { start, end } = drag;
        if (drag.part === "start") start = Math.min(Math.max(snap(t), drag.prevEnd), end - minLen);
        else if (drag.part === "end") end = Math.max(Math.min(snap(t), drag.nextStart), start + minLen);
        else {
            const shift = Math.min(Math.max(snap(t - drag.t0), drag.prevEnd - start), drag.nextStart - end);
            start += shift;
            end += shift;
        }
        applyTimes(node, timeline, drag.index, Math.round(start * 100) / 100, Math.round(end * 100) / 100);
    }));
    const finish = (event) => guard("pointerup", () => {
        if (!drag) return;
        stop(event);
        canvas.releasePointerCapture?.(drag.pointer);
        drag = null;
        app.graph?.change?.(); // one undo step and "modified" for the whole drag
    });
    canvas.addEventListener("pointerup", finish);
    canvas.addEventListener("pointercancel", finish);
}

function addTimeline(node) {
    if (node.__vssflowTimeline || typeof node.addDOMWidget !== "function") return;
    const canvas = document.createElement("canvas");
    canvas.className = "vssflow-timeline";
    canvas.style.cssText = `width:100%;height:100%;min-height:${HEIGHT - 10}px;display:block;border-radius:6px;touch-action:none;`;
    canvas.title = "VSSFlow speech timeline: where each line is spoken in the clip. Drag a line's edge to move its " +
        "start or end, or the line itself to move it.";
    const timeline = { canvas, key: "", last: null, draws: 0, widget: null, observer: null, selected: 0 };
    node.__vssflowTimeline = timeline;

    const widget = node.addDOMWidget(TIMELINE_WIDGET, "vssflow.timeline", canvas, {
        serialize: false, // not an input: stays out of widgets_values and of the prompt
        hideOnZoom: false,
        getValue: () => "",
        setValue: () => {},
        getMinHeight: () => HEIGHT,
        getMaxHeight: () => HEIGHT * 2,
        onDraw: () => refresh(node), // every canvas frame: cheap, redraws only when something changed
    });
    widget.serialize = false;
    timeline.widget = widget;
    attachPointer(node, timeline);
    timelines.add(node);

    for (const name of [...TEXT_WIDGETS, "speech_start", "speech_end", "mode"]) {
        chainCallback(widgetOf(node, name), "callback", () => refresh(node));
    }
    chainCallback(node, "onConnectionsChange", () => refresh(node));
    if (typeof ResizeObserver === "function") {
        timeline.observer = new ResizeObserver(() => refresh(node));
        timeline.observer.observe(canvas);
    }
    chainCallback(node, "onRemoved", () => { timeline.observer?.disconnect(); timelines.delete(node); });
    guard("size", () => node.expandToFitContent?.());
    refresh(node, true);
}

function onPhonemes(node, output) {
    const timeline = node?.__vssflowTimeline;
    const item = output?.vssflow_phonemes?.[0] ?? output?.vssflow_dialogue?.[0];
    if (!timeline || !item || typeof item !== "object") return;
    const state = readState(node, timeline);
    const lines = (Array.isArray(item.lines) ? item.lines : [item]).map((l) => ({
        tokens: Array.isArray(l.tokens) ? l.tokens.map(String) : [],
        start: finite(l.start) ?? 0, end: finite(l.end) ?? 0,
    }));
    timeline.last = { lines, duration: finite(item.duration) ?? 0, text: state.text, mode: state.mode };
    refresh(node, true);
}

// -- widgets that do nothing in the current setting ------------------------------------------------------------------

function setActive(widget, active) {
    if (!widget) return;
    const disabled = !active;
    if (!!widget.disabled !== disabled) widget.disabled = disabled;
}

function updateSampler(node) {
    const solver = inputValue(node, "solver", "string");
    const known = solver.known && typeof solver.value === "string";
    const adaptive = known && facts.adaptive_solvers.includes(solver.value);
    for (const name of facts.fixed_step_inputs) setActive(widgetOf(node, name), !known || !adaptive);
    for (const name of facts.adaptive_inputs) setActive(widgetOf(node, name), !known || adaptive);
}

function updateVideoLoader(node, userAction = false) {
    const media = connected(node, "video") || connected(node, "images");
    const file = widgetOf(node, "file");
    // a connected VIDEO or images replaces the file; a workflow that loads with both keeps the file editable
    if (media && file && file.value !== NO_FILE && userAction) setWidgetValue(node, file, NO_FILE);
    setActive(file, !media || file?.value !== NO_FILE);
    setActive(widgetOf(node, "frame_rate"), connected(node, "images"));
}

const UPDATERS = { [SAMPLER]: updateSampler, [VIDEO_LOADER]: updateVideoLoader };

function watchWidgets(node, update) {
    for (const widget of node.widgets ?? []) chainCallback(widget, "callback", () => update(node));
    chainCallback(node, "onConnectionsChange", () => update(node, true));
    update(node);
}

// -- audio players on our nodes --------------------------------------------------------------------------------------

function viewURL(item) {
    const params = new URLSearchParams({
        filename: String(item.filename ?? ""),
        type: String(item.type ?? "output"),
        subfolder: String(item.subfolder ?? ""),
    });
    const rand = typeof app.getRandParam === "function" ? app.getRandParam() : "";
    return api.apiURL(`/view?${params}${rand}`);
}

function showAudio(node, output) {
    const item = output?.audio?.[0];
    if (!item?.filename || !comfyClassOf(node)?.startsWith(OUR_PREFIX)) return;
    let widget = widgetOf(node, AUDIO_WIDGET);
    if (widget && !widget.__vssflow) return; // the stock player: the stock code fills it
    if (!widget) {
        if (typeof node.addDOMWidget !== "function") return;
        const audio = document.createElement("audio");
        audio.controls = true;
        audio.preload = "metadata";
        audio.classList.add("comfy-audio", "vssflow-audio");
        audio.setAttribute("name", "media");
        widget = node.addDOMWidget(AUDIO_WIDGET, "audioUI", audio, {
            serialize: false, hideOnZoom: false, getMinHeight: () => 54, getMaxHeight: () => 64,
        });
        widget.serialize = false;
        widget.__vssflow = true;
        guard("size", () => node.expandToFitContent?.());
    }
    const url = viewURL(item);
    if (widget.element.src !== url) widget.element.src = url;
    node.setDirtyCanvas?.(true, true);
}

// -- registration ----------------------------------------------------------------------------------------------------

function hasSpeechText(node) {
    return TEXT_WIDGETS.some((name) => widgetOf(node, name));
}

setInterval(() => guard("poll", () => {
    for (const node of timelines) refresh(node);
    for (const node of app.graph?.nodes ?? []) UPDATERS[comfyClassOf(node)]?.(node);
}), POLL_MS);

app.registerExtension({
    name: EXTENSION,

    async setup() {
        try {
            const response = await api.fetchApi("/vssflow/facts");
            if (response.ok) Object.assign(facts, await response.json());
        } catch (error) {
            console.warn(`[${EXTENSION}] GET /vssflow/facts failed; using built-in facts`, error);
        }
        redrawAll();
    },

    async beforeRegisterNodeDef(nodeType, nodeData) {
        guard("beforeRegisterNodeDef", () => {
            const name = nodeData?.name ?? "";
            if (!name.startsWith(OUR_PREFIX)) return;
            // the stock audio player, as Comfy.AudioWidget declares it for SaveAudio (a definition, not a prototype)
            const required = nodeData.input?.required;
            if (nodeData.output_node && required && !(AUDIO_WIDGET in required)) required[AUDIO_WIDGET] = ["AUDIO_UI", {}];
        });
    },

    nodeCreated(node) {
        guard("nodeCreated", () => {
            const type = comfyClassOf(node) ?? "";
            if (!type.startsWith(OUR_PREFIX)) return;
            chainCallback(node, "onExecuted", function (output) {
                onPhonemes(this, output);
                showAudio(this, output);
            });
            if (hasSpeechText(node)) addTimeline(node);
            if (UPDATERS[type]) watchWidgets(node, UPDATERS[type]);
        });
    },

    loadedGraphNode(node) {
        // a saved workflow restores the node's size and values after nodeCreated
        guard("loadedGraphNode", () => {
            UPDATERS[comfyClassOf(node)]?.(node);
            if (!node?.__vssflowTimeline) return;
            node.expandToFitContent?.();
            refresh(node, true);
        });
    },
});
