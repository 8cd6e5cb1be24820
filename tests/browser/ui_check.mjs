// Drives Debian's headless Chromium (playwright-core, never a downloaded browser) through the real ComfyUI frontend
// served by a running server, and writes what it saw as JSON. tests/browser/test_ui.py runs it once and asserts on
// the report; every step records its own result or error, so one failing step does not hide the others.
//
//   node tests/browser/ui_check.mjs config.json
//
// config.json: {url, chromium, outDir, report, nodeIds: [...], tokenizer, audioNode, workflows: [{name, path}],
//               audioFile: {filename, subfolder, type, seconds} | null, spanCases: [[tokens, start, end, duration]]}
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
mkdirSync(config.outDir, { recursive: true });
const report = { steps: {}, consoleErrors: [], pageErrors: [], screenshots: {}, timings: {} };
const t0 = Date.now();
const save = () => writeFileSync(config.report, JSON.stringify(report, null, 2));
const log = (...args) => console.error(`[ui_check ${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...args);

async function step(name, fn) {
    const started = Date.now();
    try {
        report.steps[name] = { ok: true, ...(await fn()) };
    } catch (error) {
        report.steps[name] = { ok: false, error: String(error?.stack ?? error) };
        log(`step ${name} failed:`, String(error?.message ?? error).split("\n")[0]);
    }
    report.timings[name] = (Date.now() - started) / 1000;
    save();
    return report.steps[name];
}

const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--mute-audio", "--autoplay-policy=no-user-gesture-required"];

const browser = await chromium.launch({ executablePath: config.chromium, headless: true, args: FLAGS, timeout: 60000 });
report.browserVersion = browser.version();
const context = await browser.newContext({ viewport: { width: 1600, height: 1000 }, deviceScaleFactor: 1 });
const page = await context.newPage();
page.setDefaultTimeout(30000);
page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") {
        const text = msg.text();
        const location = msg.location()?.url ?? "";
        if (msg.type() === "error") report.consoleErrors.push({ text, location });
        else if (/vssflow/i.test(text + location)) report.consoleErrors.push({ text, location, warning: true });
    }
});
page.on("pageerror", (error) => report.pageErrors.push({ message: error.message, stack: error.stack ?? "" }));

async function shot(name, options = {}) {
    const path = join(config.outDir, `${name}.png`);
    await page.screenshot({ path, ...options });
    report.screenshots[name] = path;
    return path;
}

async function closeDialogs() {
    for (let i = 0; i < 3; i++) {
        const open = await page.locator(".p-dialog-mask, [role=dialog]").count();
        if (!open) return;
        await page.keyboard.press("Escape");
        await page.waitForTimeout(250);
    }
}

// A new blank workflow tab, waited for (the command returns before the tab is active).
async function newBlankTab() {
    const path = () => window.comfyAPI.app.app.extensionManager.workflow?.activeWorkflow?.path ?? null;
    const before = await page.evaluate(`(${path})()`);
    await page.evaluate(() => window.comfyAPI.app.app.extensionManager.command.execute("Comfy.NewBlankWorkflow"));
    await page.waitForFunction(`(${path})() !== ${JSON.stringify(before)}`, null, { timeout: 10000 });
    await page.waitForTimeout(200);
}

// Settles the canvas: a couple of animation frames after marking it dirty.
async function settle() {
    await page.evaluate(() => new Promise((resolve) => {
        const app = window.comfyAPI.app.app;
        app.canvas?.setDirty(true, true);
        app.graph?.setDirtyCanvas?.(true, true);
        requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(resolve, 50)));
    }));
}

try {
    // -- 1. page loads, our extension is registered ------------------------------------------------------------------
    await step("boot", async () => {
        const started = Date.now();
        await page.goto(config.url, { waitUntil: "domcontentloaded" });
        await page.waitForFunction(() => {
            const app = window.comfyAPI?.app?.app;
            return !!(app?.graph && app.canvas && app.vueAppReady &&
                Object.keys(window.LiteGraph?.registered_node_types ?? {}).length > 50);
        }, null, { timeout: 90000 });
        await page.waitForTimeout(500);
        await closeDialogs();
        const info = await page.evaluate(() => {
            const app = window.comfyAPI.app.app;
            return {
                extensions: app.extensions.map((e) => e.name),
                nodeTypes: Object.keys(window.LiteGraph.registered_node_types).length,
                frontendVersion: window.__COMFYUI_FRONTEND_VERSION__ ?? null,
                title: document.title,
            };
        });
        return { ...info, seconds: (Date.now() - started) / 1000 };
    });
    await shot("01_loaded");
    // every deprecation warning the frontend raises from now on, with the stack that raised it (1.58 warns on
    // input.link reads and other legacy use; repeats are reported too, so one raised by the core first still counts)
    await page.evaluate(() => {
        const LG = window.LiteGraph;
        window.__vssflowDeprecations = [];
        if (!Array.isArray(LG?.onDeprecationWarning)) return;
        LG.alwaysRepeatWarnings = true;
        LG.onDeprecationWarning.push((message) => {
            if (window.__vssflowDeprecations.length < 500) {
                window.__vssflowDeprecations.push({ message: String(message), stack: String(new Error().stack) });
            }
        });
    });

    // -- 2. our node types are registered ----------------------------------------------------------------------------
    await step("registered", async () => page.evaluate((ids) => {
        const types = window.LiteGraph.registered_node_types;
        const found = {};
        for (const id of ids) if (types[id]) found[id] = types[id].title ?? types[id].nodeData?.display_name ?? id;
        return { found, missing: ids.filter((id) => !types[id]) };
    }, config.nodeIds));

    // -- 3. the node search box lists them when typing "VSSFlow" -----------------------------------------------------
    await step("search", async () => {
        await closeDialogs();
        const box = await page.locator("#graph-canvas").boundingBox();
        // an empty spot of the canvas: the blank default graph is empty; double-click opens the search box
        await page.evaluate(() => window.comfyAPI.app.app.graph.clear());
        await settle();
        const input = page.locator("[role=search] input, .comfy-vue-node-search-box input").first();
        let opened = null;
        for (let attempt = 1; attempt <= 3 && !opened; attempt++) {
            // one double-click on empty canvas; no other click nearby in time or place, or the browser counts a
            // triple click whose last click lands on the box's first suggestion and adds that node
            await page.waitForTimeout(600);
            await page.mouse.dblclick(box.x + box.width * 0.5, box.y + box.height * 0.6);
            opened = await input.waitFor({ state: "visible", timeout: 3000 }).then(() => `double-click #${attempt}`, () => null);
        }
        if (!opened) { // the same search box, opened by its command (what its keyboard shortcut runs)
            await page.evaluate(() => window.comfyAPI.app.app.extensionManager.command.execute("Workspace.SearchBox.Toggle"));
            await input.waitFor({ state: "visible", timeout: 5000 });
            opened = "command Workspace.SearchBox.Toggle";
        }
        await input.fill("VSSFlow");
        await page.waitForTimeout(800); // the search is debounced
        const items = page.locator("[data-testid=result-item], .comfy-vue-node-search-box li[role=option]");
        await items.first().waitFor({ state: "visible", timeout: 5000 }).catch(() => {});
        const results = (await items.allInnerTexts()).map((s) => s.replace(/\s+/g, " ").trim());
        await shot("02_search");
        await page.keyboard.press("Escape");
        await page.waitForTimeout(200);
        await closeDialogs();
        return { results, opened };
    });

    // -- 4. each shared workflow opens without missing node types ----------------------------------------------------
    const workflows = {};
    for (const wf of config.workflows) {
        const started = Date.now();
        try {
            const data = JSON.parse(readFileSync(wf.path, "utf8"));
            const result = await page.evaluate(async ({ data, name }) => {
                const app = window.comfyAPI.app.app;
                const types = window.LiteGraph.registered_node_types;
                const active = (nodes) => (Array.isArray(nodes) ? nodes : []).filter((n) => n.mode !== 2 && n.mode !== 4);
                const all = [...active(data.nodes), ...(data.definitions?.subgraphs ?? []).flatMap((s) => active(s.nodes))];
                const subgraphIds = new Set((data.definitions?.subgraphs ?? []).map((s) => s.id));
                const missing = [...new Set(all.map((n) => n.type).filter((t) => !types[t] && !subgraphIds.has(t)))];
                const errors = [];
                const onError = (e) => errors.push(String(e?.message ?? e));
                window.addEventListener("error", onError);
                try {
                    await app.loadGraphData(data, true, true, name);
                } finally {
                    window.removeEventListener("error", onError);
                }
                const nodes = app.graph.nodes ?? app.graph._nodes;
                return {
                    missing,
                    expectedNodes: Array.isArray(data.nodes) ? data.nodes.length : null,
                    loadedNodes: nodes.length,
                    unregisteredLoaded: nodes.filter((n) => !types[n.type]).map((n) => `${n.id}:${n.type}`),
                    timelines: nodes.filter((n) => n.__vssflowTimeline).length,
                    errors,
                };
            }, { data, name: wf.name });
            await settle();
            await page.waitForTimeout(300);
            result.dialogs = await page.locator(".p-dialog:visible, [role=dialog]:visible").allInnerTexts();
            result.screenshot = await shot(`03_workflow_${wf.name.replace(/[^A-Za-z0-9_.-]+/g, "_")}`);
            await closeDialogs();
            workflows[wf.name] = { ok: true, ...result };
        } catch (error) {
            workflows[wf.name] = { ok: false, error: String(error?.stack ?? error) };
        }
        report.timings[`workflow ${wf.name}`] = (Date.now() - started) / 1000;
    }
    report.steps.workflows = { ok: true, workflows };
    save();

    // -- 5. the token layout drawn equals vssflow_core's stretch rule ------------------------------------------------
    await step("spans", async () => page.evaluate(async (cases) => {
        const url = "/extensions/ComfyUI-VSSFlow/vssflow.js";
        const module = await import(url); // the module instance the frontend already loaded
        return { url, spans: cases.map(([tokens, start, end, duration]) => module.tokenSpans(tokens, start, end, duration)) };
    }, config.spanCases ?? []));

    // -- 6. the phoneme timeline renders and follows the speech window -----------------------------------------------
    const timelineProbe = async () => page.evaluate(async (id) => {
        const app = window.comfyAPI.app.app;
        const node = app.graph.getNodeById(id);
        const t = node?.__vssflowTimeline;
        if (!t) return { present: false };
        const c = t.canvas;
        const rect = c.getBoundingClientRect();
        const ctx = c.getContext("2d");
        let painted = 0;
        let sum = 0;
        if (c.width && c.height) {
            const data = ctx.getImageData(0, 0, c.width, c.height).data;
            for (let i = 0; i < data.length; i += 4) {
                if (data[i + 3] > 0) painted++;
                sum = (sum * 31 + data[i] * 7 + data[i + 1] * 3 + data[i + 2]) % 2147483647;
            }
        }
        // colour in the middle of the track at a given time (seconds)
        const state = JSON.parse(c.dataset.state || "{}");
        const ratio = c.width / (c.clientWidth || c.width);
        const at = (seconds) => { // the overview track, just under its top edge (above the phone boxes)
            const { pad, overview } = state.layout;
            const w = c.width / ratio;
            const x = Math.round((pad + (seconds / state.duration) * (w - 2 * pad)) * ratio);
            const y = Math.round((overview[0] + 2) * ratio);
            return Array.from(ctx.getImageData(x, y, 1, 1).data);
        };
        const visible = rect.width > 0 && rect.height > 0 && c.isConnected &&
            getComputedStyle(c).visibility !== "hidden" && !!c.offsetParent;
        return {
            present: true, visible, connected: c.isConnected, rect: [rect.x, rect.y, rect.width, rect.height],
            pixels: [c.width, c.height], painted, checksum: sum, state, draws: t.draws,
            widgets: node.widgets.map((w) => w.name),
            serialized: node.serialize().widgets_values,
            serializable: node.widgets.filter((w) => w.serialize !== false).map((w) => w.name),
            promptInputs: Object.keys((await app.graphToPrompt()).output?.[String(id)]?.inputs ?? {}),
            sample: { at05: at(0.5), at2: at(2), at35: at(3.5) },
        };
    }, tokenizerId);

    let tokenizerId = null;
    const timeline = await step("timeline", async () => {
        await closeDialogs();
        await newBlankTab();
        const created = await page.evaluate((type) => {
            const app = window.comfyAPI.app.app;
            app.graph.clear();
            const node = window.LiteGraph.createNode(type);
            if (!node) return { created: false };
            node.pos = [80, 120];
            app.graph.add(node);
            const set = (name, value) => {
                const w = node.widgets.find((x) => x.name === name);
                if (w) w.value = value;
            };
            set("transcript", "HH AH0 L OW1 , DH EH1 R");
            set("mode", "auto");
            set("speech_start", 1);
            set("speech_end", 3);
            node.setSize([Math.max(node.size[0], 460), node.size[1]]);
            app.canvas.ds.scale = 1.2;
            app.canvas.ds.offset = [60, 20];
            return { created: true, id: node.id, size: node.size, widgets: node.widgets.map((w) => [w.name, w.type]) };
        }, config.tokenizer);
        if (!created.created) throw new Error(`LiteGraph.createNode(${config.tokenizer}) returned null: node type not registered`);
        tokenizerId = created.id;
        await settle();
        await page.waitForTimeout(400);
        await settle();
        const before = await timelineProbe();
        await shot("04_timeline_before");

        // the user's way of editing a number: the widget's own setValue (what dragging, the arrows and the prompt
        // use), which fires its callback; nothing else is poked.
        const edit = await page.evaluate((id) => {
            const app = window.comfyAPI.app.app;
            const node = app.graph.getNodeById(id);
            const w = node.widgets.find((x) => x.name === "speech_start");
            const old = w.value;
            if (typeof w.setValue === "function") w.setValue(2.4, { e: undefined, node, canvas: app.canvas });
            else { w.value = 2.4; w.callback?.(2.4, app.canvas, node); }
            return { old, now: w.value, via: typeof w.setValue === "function" ? "setValue" : "value+callback" };
        }, tokenizerId);
        await settle();
        await page.waitForTimeout(200);
        const after = await timelineProbe();
        await shot("05_timeline_after_edit");

        // and through the real canvas: click the speech_start widget's increment arrow with the mouse
        const click = await page.evaluate((id) => {
            const app = window.comfyAPI.app.app;
            const node = app.graph.getNodeById(id);
            const w = node.widgets.find((x) => x.name === "speech_start");
            const h = w.computedHeight ?? window.LiteGraph.NODE_WIDGET_HEIGHT ?? 20;
            const cx = node.pos[0] + node.size[0] - 15 - 6; // the right arrow, inside the widget's margin
            const cy = node.pos[1] + (w.y ?? w.last_y ?? 0) + h / 2;
            const [ox, oy] = app.canvas.ds.convertOffsetToCanvas([cx, cy]); // graph -> canvas element pixels
            const r = app.canvas.canvas.getBoundingClientRect();
            return { x: r.left + ox, y: r.top + oy, old: w.value };
        }, tokenizerId);
        await page.mouse.click(click.x, click.y);
        await settle();
        await page.waitForTimeout(200);
        const clicked = await timelineProbe();

        // linked inputs: constants upstream are followed, computed ones are shown as linked
        const link = async (sources) => page.evaluate(({ id, sources }) => {
            const app = window.comfyAPI.app.app;
            const node = app.graph.getNodeById(id);
            const made = [];
            for (const [input, type, value, output] of sources) {
                const src = window.LiteGraph.createNode(type);
                if (!src) return { error: `${type} is not registered` };
                src.pos = [node.pos[0] - 320, node.pos[1] + 60 * made.length];
                app.graph.add(src);
                if (value !== null) src.widgets.find((w) => w.name === "value").value = value;
                const slot = node.inputs.findIndex((i) => i.name === input);
                const out = output == null ? 0 : src.outputs.findIndex((o) => o.name === output);
                if (slot < 0 || out < 0) return { error: `no input ${input} or output ${output}` };
                src.connect(out, node, slot);
                made.push(src.id);
            }
            return { made, inputs: node.inputs.filter((i) => i.link != null).map((i) => i.name) };
        }, { id: tokenizerId, sources });
        const unlink = async (made) => page.evaluate(({ made }) => {
            const graph = window.comfyAPI.app.app.graph;
            for (const id of made) graph.remove(graph.getNodeById(id));
        }, { made });
        const constants = await link([["speech_start", "PrimitiveFloat", 1.5, null], ["duration", "PrimitiveFloat", 8, null]]);
        await settle();
        const linkedConstants = { ...constants, probe: await timelineProbe() };
        await shot("05b_timeline_linked_constants");
        if (constants.made) await unlink(constants.made);
        const computed = await link([["duration", "VSSFlowVideoLoader", null, "duration"]]);
        await settle();
        const linkedComputed = { ...computed, probe: await timelineProbe() };
        if (computed.made) await unlink(computed.made);
        await settle();
        return { created, before, edit, after, click, clicked, linkedConstants, linkedComputed };
    });

    // -- 7. a real run: the tokenizer feeding the core PreviewAny output node; the ui message fills the timeline -----
    await step("run", async () => {
        if (!timeline.ok || tokenizerId == null) throw new Error("no tokenizer node (see the timeline step)");
        const queued = await page.evaluate(async (id) => {
            const app = window.comfyAPI.app.app;
            const api = window.comfyAPI.api.api;
            const node = app.graph.getNodeById(id);
            node.widgets.find((x) => x.name === "speech_start").value = 1;
            const preview = window.LiteGraph.createNode("PreviewAny");
            if (!preview) return { queued: false, reason: "PreviewAny is not registered" };
            preview.pos = [node.pos[0] + node.size[0] + 60, node.pos[1]];
            app.graph.add(preview);
            node.connect(0, preview, 0);
            window.__vssflowRun = { errors: [], executed: [] };
            api.addEventListener("execution_error", (e) => window.__vssflowRun.errors.push(e.detail));
            api.addEventListener("executed", (e) => window.__vssflowRun.executed.push(e.detail));
            const ok = await app.queuePrompt(0, 1);
            return { queued: ok !== false, previewId: preview.id };
        }, tokenizerId);
        if (!queued.queued) return { skipped: queued.reason };
        await page.waitForFunction((id) => {
            const r = window.__vssflowRun;
            const node = window.comfyAPI.app.app.graph.getNodeById(id);
            const state = JSON.parse(node?.__vssflowTimeline?.canvas?.dataset?.state || "{}");
            return r.errors.length > 0 || String(state.source).startsWith("last run");
        }, tokenizerId, { timeout: 120000 });
        await settle();
        const result = await page.evaluate(() => window.__vssflowRun);
        const probe = await timelineProbe();
        await shot("06_timeline_after_run");
        return { ...queued, ...result, probe };
    });

    // -- 8. playable audio: our output node (Audio Mux) carries the stock audio player; a ui.audio message fills it -----
    await step("audio", async () => {
        if (!config.audioFile) throw new Error("no audio file given");
        const result = await page.evaluate(async ({ types, file, tokenizerId }) => {
            const app = window.comfyAPI.app.app;
            const api = window.comfyAPI.api.api;
            const find = (node) => {
                const w = node?.widgets?.find((x) => x.name === "audioUI");
                return w ? { element: w.element?.tagName, src: w.element?.src ?? "", ours: !!w.__vssflow,
                             hidden: !!w.element?.classList.contains("empty-audio-widget"),
                             serialize: w.serialize, optionsSerialize: w.options?.serialize } : null;
            };
            const anchor = app.graph.getNodeById(tokenizerId);
            let y = (anchor ? anchor.pos[1] + anchor.size[1] : 120) + 70;
            const out = {};
            for (const type of types) {
                const node = window.LiteGraph.createNode(type);
                if (!node) { out[type] = { created: false }; continue; }
                node.pos = [80, y];
                app.graph.add(node);
                y += node.size[1] + 60;
                const before = find(node);
                // what ComfyUI's websocket delivers for a node that returned {"ui": {"audio": [...]}}
                api.dispatchCustomEvent("executed", {
                    node: String(node.id), display_node: String(node.id), prompt_id: "vssflow-browser-test",
                    output: { audio: [{ filename: file.filename, subfolder: file.subfolder, type: file.type }] },
                });
                out[type] = { created: true, id: node.id, outputNode: !!node.constructor.nodeData?.output_node,
                              before, after: find(node),
                              promptInputs: Object.keys((await app.graphToPrompt()).output?.[String(node.id)]?.inputs ?? {}) };
            }
            return out;
        }, { types: [config.audioNode, ...(config.otherNodes ?? [])], file: config.audioFile, tokenizerId });
        const main = result[config.audioNode];
        if (!main?.created) throw new Error(`${config.audioNode} is not registered`);
        // playable: the browser fetched and decoded the file
        const playable = await page.waitForFunction((id) => {
            const a = window.comfyAPI.app.app.graph.getNodeById(id)?.widgets?.find((x) => x.name === "audioUI")?.element;
            return a && a.readyState >= 1 && Number.isFinite(a.duration) ? { duration: a.duration, readyState: a.readyState } : null;
        }, main.id, { timeout: 15000 }).then((h) => h.jsonValue()).catch((e) => ({ error: String(e) }));
        // keep the picture about our nodes
        await page.evaluate((ids) => {
            const graph = window.comfyAPI.app.app.graph;
            for (const id of ids) { const n = graph.getNodeById(id); if (n) graph.remove(n); }
        }, (config.otherNodes ?? []).map((t) => result[t]?.id).filter((id) => id != null));
        return { nodes: result, playable };
    });


    // -- 9. the picture a user would see -----------------------------------------------------------------------------
    await step("final", async () => {
        await page.mouse.move(5, 995); // no tooltip in the picture
        await settle();
        await page.waitForTimeout(300);
        const path = await shot("ui");
        if (tokenizerId != null) {
            const handle = await page.evaluateHandle((id) => window.comfyAPI.app.app.graph.getNodeById(id)?.__vssflowTimeline?.canvas, tokenizerId);
            const element = handle.asElement();
            if (element) {
                report.screenshots.timeline = join(config.outDir, "timeline.png");
                await element.screenshot({ path: report.screenshots.timeline });
            }
        }
        return { path };
    });
    // helpers for the steps below: nodes made and wired with the public graph API
    const make = async (specs) => page.evaluate((specs) => {
        const app = window.comfyAPI.app.app;
        const out = {};
        for (const [key, type, pos, values] of specs) {
            const node = window.LiteGraph.createNode(type);
            if (!node) return { error: `${type} is not registered` };
            node.pos = pos;
            app.graph.add(node);
            for (const [name, value] of Object.entries(values ?? {})) {
                const w = node.widgets.find((x) => x.name === name);
                if (!w) return { error: `${type} has no widget ${name}` };
                w.value = value === "@demo" ? w.options.values.find((v) => String(v).startsWith("demo_videos/")) : value;
            }
            out[key] = node.id;
        }
        return out;
    }, specs);
    const wire = async (from, output, to, input) => page.evaluate(({ from, output, to, input }) => {
        const graph = window.comfyAPI.app.app.graph;
        const a = graph.getNodeById(from);
        const b = graph.getNodeById(to);
        const out = a.outputs.findIndex((o) => o.name === output || o.type === output);
        const slot = b.findInputSlot(input);
        if (out < 0 || slot < 0) return { error: `no output ${output} or input ${input}` };
        a.connect(out, b, slot);
        return { ok: b.isInputConnected(slot) };
    }, { from, output, to, input });
    const stateOf = async (id) => page.evaluate((id) => {
        const t = window.comfyAPI.app.app.graph.getNodeById(id)?.__vssflowTimeline;
        return t ? JSON.parse(t.canvas.dataset.state || "{}") : null;
    }, id);
    const waitState = async (id, predicate, timeout = 20000) => {
        await page.waitForFunction(({ id, predicate }) => {
            const t = window.comfyAPI.app.app.graph.getNodeById(id)?.__vssflowTimeline;
            const state = JSON.parse(t?.canvas?.dataset?.state || "{}");
            return new Function("s", `return ${predicate}`)(state);
        }, { id, predicate }, { timeout }).catch(() => {});
        return stateOf(id);
    };
    const widgetValues = async (id) => page.evaluate(async (id) => {
        const app = window.comfyAPI.app.app;
        const node = app.graph.getNodeById(id);
        const values = Object.fromEntries(node.widgets.filter((w) => w.serialize !== false).map((w) => [w.name, w.value]));
        const prompt = (await app.graphToPrompt()).output?.[String(id)]?.inputs ?? {};
        const disabled = node.widgets.filter((w) => w.disabled).map((w) => w.name);
        return { values, prompt, disabled };
    }, id);
    // drags the timeline of node `id` from time `from` to time `to` (seconds) with the real mouse
    const dragTimeline = async (id, from, to) => {
        const geo = await page.evaluate(({ id, from, to }) => {
            const c = window.comfyAPI.app.app.graph.getNodeById(id).__vssflowTimeline.canvas;
            const { layout, duration } = JSON.parse(c.dataset.state);
            const r = c.getBoundingClientRect();
            const scale = r.width / layout.width;
            const x = (t) => r.left + (layout.pad + (t / duration) * (layout.width - 2 * layout.pad)) * scale;
            const y = r.top + ((layout.overview[0] + layout.overview[1]) / 2) * scale;
            return { x0: x(from), x1: x(to), y };
        }, { id, from, to });
        await page.mouse.move(geo.x0, geo.y);
        await page.mouse.down();
        for (let i = 1; i <= 6; i++) await page.mouse.move(geo.x0 + ((geo.x1 - geo.x0) * i) / 6, geo.y);
        await page.mouse.up();
        await settle();
        return geo;
    };

    // -- 8b. a live timeline before any run: the clip's real duration and the phonemes of English text -------------
    await step("live", async () => {
        await newBlankTab();
        const ids = await make([
            ["loader", "VSSFlowVideoLoader", [40, 80], { file: "@demo" }],
            ["tok", config.tokenizer, [420, 80], { transcript: "Hello there", mode: "text", speech_start: 1, speech_end: 3 }],
        ]);
        if (ids.error) throw new Error(ids.error);
        const wired = await wire(ids.loader, "duration", ids.tok, "duration");
        await settle();
        const state = await waitState(ids.tok, "s.durationFrom === 'video file' && s.source === 'phoneme preview'");
        const file = await page.evaluate((id) => window.comfyAPI.app.app.graph.getNodeById(id).widgets
            .find((w) => w.name === "file").value, ids.loader);
        await shot("08_live_timeline");
        return { ids, wired, state, file };
    });

    // -- 8c. dialogue rows: every line on the timeline, each retimed by dragging its edges ------------------------
    await step("dialogue", async () => {
        await newBlankTab();
        const text = "0.5-2 [alice]: HH AH0 L OW1\n# a comment row\n3-4.5 [bob]: Hello there";
        const ids = await make([["tok", config.tokenizer, [80, 80], { transcript: text, mode: "auto" }]]);
        if (ids.error) throw new Error(ids.error);
        await page.evaluate((id) => {
            const node = window.comfyAPI.app.app.graph.getNodeById(id);
            node.setSize([Math.max(node.size[0], 640), node.size[1]]);
        }, ids.tok);
        await settle();
        const before = await waitState(ids.tok, "s.lines && s.lines.length === 2 && s.lines.every((l) => l.tokens > 0)");
        await shot("09_dialogue_before");
        await dragTimeline(ids.tok, 4.5, 6.2); // the end edge of bob's line
        await dragTimeline(ids.tok, 0.5, 1.0); // the start edge of alice's line
        await dragTimeline(ids.tok, 1.5, 2.0); // alice's line itself, 0.5 s later
        const after = await waitState(ids.tok, "s.lines && s.lines.length === 2 && s.source === 'phoneme preview'");
        const values = await widgetValues(ids.tok);
        await shot("10_dialogue_after_drag");
        // the one-line form: dragging the end edge writes speech_end
        const one = await make([["tok", config.tokenizer, [80, 420], { transcript: "HH AH0 L OW1", speech_start: 1, speech_end: 3 }]]);
        await page.evaluate((id) => {
            const node = window.comfyAPI.app.app.graph.getNodeById(id);
            node.setSize([Math.max(node.size[0], 640), node.size[1]]);
        }, one.tok);
        await settle();
        await waitState(one.tok, "s.source === 'ARPAbet preview'");
        await dragTimeline(one.tok, 3, 4);
        const oneValues = await widgetValues(one.tok);
        return { ids, text, before, after, values, one: oneValues };
    });

    // -- 8c'. the Dialogue node (rows in its `lines` widget) gets the same timeline, when the pack has it ---------
    await step("dialogueNode", async () => {
        const registered = await page.evaluate(() => !!window.LiteGraph.registered_node_types.VSSFlowDialogue);
        if (!registered) return { skipped: "VSSFlowDialogue is not registered" };
        await newBlankTab();
        const text = "0.5-2 [alice]: HH AH0 L OW1\n3-4.5 [bob]: Hello there";
        const ids = await make([["dlg", "VSSFlowDialogue", [80, 80], { lines: text }]]);
        if (ids.error) throw new Error(ids.error);
        await page.evaluate((id) => {
            const node = window.comfyAPI.app.app.graph.getNodeById(id);
            node.setSize([Math.max(node.size[0], 640), node.size[1]]);
        }, ids.dlg);
        await settle();
        const before = await waitState(ids.dlg, "s.lines && s.lines.length === 2 && s.lines.every((l) => l.tokens > 0)");
        await dragTimeline(ids.dlg, 4.5, 5.5);
        const values = await widgetValues(ids.dlg);
        await shot("09b_dialogue_node");
        return { ids, text, before, values };
    });

    // -- 8d. widgets that do nothing in the current setting look inactive ------------------------------------------
    const inactiveProbe = async (ids) => ({
        sampler: await widgetValues(ids.sampler),
        loader: await widgetValues(ids.loader),
    });
    await step("inactive", async () => {
        await newBlankTab();
        const ids = await make([
            ["sampler", "VSSFlowSampler", [420, 60], { solver: "dopri5" }],
            ["loader", "VSSFlowVideoLoader", [40, 60], { file: "@demo" }],
            ["create", "CreateVideo", [40, 400], {}],
        ]);
        if (ids.error) throw new Error(ids.error);
        await settle();
        await page.waitForTimeout(2 * 250 + 100); // the extension's poll, for values set without a callback
        const dopri5 = await inactiveProbe(ids);
        await shot("11_inactive_dopri5");
        await page.evaluate((id) => { // the user's pick in the solver combo: the widget's own setValue
            const app = window.comfyAPI.app.app;
            const node = app.graph.getNodeById(id);
            node.widgets.find((w) => w.name === "solver").setValue("euler", { e: undefined, node, canvas: app.canvas });
        }, ids.sampler);
        await settle();
        const euler = await inactiveProbe(ids);
        const wired = await wire(ids.create, "VIDEO", ids.loader, "video");
        await settle();
        await page.waitForTimeout(600);
        const withVideo = await inactiveProbe(ids);
        await shot("12_inactive_video_connected");
        return { ids, dopri5, euler, wired, withVideo };
    });


    // -- 10. the same timeline in the "Modern Node Design" (Vue nodes) renderer, in its own blank tab -----------------
    await step("vue", async () => {
        await newBlankTab();
        const started = await page.evaluate(async (type) => {
            const app = window.comfyAPI.app.app;
            await app.extensionManager.setting.set("Comfy.VueNodes.Enabled", true);
            app.graph.clear();
            const node = window.LiteGraph.createNode(type);
            if (!node) return { error: `${type} is not registered` };
            node.pos = [100, 100];
            app.graph.add(node);
            const set = (name, value) => { node.widgets.find((w) => w.name === name).value = value; };
            set("transcript", "HH AH0 L OW1");
            set("speech_start", 0.5);
            set("speech_end", 0); // 0 = end of the clip
            return { id: node.id };
        }, config.tokenizer);
        if (started.error) throw new Error(started.error);
        await page.waitForSelector(`[data-node-id="${started.id}"] canvas.vssflow-timeline`, { timeout: 10000 });
        const probe = async () => page.evaluate((id) => {
            const c = window.comfyAPI.app.app.graph.getNodeById(id).__vssflowTimeline.canvas;
            const r = c.getBoundingClientRect();
            return { state: JSON.parse(c.dataset.state || "{}"), rect: [r.width, r.height], pixels: [c.width, c.height],
                     inVueNode: !!c.closest(`[data-node-id="${id}"]`) };
        }, started.id);
        const before = await probe();
        // edit speech_start the way the Vue number widget does: its value and callback
        await page.evaluate((id) => {
            const w = window.comfyAPI.app.app.graph.getNodeById(id).widgets.find((x) => x.name === "speech_start");
            w.value = 4;
            w.callback?.(4);
        }, started.id);
        await page.waitForTimeout(200);
        const after = await probe();
        await shot("07_vue_nodes");
        await page.evaluate(async () => {
            const app = window.comfyAPI.app.app;
            await app.extensionManager.setting.set("Comfy.VueNodes.Enabled", false);
        });
        return { before, after };
    });

    // -- 11. Vue nodes: a drag on the timeline reaches the Vue widgets (the widget store); inactive widgets look it --
    await step("vueEdit", async () => {
        await newBlankTab();
        await page.evaluate(async () => {
            await window.comfyAPI.app.app.extensionManager.setting.set("Comfy.VueNodes.Enabled", true);
        });
        const text = "0.5-2 [alice]: HH AH0 L OW1\n3-4.5 [bob]: HH AY1";
        const ids = await make([
            ["tok", config.tokenizer, [100, 80], { transcript: text }],
            ["sampler", "VSSFlowSampler", [760, 80], { solver: "dopri5" }],
        ]);
        if (ids.error) throw new Error(ids.error);
        await page.waitForSelector(`[data-node-id="${ids.tok}"] canvas.vssflow-timeline`, { timeout: 10000 });
        await page.waitForTimeout(700);
        const domOf = async () => page.evaluate(({ tok, sampler }) => {
            const texts = [...document.querySelectorAll(`[data-node-id="${tok}"] textarea`)].map((t) => t.value);
            const root = document.querySelector(`[data-node-id="${sampler}"]`);
            const disabled = root ? [...root.querySelectorAll("[disabled], [aria-disabled=true], .disabled, [data-disabled]")]
                .map((e) => (e.closest("[data-widget-name]")?.getAttribute("data-widget-name") ?? e.getAttribute("aria-label") ??
                             e.closest("[class*=widget]")?.textContent?.trim()?.slice(0, 40) ?? e.tagName)) : null;
            return { texts, disabled, samplerHTML: root ? root.innerText.slice(0, 400) : null };
        }, ids);
        const before = await domOf();
        const stateBefore = await stateOf(ids.tok);
        await dragTimeline(ids.tok, 4.5, 6.0);
        await page.waitForTimeout(400);
        const after = await domOf();
        const values = await widgetValues(ids.tok);
        const sampler = await widgetValues(ids.sampler);
        await shot("13_vue_drag_and_inactive");
        await page.evaluate((id) => { // a fixed-step solver: steps and schedule come alive, the tolerances go
            const app = window.comfyAPI.app.app;
            const node = app.graph.getNodeById(id);
            node.widgets.find((w) => w.name === "solver").setValue("euler", { e: undefined, node, canvas: app.canvas });
        }, ids.sampler);
        await page.waitForTimeout(400);
        const euler = await domOf();
        const samplerEuler = await widgetValues(ids.sampler);
        await page.evaluate(async () => {
            await window.comfyAPI.app.app.extensionManager.setting.set("Comfy.VueNodes.Enabled", false);
        });
        return { ids, text, before, after, euler, stateBefore, stateAfter: await stateOf(ids.tok), values, sampler,
                 samplerEuler };
    });

    // -- 10. a template as a user meets it: open it, press Run, get the result (no media copied in first) ---------
    await step("templateRun", async () => {
        if (!config.runTemplate) return { skipped: "no template to run" };
        const data = JSON.parse(readFileSync(config.runTemplate.path, "utf8"));
        const result = await page.evaluate(async ({ data, name }) => {
            const app = window.comfyAPI.app.app;
            const api = window.comfyAPI.api.api;
            await app.loadGraphData(data, true, true, name);
            const run = { errors: [], executed: [], done: false };
            window.__vssflowTemplateRun = run;
            api.addEventListener("execution_error", (e) => { run.errors.push(e.detail); run.done = true; });
            api.addEventListener("executed", (e) => run.executed.push(e.detail));
            api.addEventListener("execution_success", () => { run.done = true; });
            const ok = await app.queuePrompt(0, 1);
            return { queued: ok !== false };
        }, { data, name: config.runTemplate.name });
        await page.waitForFunction(() => window.__vssflowTemplateRun?.done, null,
                                   { timeout: config.runTemplate.timeoutMs });
        await settle();
        const run = await page.evaluate(() => window.__vssflowTemplateRun);
        const dialogs = await page.locator(".p-dialog:visible, [role=dialog]:visible").allInnerTexts();
        await shot("10_template_run");
        return { ...result, ...run, dialogs };
    });
} catch (error) {
    report.fatal = String(error?.stack ?? error);
    log("fatal:", report.fatal);
} finally {
    report.seconds = (Date.now() - t0) / 1000;
    report.deprecations = await page.evaluate(() => window.__vssflowDeprecations ?? null).catch((e) => String(e));
    report.frontendVersion = await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ ?? null).catch(() => null);
    save();
    await browser.close().catch(() => {});
}
log(`done in ${report.seconds.toFixed(1)} s`);
