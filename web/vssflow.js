// ComfyUI-VSSFlow front-end extension ("vssflow.ui").
//
// 1. A phoneme timeline on the VSSFlowPhonemeTokenizer node: the clip's time axis (0..duration, 10 s by default),
//    the speech window [speech_start, speech_end] shaded (speech_end 0 = end of clip), redrawn live while the user
//    edits the widgets, before anything runs. After a run, the node's `vssflow_phonemes` ui message
//    ({tokens, start, end, duration}) places the actual tokens on the axis with the model's own rule: ids are
//    stretched over int((end - start) * 25) frames (repeat each ceil(frames / n) times, then nearest-neighbour resize,
//    as vssflow_core/text/phonemes.py::stretch_ids), so the boxes are where the model hears each phone.
//    A transcript written in ARPAbet is previewed before the first run (same rule; no G2P needed for it).
// 2. Playable audio on our outputs. The stock frontend (Comfy.AudioWidget) renders `ui.audio` only on a fixed list of
//    core nodes (LoadAudio, SaveAudio, PreviewAudio, SaveAudioMP3/Opus/Advanced): it adds an `audioUI: AUDIO_UI`
//    input to their definitions, and its AUDIO_UI widget is an <audio controls> player, hidden until a run fills it.
//    A custom node's `ui.audio` shows nothing. So our output nodes (Audio Mux) get that same stock widget, declared
//    the same way: no player of our own, the stock code fills it after a run and restores it from the queue history.
//    A non-output node of ours that ever sends `ui.audio` gets a player of the same name and class on its first run.
//
// Robust by construction: nothing happens when our nodes are not installed; every hook is wrapped so that an error
// here is logged once and never breaks the canvas; linked inputs are followed to a constant upstream value where
// there is one, otherwise the widget's last value is shown as "linked".
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const EXTENSION = "vssflow.ui";
const TOKENIZER = "VSSFlowPhonemeTokenizer";
const OUR_PREFIX = "VSSFlow";
const TIMELINE_WIDGET = "vssflow_timeline";
const AUDIO_WIDGET = "audioUI"; // the stock name: Comfy.AudioWidget.onNodeOutputsUpdated looks it up by it
const DEFAULT_DURATION = 10.0; // s: the window VSSFlow generates (SequenceConfig.duration_sec)
const PHONEME_FPS = 25; // phoneme ids per second (SequenceConfig.phoneme_fps)
const BLANK = "<blank>";
const PAUSE_MARKS = new Set([",", ".", "!", "?", ";", ":", "-", "'", "..."]);
const ARPABET_LIKE = /^(?:[A-Za-z]{1,2}[0-9]?|<blank>|[,.!?;:'\-]|\.\.\.)$/i;
const STRESSED = /^[A-Za-z]{1,2}[0-9]$/;
// the official 70-entry token table (vssflow_core.text.phonemes.TOKEN_IDS): 15 vowels x 3 stresses, 24 consonants
const VOWELS = ["AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"];
const CONSONANTS = ["B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH", "T",
    "TH", "V", "W", "Y", "Z", "ZH"];
const PHONES = new Set([...VOWELS.flatMap((v) => [`${v}0`, `${v}1`, `${v}2`]), ...CONSONANTS]);
const HEIGHT = 112; // px (canvas units) of the timeline widget

const COLORS = {
    bg: "#1b1d21",
    track: "#2c3038",
    trackEdge: "#4a505c",
    window: "rgba(64, 156, 255, 0.30)",
    windowEdge: "#4aa3ff",
    bad: "rgba(230, 70, 70, 0.35)",
    badEdge: "#ff6b6b",
    tokenA: "#3d7fd6",
    tokenB: "#2f68b3",
    blank: "rgba(255, 255, 255, 0.10)",
    text: "#d8dce3",
    dim: "#8c93a0",
    tick: "#6a7180",
};

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

function linkOf(node, name) {
    const slot = node?.inputs?.find((input) => input?.name === name);
    if (!slot || slot.link == null) return null;
    const links = node.graph?.links;
    const link = typeof links?.get === "function" ? links.get(slot.link) : links?.[slot.link];
    return link ?? { origin_id: null };
}

/**
 * The value an input will have at run time, where the frontend can know it: its widget's value, or, when the input
 * is linked, the value of a constant one hop upstream (a "value" widget, as on the core Float / Int / String nodes,
 * or the widget of a legacy Primitive node). Anything computed upstream (a video's duration) is unknown until the
 * run: then `known` is false and `value` is the widget's last value.
 */
function inputValue(node, name, kind = "number") {
    const own = widgetOf(node, name);
    const link = linkOf(node, name);
    if (!link) return { value: own ? own.value : undefined, linked: false, known: !!own };
    const origin = link.origin_id != null ? node.graph?.getNodeById?.(link.origin_id) : null;
    const w = origin?.widgets?.find((x) => x?.name === "value") ??
        (origin?.type === "PrimitiveNode" ? origin.widgets?.[0] : undefined);
    const originLinked = !!origin?.inputs?.some((input) => input?.link != null && input?.name === w?.name);
    const usable = w && !originLinked && (kind === "number" ? finite(w.value) !== null : typeof w.value === "string");
    if (usable) return { value: w.value, linked: true, known: true };
    return { value: own ? own.value : undefined, linked: true, known: false };
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
export function tokenSpans(tokens, start, end, duration, fps = PHONEME_FPS) {
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

function niceStep(duration, maxTicks) {
    const raw = duration / Math.max(1, maxTicks);
    for (const step of [0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 15, 30, 60, 120, 300, 600]) {
        if (step >= raw) return step;
    }
    return Math.ceil(raw / 600) * 600;
}

function fmt(seconds, digits = 2) {
    return Number.isFinite(seconds) ? seconds.toFixed(digits).replace(/\.?0+$/, "") || "0" : "?";
}

// -- the timeline ----------------------------------------------------------------------------------------------------

/** Everything the drawing depends on, read from the node (cheap; called on every canvas frame). */
function readState(node, timeline) {
    const last = timeline.last;
    const startIn = inputValue(node, "speech_start");
    const endIn = inputValue(node, "speech_end");
    const durIn = inputValue(node, "duration");
    const textIn = inputValue(node, "transcript", "string");
    const modeIn = inputValue(node, "mode", "string");

    let duration = durIn.known ? finite(durIn.value) : null;
    let durationFrom = "input";
    if (!(duration > 0)) {
        duration = last?.duration > 0 ? last.duration : DEFAULT_DURATION;
        durationFrom = last?.duration > 0 ? "last run" : "default";
    }
    const start = finite(startIn.value) ?? 0;
    const endRaw = finite(endIn.value) ?? 0;
    const end = endRaw > 0 ? endRaw : duration; // 0 = end of clip
    const transcript = typeof textIn.value === "string" ? textIn.value : "";
    const mode = typeof modeIn.value === "string" ? modeIn.value : "auto";

    let problem = "";
    if (end <= start) problem = `speech ends (${fmt(end)} s) before it starts (${fmt(start)} s)`;
    else if (start < 0 || end > duration + 1e-9) problem = `speech ${fmt(start)}–${fmt(end)} s lies outside the clip`;
    else if (Math.trunc((end - start) * PHONEME_FPS) < 1) problem = "speech window shorter than one frame (0.04 s)";

    let tokens = null;
    let source = "none";
    let invalid = "";
    const sameText = last && ((textIn.linked && !textIn.known) || (last.transcript === transcript && last.mode === mode));
    if (last?.tokens?.length && sameText) {
        tokens = last.tokens;
        const moved = Math.abs(last.start - start) > 1e-9 || Math.abs(last.end - end) > 1e-9;
        source = moved ? "last run, window edited" : "last run";
    } else if (textIn.known && (mode === "arpabet" || (mode === "auto" && looksLikeArpabet(transcript)))) {
        const parsed = arpabetTokens(transcript);
        tokens = parsed.tokens ?? null;
        source = tokens ? "ARPAbet preview" : "invalid ARPAbet";
        if (!tokens) invalid = parsed.bad;
    } else if (last?.tokens?.length) {
        source = "transcript edited: run to update";
    }
    const silent = textIn.known && !transcript.trim() && !tokens; // sound effects only: the window is unused
    if (silent) problem = "";
    const bound = { speech_start: startIn, speech_end: endIn, duration: durIn };
    const linked = Object.keys(bound).filter((name) => bound[name].linked && !bound[name].known);
    return { duration, durationFrom, start, end, transcript, mode, problem, tokens, source, linked, silent, invalid };
}

function stateKey(state, pixels) {
    return JSON.stringify([state.duration, state.start, state.end, state.transcript, state.mode, state.problem,
        state.source, state.tokens?.length ?? 0, state.tokens?.join(" ") ?? "", state.linked, state.silent, state.invalid, pixels]);
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

function draw(canvas, state, pixelWidth, pixelHeight, ratio) {
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
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

    const pad = 10;
    const inner = w - 2 * pad;
    const font = (px) => `${px}px Inter, Arial, sans-serif`;
    ctx.textBaseline = "middle";

    // -- header: the window in words (left), where the tokens come from (right)
    ctx.font = font(11);
    const n = state.tokens ? state.tokens.filter((t) => t !== BLANK && !PAUSE_MARKS.has(t)).length : 0;
    const header = state.problem
        ? `⚠ ${state.problem}`
        : state.silent ? "no transcript: sound effects only, no speech"
        : `speech ${fmt(state.start)}–${fmt(state.end)} s of ${fmt(state.duration, 1)} s` +
          (n ? ` · ${n} phones` : "") + (state.linked.length ? ` · linked: ${state.linked.join(", ")}` : "");
    const note = state.source !== "none" ? state.source
        : state.silent ? (state.durationFrom === "default" ? "10 s assumed" : "")
        : (state.durationFrom === "default" ? "10 s assumed · " : "") + "run to see phonemes";
    const noteWidth = Math.min(ctx.measureText(note).width, inner * 0.45);
    ctx.fillStyle = COLORS.dim;
    ctx.textAlign = "right";
    ctx.fillText(note, w - pad, 9, noteWidth);
    ctx.fillStyle = state.problem ? COLORS.badEdge : COLORS.text;
    ctx.textAlign = "left";
    ctx.fillText(header, pad, 9, Math.max(20, inner - noteWidth - 8));

    // -- overview: the whole clip, 0..duration, with the speech window shaded
    const top = 20;
    const bottom = 38;
    const x = (t) => pad + (Math.min(Math.max(t, 0), state.duration) / state.duration) * inner;
    ctx.fillStyle = COLORS.track;
    ctx.fillRect(pad, top, inner, bottom - top);
    ctx.strokeStyle = COLORS.trackEdge;
    ctx.lineWidth = 1;
    ctx.strokeRect(pad + 0.5, top + 0.5, inner - 1, bottom - top - 1);
    ctx.font = font(9);
    drawTicks(ctx, x, 0, state.duration, bottom, inner, true);

    const lo = Math.min(state.start, state.end);
    const hi = Math.max(state.start, state.end);
    const x0 = x(lo);
    const x1 = Math.max(x(hi), x0 + 2);
    ctx.fillStyle = state.problem ? COLORS.bad : state.silent ? COLORS.blank : COLORS.window;
    ctx.fillRect(x0, top, x1 - x0, bottom - top);
    const spans = !state.problem && state.tokens?.length
        ? tokenSpans(state.tokens, state.start, state.end, state.duration) : [];
    const faded = state.source.includes("preview") || state.source.includes("edited");
    ctx.globalAlpha = faded ? 0.7 : 1;
    spans.forEach((span, i) => {
        const pause = span.token === BLANK || PAUSE_MARKS.has(span.token);
        ctx.fillStyle = pause ? COLORS.blank : i % 2 ? COLORS.tokenB : COLORS.tokenA;
        ctx.fillRect(x(span.t0), top + 3, Math.max(0.5, x(span.t1) - x(span.t0) - 0.5), bottom - top - 6);
    });
    ctx.globalAlpha = 1;
    ctx.save();
    if (state.linked.length) ctx.setLineDash([3, 3]);
    ctx.strokeStyle = state.problem ? COLORS.badEdge : state.silent ? COLORS.tick : COLORS.windowEdge;
    ctx.lineWidth = 2;
    for (const xe of [x0, x1]) {
        ctx.beginPath();
        ctx.moveTo(xe, top - 2);
        ctx.lineTo(xe, bottom + 2);
        ctx.stroke();
    }
    ctx.restore();

    // -- zoom: the speech window stretched over the full width, one box per phone where the model puts it
    const ztop = h - 38;
    const zbottom = h - 16;
    const zx = (t) => pad + ((t - lo) / Math.max(hi - lo, 1e-6)) * inner;
    ctx.fillStyle = state.problem ? COLORS.bad : "rgba(64, 156, 255, 0.10)";
    ctx.beginPath(); // the lens joining the window to its zoom
    ctx.moveTo(x0, bottom + 12);
    ctx.lineTo(x1, bottom + 12);
    ctx.lineTo(w - pad, ztop);
    ctx.lineTo(pad, ztop);
    ctx.closePath();
    ctx.fill();
    ctx.fillStyle = COLORS.track;
    ctx.fillRect(pad, ztop, inner, zbottom - ztop);
    ctx.font = font(11);
    if (spans.length) {
        ctx.globalAlpha = faded ? 0.75 : 1;
        spans.forEach((span, i) => {
            const sx0 = zx(span.t0);
            const sx1 = zx(span.t1);
            const pause = span.token === BLANK || PAUSE_MARKS.has(span.token);
            ctx.fillStyle = pause ? COLORS.blank : i % 2 ? COLORS.tokenB : COLORS.tokenA;
            ctx.fillRect(sx0 + 0.5, ztop + 2, Math.max(0.5, sx1 - sx0 - 1), zbottom - ztop - 4);
            const label = [span.token, span.token.replace(/[0-9]$/, "")]
                .find((text) => span.token !== BLANK && ctx.measureText(text).width + 3 <= sx1 - sx0);
            if (label) {
                ctx.fillStyle = COLORS.text;
                ctx.textAlign = "center";
                ctx.fillText(label, (sx0 + sx1) / 2, (ztop + zbottom) / 2);
            }
        });
        ctx.globalAlpha = 1;
    } else {
        const text = state.problem ? state.problem
            : state.invalid ? `not valid ARPAbet: ${state.invalid}`
            : state.silent ? "no speech"
            : state.transcript.trim() ? `“${state.transcript.trim().replace(/\s+/g, " ")}”` : "transcript linked: known at run time";
        ctx.fillStyle = state.problem ? COLORS.badEdge : COLORS.dim;
        ctx.textAlign = "center";
        ctx.fillText(text, w / 2, (ztop + zbottom) / 2, inner - 8);
    }
    ctx.font = font(9);
    if (hi > lo) drawTicks(ctx, zx, lo, hi, zbottom, inner, true);
    return { pad, overview: [top, bottom], zoom: [ztop, zbottom] }; // css px, for tests
}

function refresh(node, force = false) {
    const timeline = node?.__vssflowTimeline;
    if (!timeline) return;
    guard("draw", () => {
        const canvas = timeline.canvas;
        const cssWidth = canvas.clientWidth || timeline.widget?.width || node.size?.[0] || 300;
        const cssHeight = canvas.clientHeight || HEIGHT;
        const zoom = Math.min(3, Math.max(1, app.canvas?.ds?.scale ?? 1));
        const ratio = Math.min(4, (window.devicePixelRatio || 1) * zoom);
        const pw = Math.max(1, Math.round(cssWidth * ratio));
        const ph = Math.max(1, Math.round(cssHeight * ratio));
        const state = readState(node, timeline);
        const key = stateKey(state, [pw, ph]);
        if (!force && key === timeline.key) return;
        timeline.key = key;
        const layout = draw(canvas, state, pw, ph, ratio);
        // for tests and for curious users: what is drawn, in numbers
        canvas.dataset.state = JSON.stringify({
            duration: state.duration, start: state.start, end: state.end, problem: state.problem,
            source: state.source, tokens: state.tokens?.length ?? 0, linked: state.linked, layout,
        });
        timeline.draws += 1;
    });
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

function addTimeline(node) {
    if (node.__vssflowTimeline || typeof node.addDOMWidget !== "function") return;
    const canvas = document.createElement("canvas");
    canvas.className = "vssflow-timeline";
    canvas.style.cssText = `width:100%;height:100%;min-height:${HEIGHT - 10}px;display:block;border-radius:6px;`;
    canvas.title = "VSSFlow phoneme timeline: where the speech falls in the clip";
    const timeline = { canvas, key: "", last: null, draws: 0, widget: null, observer: null };
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

    // live updates from the widgets themselves (also in the Vue node renderer, where onDraw does not run)
    for (const name of ["transcript", "speech_start", "speech_end", "mode", "duration"]) {
        chainCallback(widgetOf(node, name), "callback", () => refresh(node));
    }
    chainCallback(node, "onConnectionsChange", () => refresh(node));
    chainCallback(node, "onWidgetChanged", () => refresh(node));
    if (typeof ResizeObserver === "function") {
        timeline.observer = new ResizeObserver(() => refresh(node));
        timeline.observer.observe(canvas);
    }
    chainCallback(node, "onRemoved", () => timeline.observer?.disconnect());
    guard("size", () => node.expandToFitContent?.());
    refresh(node, true);
}

function onPhonemes(node, output) {
    const timeline = node?.__vssflowTimeline;
    const item = output?.vssflow_phonemes?.[0];
    if (!timeline || !item || typeof item !== "object") return;
    const tokens = Array.isArray(item.tokens) ? item.tokens.map(String) : [];
    const textIn = inputValue(node, "transcript", "string");
    const modeIn = inputValue(node, "mode", "string");
    timeline.last = {
        tokens,
        start: finite(item.start) ?? 0,
        end: finite(item.end) ?? 0,
        duration: finite(item.duration) ?? 0,
        transcript: typeof textIn.value === "string" ? textIn.value : "",
        mode: typeof modeIn.value === "string" ? modeIn.value : "auto",
    };
    refresh(node, true);
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

app.registerExtension({
    name: EXTENSION,

    async beforeRegisterNodeDef(nodeType, nodeData) {
        guard("beforeRegisterNodeDef", () => {
            const name = nodeData?.name ?? "";
            if (!name.startsWith(OUR_PREFIX) || !nodeType?.prototype) return;
            // the stock audio player, as Comfy.AudioWidget declares it for SaveAudio (see the top of this file)
            const required = nodeData.input?.required;
            if (nodeData.output_node && required && !(AUDIO_WIDGET in required)) required[AUDIO_WIDGET] = ["AUDIO_UI", {}];
            chainCallback(nodeType.prototype, "onExecuted", function (output) {
                if (name === TOKENIZER) onPhonemes(this, output);
                showAudio(this, output);
            });
        });
    },

    nodeCreated(node) {
        guard("nodeCreated", () => {
            if (comfyClassOf(node) === TOKENIZER) addTimeline(node);
        });
    },

    loadedGraphNode(node) {
        // a saved workflow restores the node's size after nodeCreated: make room for the timeline again
        guard("loadedGraphNode", () => {
            if (!node?.__vssflowTimeline) return;
            node.expandToFitContent?.();
            refresh(node, true);
        });
    },
});
