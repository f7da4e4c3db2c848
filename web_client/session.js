// One live session as the user sees it: which transport carries it (WebRTC, else WebSocket),
// what state it is in, and getting it back when the connection drops.
//
// States: idle -> connecting -> live (text input) | listening (microphone or file)
//   -> speaking (between the server's speech_start and speech_end) -> interrupted (briefly, after
//   an interrupt) -> ... -> stopped (the user's Stop). A dropped connection goes to reconnecting
//   (backoff 1, 2, 4, 8, 8, 8 s; a full server, or an API key with all its sessions in use, is
//   retried the same way); after the last attempt, or for an error a retry cannot fix (a refused
//   key, a day's minutes used up), the state is error and the page offers Retry.

import { Timers } from "./timers.js";
import { ApiError, RESUMABLE, describe } from "./api.js";
import { audioContext } from "./audio-input.js";
import { WebRtcTransport } from "./webrtc.js";
import { WsTransport } from "./ws.js";

export const STATES = [
  "idle", "connecting", "live", "listening", "speaking", "interrupted", "reconnecting", "stopped", "error",
]; // prettier-ignore
const BACKOFF_S = [1, 2, 4, 8, 8, 8]; // one delay per attempt: six attempts, then give up
const INTERRUPTED_SHOWN_MS = 1500;
const PARAMS_DEBOUNCE_MS = 100;
// failures of WebRTC itself, where a WebSocket may still work (others would fail there too)
const WEBRTC_FAILURES = new Set(["no_webrtc", "connect_timeout", "connect_failed", "bad_offer"]);
// failures a later attempt may not meet
const RETRYABLE = new Set([
  "busy", "too_many_sessions", "network", "disconnected", "connect_timeout", "connect_failed", "internal",
]); // prettier-ignore

export class Session {
  /**
   * @param {object} o
   * @param {"auto"|"webrtc"|"ws"} o.transport  "auto": WebRTC, falling back to WebSocket
   * @param {{video: HTMLVideoElement, canvas: HTMLCanvasElement}} o.view
   * @param {import("./audio-input.js").AudioInput} o.input
   * @param {(state: string, detail: object) => void} o.onstate
   * @param {(event: object) => void} o.onevent   every server event (ready, params, stats, ...)
   * @param {(text: string, level: "info"|"error") => void} o.onmessage
   */
  constructor({ transport, view, input, onstate, onevent, onmessage }) {
    this.preference = transport;
    this.view = view;
    this.input = input;
    this.onstate = onstate;
    this.onevent = onevent;
    this.onmessage = onmessage;
    this.state = "idle";
    this.transport = null;
    this.transportName = null; // the one in use, or that will be tried first on reconnecting
    this.fellBack = false;
    this.portrait = null; // {id, reenrol(): Promise<id>}
    this.params = {};
    this.label = false; // draw the visible "AI-generated" label
    this.visemes = false; // ask for the per-frame viseme stream
    this.onshown = null; // (frame index) => void, where the transport knows which frame is drawn
    this._run = 0; // bumped by every start/stop: callbacks of an older run are ignored
    this._timers = new Timers();
    this._pendingParams = null;
    this._speaking = false;
    this._fatal = null; // the fatal error event of the current connection, if one came
    this._interruptedUntil = 0;
  }

  get active() {
    return this.transport !== null;
  }

  /** Start a session with `portrait` ({id, reenrol}), `params` (the sliders' values) and
   * `options` ({label}: draw the visible "AI-generated" label; visemes: send the viseme stream). */
  async start(portrait, params, options = {}) {
    this._cancelTimers();
    const run = ++this._run;
    this.portrait = portrait;
    this.params = { ...params };
    this.label = Boolean(options.label);
    this.visemes = Boolean(options.visemes);
    this.transportName = this.preference === "ws" ? "ws" : "webrtc";
    this.fellBack = false;
    this._connected = false; // in this run: a later connection is a reconnection
    await this._attempt(run, 0);
  }

  /** The user's stop: no reconnection. */
  async stop() {
    this._run++;
    this._cancelTimers();
    const transport = this.transport;
    this.transport = null;
    await transport?.close();
    this._setState("stopped");
  }

  say(text, voice) {
    this.transport?.send({ type: "say", text, voice });
  }

  /** Barge-in: the server drops what is queued and the face returns to rest; a playing file stops. */
  interrupt() {
    this.input.stopFile();
    this.transport?.send({ type: "interrupt" });
  }

  /** End of an utterance (a file finished): its last frames are made without waiting for more audio. */
  flush() {
    this.transport?.send({ type: "flush" });
  }

  /** A slider moved: kept for (re)starts, and sent to a running session after a short pause. */
  setParams(values) {
    Object.assign(this.params, values);
    if (!this.transport) return;
    this._pendingParams = { ...this._pendingParams, ...values };
    clearTimeout(this._paramsTimer);
    this._paramsTimer = setTimeout(() => {
      const params = this._pendingParams;
      this._pendingParams = null;
      this.transport?.send({ type: "params", params });
    }, PARAMS_DEBOUNCE_MS);
  }

  /** The input changed (microphone, file, nothing). */
  inputChanged() {
    this.transport?.setInput(this.input);
    if (this.transport) this._setState(this._restingState());
  }

  figures() {
    return this.transport?.figures() ?? { fps: null, latencyMs: null, latencyKind: null };
  }

  // -- connecting and reconnecting ----------------------------------------------------------------

  async _attempt(run, attempt, reenrolled = false) {
    this._setState(attempt === 0 ? "connecting" : "reconnecting", { attempt });
    let transport;
    try {
      transport = await this._connect(run);
    } catch (err) {
      if (run !== this._run) return;
      await this._failed(run, attempt, err, reenrolled);
      return;
    }
    if (run !== this._run) {
      transport.close();
      return;
    }
    this.transport = transport;
    this._speaking = false;
    this._fatal = null;
    this._setState(this._restingState());
    if (attempt > 0) this.onmessage(this._connected ? "Reconnected." : "Connected.", "info");
    this._connected = true;
  }

  /** A connected transport: the preferred one, or a WebSocket where WebRTC itself failed. */
  async _connect(run) {
    try {
      return await this._open(run, this.transportName);
    } catch (err) {
      // a browser error (not the server's answer) in the WebRTC machinery counts as WebRTC failing
      const webrtcFailed = !(err instanceof ApiError) || WEBRTC_FAILURES.has(err.code);
      const mayFallBack = this.transportName === "webrtc" && this.preference === "auto";
      if (!webrtcFailed || !mayFallBack || run !== this._run) throw err;
      const why = err instanceof ApiError ? describe(err.code, err.message) : `WebRTC failed (${err.message}).`;
      this.onmessage(`${why} Using WebSocket instead.`, "info");
      this.transportName = "ws";
      this.fellBack = true;
      this._setState(this.state);
      return await this._open(run, "ws");
    }
  }

  async _open(run, name) {
    const common = {
      portrait: this.portrait.id,
      params: { ...this.params },
      record: true,
      label: this.label,
      viseme_events: this.visemes,
      onevent: (event) => run === this._run && this._onEvent(event),
      onshown: (index) => run === this._run && this.onshown?.(index),
      ondrop: (reason, reconnect) => run === this._run && this._onDrop(run, reason, reconnect),
    };
    const transport =
      name === "webrtc"
        ? new WebRtcTransport({ ...common, video: this.view.video, ctx: await audioContext() })
        : new WsTransport({ ...common, canvas: this.view.canvas, ctx: await audioContext() });
    await transport.start(this.input);
    return transport;
  }

  async _failed(run, attempt, err, reenrolled) {
    const code = err instanceof ApiError ? err.code : "internal";
    if (code === "unknown_portrait" && !reenrolled && this.portrait.reenrol) {
      // the server restarted and forgot the portrait: enrol it again (once), then try again
      try {
        this.portrait.id = await this.portrait.reenrol();
        if (run === this._run) await this._attempt(run, attempt, true);
        return;
      } catch (enrolErr) {
        err = enrolErr;
      }
    }
    const finalCode = err instanceof ApiError ? err.code : "internal";
    if (RETRYABLE.has(finalCode) && attempt < BACKOFF_S.length) {
      this._scheduleRetry(run, attempt + 1, finalCode);
      return;
    }
    const gaveUp = RETRYABLE.has(finalCode) ? ` Gave up after ${attempt} attempts.` : "";
    this._setState("error", { code: finalCode });
    this.onmessage(describe(finalCode, err.message) + gaveUp, "error");
  }

  _onDrop(run, reason, reconnect = true) {
    this.transport = null;
    console.warn(`sonic-rt: ${reason}`);
    if (reconnect) {
      this._scheduleRetry(run, 1, "disconnected");
    } else if (this._fatal) {
      this._setState("error", { code: this._fatal.code }); // its message is on screen already
    } else {
      this._setState("stopped");
      this.onmessage(`The server ended the session (${reason}).`, "info");
    }
  }

  _scheduleRetry(run, attempt, code) {
    const delay = BACKOFF_S[attempt - 1];
    const lead =
      code === "busy" || code === "too_many_sessions" || !this._connected
        ? `${describe(code)} Retrying`
        : "Disconnected — reconnecting";
    this._setState("reconnecting", { attempt, code });
    let left = delay;
    const tick = () => {
      if (run !== this._run) return;
      if (left <= 0) {
        this._attempt(run, attempt);
        return;
      }
      this.onmessage(`${lead} in ${left}s (attempt ${attempt} of ${BACKOFF_S.length})`, "error");
      left -= 1;
      this._timers.after(1000, tick);
    };
    tick();
  }

  // -- events ------------------------------------------------------------------------------------

  _onEvent(event) {
    switch (event.type) {
      case "speech_start":
        this._speaking = true;
        this._setState("speaking");
        break;
      case "speech_end":
        this._speaking = false;
        if (this.state === "speaking") this._setState(this._restingState());
        break;
      case "interrupted":
        this._speaking = false;
        this._interruptedUntil = performance.now() + INTERRUPTED_SHOWN_MS;
        this._setState("interrupted");
        this._timers.after(INTERRUPTED_SHOWN_MS, () => {
          if (this.state === "interrupted" && performance.now() >= this._interruptedUntil) {
            this._setState(this._restingState());
          }
        });
        break;
      case "error":
        // a fatal error ends the connection, which the transport reports next
        if (event.fatal && !RESUMABLE.has(event.code)) this._fatal = event;
        this.onmessage(describe(event.code, event.message), "error");
        break;
    }
    this.onevent(event);
  }

  _restingState() {
    if (this._speaking) return "speaking";
    return this.input.kind === "none" ? "live" : "listening";
  }

  _setState(state, detail = {}) {
    this.state = state;
    this.onstate(state, { transport: this.transportName, fellBack: this.fellBack, ...detail });
  }


  _cancelTimers() {
    this._timers.cancel();
    clearTimeout(this._paramsTimer);
    this._pendingParams = null;
  }
}
