// The page: wires the controls to a Session, shows the live figures and every message.
//
// `?transport=ws` (or `?transport=webrtc`) forces a transport; by default WebRTC is used, and
// WebSocket where WebRTC is missing or cannot connect. Where the server needs an API key the page
// asks for it first, and asks again when the server refuses it.

import {
  ApiError, authInfo, blobUrl, describe, enrolPortrait, getApiKey, listSamples, portraitImageUrl, setApiKey,
} from "./api.js"; // prettier-ignore
import { AudioInput, audioContext } from "./audio-input.js";
import { Session } from "./session.js";
import { VisemeBars } from "./visemes.js";

const FIGURES_EVERY_MS = 250;
const ACTIVE = new Set(["live", "listening", "speaking", "interrupted"]);
const SESSION_UP = new Set([...ACTIVE, "connecting", "reconnecting"]);
const TRANSPORT_NAMES = { webrtc: "WebRTC", ws: "WebSocket" };
const PARAM_NAMES = { dynamic_scale: "mouth", motion_scale: "head and expression" };

const $ = (id) => document.getElementById(id);
const ui = {
  stage: $("stage"),
  idleImage: $("idle-image"),
  video: $("video"),
  canvas: $("canvas"),
  placeholder: $("placeholder"),
  state: $("fig-state"),
  transportLabel: $("fig-transport-label"),
  transport: $("fig-transport"),
  fps: $("fig-fps"),
  latencyLabel: $("fig-latency-label"),
  latency: $("fig-latency"),
  detail: $("fig-detail"),
  start: $("start"),
  interrupt: $("interrupt"),
  stop: $("stop"),
  retry: $("retry"),
  download: $("download"),
  message: $("message"),
  samples: $("samples"),
  uploadForm: $("upload-form"),
  upload: $("upload"),
  uploadFile: $("upload-file"),
  consent: $("consent"),
  portraitStatus: $("portrait-status"),
  filePanel: $("file-panel"),
  audioFile: $("audio-file"),
  playFile: $("play-file"),
  textPanel: $("text-panel"),
  text: $("text"),
  voice: $("voice"),
  say: $("say"),
  sliders: { dynamic_scale: $("dynamic-scale"), motion_scale: $("motion-scale") },
  paramsStatus: $("params-status"),
  label: $("label"),
  visemeEvents: $("viseme-events"),
  visemes: $("visemes"),
  watermarkNote: $("watermark-note"),
  keyCard: $("key-card"),
  keyForm: $("key-form"),
  apiKey: $("api-key"),
  keyStatus: $("key-status"),
};

const forced = new URLSearchParams(location.search).get("transport");
const app = {
  preference: forced === "ws" || forced === "webrtc" ? forced : "auto",
  portrait: null, // {id, source, reenrol}
  keyed: false, // the server needs an API key
  samples: [], // the built-in portraits, [{id, title, image}]
  input: null, // AudioInput, made on the first click (an AudioContext wants a user gesture)
  session: null,
  state: "idle",
  events: [], // every server event but the per-frame visemes, newest last (kept short; read by tests)
  visemeBars: null, // the viseme stream's bars (VisemeBars), once a session asked for it
  visemesSeen: 0, // visemes events received
};

// -- messages ---------------------------------------------------------------------------------------

function say(element, text, level = "info") {
  element.textContent = text;
  element.dataset.level = level;
}

function errorText(err) {
  return err instanceof ApiError ? describe(err.code, err.message) : `Something went wrong: ${err.message}`;
}

// -- API key --------------------------------------------------------------------------------------------

/** Whether requests may go ahead: no key needed, or one kept that the server accepted. */
function mayUseServer() {
  return !app.keyed || Boolean(getApiKey());
}

function keyAccepted(principal) {
  const limits = [];
  if (principal.max_sessions) limits.push(`${principal.max_sessions} session(s) at once`);
  if (principal.minutes_per_day) {
    limits.push(`${principal.minutes_used_today} of ${principal.minutes_per_day} minutes used today`);
  }
  say(ui.keyStatus, `Key accepted: ${principal.name}${limits.length ? ` (${limits.join(", ")})` : ""}.`);
}

/** The server refused the key: forget it and ask for another. */
function keyRefused(err) {
  setApiKey(null);
  ui.keyCard.hidden = false;
  say(ui.keyStatus, errorText(err), "error");
  if (!app.portrait) say(ui.portraitStatus, "Enter an API key to begin.");
  refreshButtons();
}

ui.keyForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const key = ui.apiKey.value.trim();
  if (!key) {
    say(ui.keyStatus, "Enter a key first.", "error");
    return;
  }
  say(ui.keyStatus, "Checking the key…");
  let info;
  try {
    info = await authInfo(key);
  } catch (err) {
    if (err instanceof ApiError && err.code === "unauthorized") keyRefused(err);
    else say(ui.keyStatus, errorText(err), "error");
    return;
  }
  setApiKey(key);
  ui.apiKey.value = "";
  keyAccepted(info.principal);
  refreshButtons();
  if (!app.portrait && app.samples.length) await choosePortrait({ sample: app.samples[0].id }, app.samples[0].title);
});

// -- portrait -----------------------------------------------------------------------------------------

async function loadSamples() {
  let samples;
  try {
    samples = await listSamples();
  } catch (err) {
    say(ui.portraitStatus, `The samples could not be listed. ${errorText(err)}`, "error");
    return;
  }
  app.samples = samples;
  ui.samples.replaceChildren(
    ...samples.map((sample) => {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.sample = sample.id;
      button.setAttribute("aria-pressed", "false");
      const img = document.createElement("img");
      img.src = sample.image;
      img.alt = "";
      const title = document.createElement("span");
      title.textContent = sample.title;
      button.append(img, title);
      button.addEventListener("click", () => choosePortrait({ sample: sample.id }, sample.title));
      return button;
    }),
  );
  if (!mayUseServer()) say(ui.portraitStatus, "Enter an API key to begin.");
  else if (samples.length && !app.portrait) await choosePortrait({ sample: samples[0].id }, samples[0].title);
}

/** Enrol a sample or an upload and make it the session's portrait; its crop becomes the idle picture. */
async function choosePortrait(source, label) {
  if (!mayUseServer()) {
    say(ui.portraitStatus, "Enter an API key first.", "error");
    return false;
  }
  say(ui.portraitStatus, `Preparing ${label}…`);
  ui.start.disabled = true;
  let answer;
  try {
    answer = await enrolPortrait(source);
  } catch (err) {
    say(ui.portraitStatus, errorText(err), "error");
    if (err instanceof ApiError && err.code === "unauthorized") keyRefused(err);
    ui.start.disabled = !app.portrait;
    return false;
  }
  app.portrait = {
    id: answer.id,
    source,
    reenrol: async () => (await enrolPortrait(source)).id,
  };
  for (const button of ui.samples.querySelectorAll("button")) {
    button.setAttribute("aria-pressed", String(button.dataset.sample === source.sample));
  }
  await showIdleImage(answer.image ?? portraitImageUrl(answer.id));
  ui.idleImage.alt = `The portrait to animate: ${label}`;
  const faces = answer.faces > 1 ? ` (${answer.faces} faces found; the largest is used)` : "";
  say(ui.portraitStatus, `Ready: ${label}${faces}.`);
  refreshButtons();
  return true;
}

/** The portrait at rest; where the server needs a key, fetched with it and shown from a blob: URL. */
async function showIdleImage(url) {
  if (!app.keyed) {
    ui.idleImage.src = url;
    return;
  }
  try {
    const shown = await blobUrl(url);
    if (ui.idleImage.src.startsWith("blob:")) URL.revokeObjectURL(ui.idleImage.src);
    ui.idleImage.src = shown;
  } catch (err) {
    say(ui.portraitStatus, `The portrait's picture could not be shown. ${errorText(err)}`, "error");
  }
}

ui.uploadForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const file = ui.uploadFile.files[0];
  if (!file) {
    say(ui.portraitStatus, "Choose a photo first.", "error");
    return;
  }
  if (!ui.consent.checked) {
    // the server refuses it too (consent_required); saying so here saves the upload
    say(ui.portraitStatus, describe("consent_required"), "error");
    return;
  }
  await choosePortrait({ file, consent: true }, file.name);
});

// -- input ------------------------------------------------------------------------------------------

function chosenInput() {
  return document.querySelector('input[name="input"]:checked').value;
}

async function ensureAudio() {
  if (!app.input) {
    app.input = new AudioInput(await audioContext());
    app.input.onchange = () => app.session?.inputChanged();
    app.input.onfileend = () => app.session?.flush();
  } else {
    await audioContext(); // resumes it if the browser suspended it
  }
  return app.input;
}

/** Make the AudioInput match the radio buttons (the microphone is only opened when chosen). */
async function applyInput() {
  const input = await ensureAudio();
  const kind = chosenInput();
  if (kind === "mic") await input.useMicrophone();
  else if (input.kind === "mic" || kind === "text") input.silence();
}

function showInputPanel() {
  const kind = chosenInput();
  ui.filePanel.hidden = kind !== "file";
  ui.textPanel.hidden = kind !== "text";
}

for (const radio of document.querySelectorAll('input[name="input"]')) {
  radio.addEventListener("change", async () => {
    showInputPanel();
    if (!SESSION_UP.has(app.state)) return; // otherwise the next start applies it
    try {
      await applyInput();
    } catch (err) {
      say(ui.message, errorText(err), "error");
    }
  });
}

ui.audioFile.addEventListener("change", refreshButtons);

ui.playFile.addEventListener("click", async () => {
  const file = ui.audioFile.files[0];
  if (!file) return;
  try {
    if (!(await ensureSession())) return;
    await app.input.playFile(file);
    say(ui.message, `Playing ${file.name} into the face.`);
  } catch (err) {
    say(ui.message, errorText(err), "error");
  }
});

ui.textPanel.addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = ui.text.value.trim();
  if (!text) {
    say(ui.message, describe("empty_text"), "error");
    return;
  }
  if (!(await ensureSession())) return;
  app.session.say(text, ui.voice.value.trim() || "en-us");
});

// -- motion sliders ---------------------------------------------------------------------------------

function sliderValues() {
  return Object.fromEntries(Object.entries(ui.sliders).map(([name, el]) => [name, Number(el.value)]));
}

for (const [name, slider] of Object.entries(ui.sliders)) {
  slider.addEventListener("input", () => {
    $(`${slider.id}-value`).value = Number(slider.value).toFixed(2);
    app.session?.setParams({ [name]: Number(slider.value) });
  });
}

// -- the session --------------------------------------------------------------------------------------

async function startSession() {
  if (!app.portrait) return false;
  ui.start.disabled = true;
  say(ui.message, "");
  try {
    await applyInput();
  } catch (err) {
    say(ui.message, errorText(err), "error");
    refreshButtons();
    return false;
  }
  app.session ??= new Session({
    transport: app.preference,
    view: { video: ui.video, canvas: ui.canvas },
    input: app.input,
    onstate: showState,
    onevent: onEvent,
    onmessage: (text, level) => say(ui.message, text, level),
  });
  app.session.onshown = (index) => app.visemeBars?.shown(index);
  ui.visemes.hidden = !ui.visemeEvents.checked;
  app.visemeBars ??= new VisemeBars(ui.visemes);
  app.visemeBars.clear();
  await app.session.start({ ...app.portrait }, sliderValues(), {
    label: ui.label.checked,
    visemes: ui.visemeEvents.checked,
  });
  return app.session.active;
}

/** Say/Play start a session first when none is running. */
async function ensureSession() {
  if (app.session?.active) return true;
  return startSession();
}

ui.start.addEventListener("click", startSession);
ui.retry.addEventListener("click", startSession);
ui.stop.addEventListener("click", () => app.session?.stop());
ui.interrupt.addEventListener("click", () => app.session?.interrupt());

// a plain link downloads by itself; where the server needs a key, the page fetches it with the key
ui.download.addEventListener("click", async (e) => {
  if (!app.keyed) return;
  e.preventDefault();
  try {
    const url = await blobUrl(ui.download.href);
    Object.assign(document.createElement("a"), { href: url, download: ui.download.download }).click();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (err) {
    say(ui.message, `The recording could not be downloaded. ${errorText(err)}`, "error");
  }
});

function onEvent(event) {
  if (event.type === "visemes") {
    app.visemesSeen += 1;
    app.visemeBars?.add(event, app.session?.transportName !== "ws");
    return;
  }
  app.events.push(event);
  if (app.events.length > 200) app.events.shift();
  if (event.type === "ready") {
    if (event.recording) {
      ui.download.href = event.recording;
      ui.download.hidden = false;
    }
    if (event.watermark) {
      say(ui.watermarkNote, `Every frame of this session carries the invisible watermark ${event.watermark}, ` +
        "which names it in the server's audit log (sonic-rt watermark detect VIDEO).");
    }
  } else if (event.type === "params") {
    const values = Object.entries(event.params)
      .map(([name, value]) => `${PARAM_NAMES[name] ?? name} ${Number(value).toFixed(2)}`)
      .join(", ");
    say(ui.paramsStatus, `In force from frame ${event.frame}: ${values}.`);
  } else if (event.type === "stats") {
    app.serverStats = event;
  }
}

function showState(state, { transport, fellBack, code }) {
  app.state = state;
  ui.state.textContent = state;
  ui.state.dataset.state = state;
  const why = fellBack ? "fallback" : app.preference !== "auto" ? "forced" : "";
  ui.transportLabel.textContent = why && state !== "idle" ? `Transport (${why})` : "Transport";
  ui.transport.textContent = state === "idle" ? "—" : (TRANSPORT_NAMES[transport] ?? "—");
  ui.stage.dataset.showing = ACTIVE.has(state) ? transport : "idle";
  if (state === "stopped") {
    say(ui.message, ui.download.hidden ? "Stopped." : "Stopped. The recording of the session is ready to download.");
  }
  if (state === "stopped" || state === "error") app.input?.close(); // the microphone goes off too
  if (state === "error" && code === "unauthorized") keyRefused(new ApiError(code)); // revoked since: ask again
  refreshButtons();
  showFigures();
}

function refreshButtons() {
  const state = app.state;
  const running = ACTIVE.has(state);
  const busy = SESSION_UP.has(state);
  ui.start.disabled = !app.portrait || busy || !mayUseServer();
  ui.stop.disabled = !busy;
  ui.interrupt.disabled = !running;
  ui.retry.hidden = state !== "error";
  ui.retry.disabled = !mayUseServer();
  ui.say.disabled = !app.portrait || (busy && !running);
  ui.playFile.disabled = !app.portrait || !ui.audioFile.files.length || (busy && !running);
  ui.upload.disabled = busy;
  for (const button of ui.samples.querySelectorAll("button")) button.disabled = busy;
}

// -- live figures ---------------------------------------------------------------------------------------

const LATENCY_LABELS = {
  measured: "Latency (measured)",
  estimate: "Latency (estimate)",
  model: "Latency (model)",
};

function showFigures() {
  const figures = app.session?.active ? app.session.figures() : { fps: null, latencyMs: null };
  ui.fps.textContent = figures.fps === null ? "—" : `${figures.fps.toFixed(1)} fps`;
  ui.latencyLabel.textContent = LATENCY_LABELS[figures.latencyKind] ?? "Latency";
  const approx = figures.latencyKind === "estimate" ? "≈ " : "";
  ui.latency.textContent = figures.latencyMs === null ? "—" : `${approx}${Math.round(figures.latencyMs)} ms`;
  ui.detail.textContent = figureDetail(figures);
}

function figureDetail(figures) {
  if (!app.session?.active) return "";
  const parts = [];
  if (figures.latencyKind === "estimate") {
    const { modelMs, transportMs, jitterMs, rttMs } = figures.detail;
    const ms = (x) => (x === null ? "?" : `${Math.round(x)} ms`);
    const halfRtt = rttMs === null ? null : rttMs / 2;
    parts.push(`estimate: model ${ms(modelMs)} + server buffers and packets ${ms(transportMs)} + ` +
      `jitter buffer ${ms(jitterMs)} + RTT/2 ${ms(halfRtt)}`);
  } else if (figures.latencyKind === "measured" && figures.detail?.onsets) {
    parts.push("from speech starting in your audio to it starting in the face's voice (the video keeps step)");
  } else if (figures.latencyKind === "measured") {
    const playout = figures.detail?.playoutMs;
    const share = playout === null || playout === undefined ? "" : `, of which ${Math.round(playout)} ms in the player`;
    parts.push(`from sending your audio to showing the frame that speaks it${share}`);
  } else if (figures.latencyKind === "model") {
    parts.push("the model's own latency (server speech: no audio of yours to time)");
  }
  const stats = app.serverStats;
  if (stats) parts.push(`server ${stats.fps.toFixed(1)} fps, backlog ${Math.round(stats.backlog_ms)} ms`);
  return parts.join(" · ");
}

setInterval(showFigures, FIGURES_EVERY_MS);

// -- start-up -------------------------------------------------------------------------------------------

// for tests and debugging in the console: read-only views of what the page shows
window.sonic = {
  get state() {
    return app.state;
  },
  get transport() {
    return app.session?.transportName ?? null;
  },
  get portrait() {
    return app.portrait?.id ?? null;
  },
  get events() {
    return [...app.events];
  },
  get visemesSeen() {
    return app.visemesSeen;
  },
  figures: () => app.session?.figures() ?? null,
};

/** Whether the server needs a key (and whether the one kept from before still works), then the samples. */
async function startUp() {
  try {
    const info = await authInfo();
    app.keyed = info.auth === "api_key";
    if (app.keyed && info.principal) keyAccepted(info.principal);
  } catch (err) {
    if (!(err instanceof ApiError && err.code === "unauthorized")) {
      say(ui.portraitStatus, errorText(err), "error");
      return;
    }
    app.keyed = true;
    keyRefused(err);
  }
  ui.keyCard.hidden = !app.keyed;
  if (app.keyed && !getApiKey()) say(ui.keyStatus, "Enter the API key you were given.");
  refreshButtons();
  await loadSamples();
}

showInputPanel(); // a reloaded page may keep the last choice
refreshButtons();
startUp();
