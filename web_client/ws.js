// The WebSocket transport (protocol v1, `WS /v1/stream`): the fallback where WebRTC is missing or
// cannot connect. Audio goes up as raw f32le PCM from an AudioWorklet, ~20 ms a message; frames
// come down as JPEG + their 1/25 s of speech and are played by `FramePlayer`.
// The transport contract is described in webrtc.js.
//
// Latency is measured, not estimated: the page remembers when it sent every piece of its audio,
// each frame's header says which second of that audio it shows (`source_us`), so
// latency = the moment the frame is drawn - the moment its audio was sent.

import { ApiError, RESUMABLE, getApiKey } from "./api.js";
import { MedianMeter } from "./meters.js";
import { FramePlayer } from "./player.js";

const PATH = "/v1/stream";
const HEADER_BYTES = 32; // <BBHIqqq: kind, codec, flags, index, pts_us, source_us, sent_us
const KIND_VIDEO = 1;
const KIND_AUDIO = 2;
const FLAG_SPEECH = 2;
const CHUNK_S = 0.02; // audio sent per message
const OPEN_TIMEOUT_MS = 8000;
const CLOSE_NORMAL = 1000;
const CLOSE_POLICY = 1008; // refused by the server's access rules (a key, its limits): no reconnecting
const CLOSE_BUSY = 1013;
const SENT_KEPT_S = 30; // how much of the send history latency lookups may need

export class WsTransport {
  name = "ws";

  constructor({ portrait, params, record, label, viseme_events, canvas, ctx, onevent, ondrop, onshown }) {
    this.request = { portrait, params, record, label, viseme_events };
    this.onshown = onshown;
    this.canvas = canvas;
    this.ctx = ctx;
    this.onevent = onevent;
    this.ondrop = ondrop;
    this.socket = null;
    this.player = null;
    this.capture = null; // AudioWorkletNode
    this.input = null; // the AudioNode connected to the capture
    this.sent = new SentAudio(ctx.sampleRate);
    this.latency = new MedianMeter(); // sent -> shown
    this.playout = new MedianMeter(); // received -> shown: the player's share of it
    this.modelLatencyMs = null;
    this._lastMeasured = -Infinity; // performance.now() of the last measured latency
    this._closing = false;
    this._dropped = false;
    this._fatal = false; // the server sent a fatal error: its close is no dropped connection
  }

  async start(input) {
    await this.ctx.audioWorklet.addModule(new URL("./capture-worklet.js", import.meta.url));
    const socket = await this._open();
    const key = getApiKey(); // a browser's WebSocket cannot send an Authorization header
    try {
      socket.send(JSON.stringify({
        type: "start",
        version: 1,
        ...this.request,
        audio: { format: "f32le", sample_rate: this.ctx.sampleRate, channels: 1 },
        video: { codec: "jpeg", quality: 80 },
        ...(key ? { api_key: key } : {}),
      })); // prettier-ignore
      await this._ready(socket);
    } catch (err) {
      socket.close();
      throw err;
    }
    this.player = new FramePlayer(this.canvas, this.ctx);
    this.player.onshow = (frame) => {
      this.onshown?.(frame.index);
      this._measure(frame);
    };
    socket.onmessage = (e) => this._onMessage(e.data);
    socket.onclose = (e) => {
      // 1000, 1008 or after a fatal error: the server ended the session on purpose; anything else is a drop
      const reason = `the connection closed (${e.code}${e.reason ? ": " + e.reason : ""})`;
      this._drop(reason, e.code !== CLOSE_NORMAL && e.code !== CLOSE_POLICY && !this._fatal);
    };
    this.capture = new AudioWorkletNode(this.ctx, "capture", {
      numberOfOutputs: 1,
      processorOptions: { chunkSize: Math.round(this.ctx.sampleRate * CHUNK_S) },
    });
    this.capture.port.onmessage = (e) => this._sendAudio(e.data);
    // a node is only processed when it leads to the speakers: through a muted gain, so nothing is heard
    this._mute = new GainNode(this.ctx, { gain: 0 });
    this.capture.connect(this._mute).connect(this.ctx.destination);
    this.setInput(input);
  }

  setInput(input) {
    if (this.input) this.input.disconnect(this.capture);
    this.input = input?.node ?? null;
    if (this.input && this.capture) this.input.connect(this.capture);
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  /** Latency measured on frames showing our own audio; the model's latency for server speech (say). */
  figures() {
    const fps = this.player?.meter.rate() ?? null;
    if (performance.now() - this._lastMeasured < 1500) {
      const detail = { playoutMs: this.playout.value() };
      return { fps, latencyMs: this.latency.value(), latencyKind: "measured", detail };
    }
    return { fps, latencyMs: this.modelLatencyMs, latencyKind: "model" };
  }

  async close() {
    this._closing = true;
    this.send({ type: "stop" });
    const socket = this.socket;
    // the server answers "stopped" and closes; do not wait long for it
    await new Promise((resolve) => {
      if (!socket || socket.readyState === WebSocket.CLOSED) return resolve();
      socket.addEventListener("close", resolve);
      setTimeout(resolve, 1000);
    });
    this._teardown();
  }

  _open() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}${PATH}`);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new ApiError("network", "the WebSocket did not open")), OPEN_TIMEOUT_MS);
      const fail = (err) => {
        clearTimeout(timer);
        socket.onopen = socket.onerror = socket.onclose = null;
        socket.close();
        reject(err);
      };
      socket.onopen = () => {
        clearTimeout(timer);
        socket.onopen = socket.onerror = socket.onclose = null;
        resolve(socket);
      };
      socket.onerror = () => fail(new ApiError("network", "the WebSocket could not connect"));
    });
  }

  /** Wait for `ready`; a fatal `error` (busy, unknown_portrait, ...) or a close first is thrown. */
  _ready(socket) {
    return new Promise((resolve, reject) => {
      socket.onmessage = (e) => {
        if (typeof e.data !== "string") return;
        const event = JSON.parse(e.data);
        if (event.type === "ready") {
          this.modelLatencyMs = event.latency_ms;
          this.onevent(event);
          resolve(event);
        } else if (event.type === "error") {
          // before `ready` every error means no session (unknown_portrait, bad_params, busy, ...)
          reject(new ApiError(event.code, event.message));
        }
      };
      socket.onclose = (e) => {
        const code = e.code === CLOSE_BUSY ? "busy" : "disconnected";
        reject(new ApiError(code, `closed before the session started (${e.code})`));
      };
    });
  }

  _onMessage(data) {
    if (typeof data === "string") {
      const event = JSON.parse(data);
      if (event.type === "error" && event.fatal && !RESUMABLE.has(event.code)) this._fatal = true;
      this.onevent(event);
      return;
    }
    const view = new DataView(data);
    const kind = view.getUint8(0);
    const flags = view.getUint16(2, true);
    const index = view.getUint32(4, true);
    const sourceUs = Number(view.getBigInt64(16, true));
    const payload = new Uint8Array(data, HEADER_BYTES);
    if (kind === KIND_AUDIO) {
      // a view on the message: the 32-byte header keeps the samples 2-byte aligned
      this.player.audio(index, new Int16Array(data, HEADER_BYTES), Boolean(flags & FLAG_SPEECH));
    } else if (kind === KIND_VIDEO) {
      const info = {
        source: sourceUs < 0 ? null : sourceUs / 1e6,
        speech: Boolean(flags & FLAG_SPEECH),
        receivedAt: performance.now(),
      };
      this.player.video(index, payload, info).catch(() => {}); // an undecodable frame is skipped
    }
  }

  _sendAudio(chunk) {
    if (this.socket?.readyState !== WebSocket.OPEN) return;
    this.socket.send(chunk.buffer);
    this.sent.add(chunk.length, performance.now());
  }

  _measure(frame) {
    if (frame.source === null) return;
    const sentAt = this.sent.sentAt(frame.source);
    // null: not a second we sent (server speech) or too old. A time after the frame was shown:
    // the server counts its own speech (say) into `source` too, which shifts the seconds after it
    if (sentAt === null || sentAt > frame.shownAt) return;
    this.latency.push(frame.shownAt - sentAt);
    this.playout.push(frame.shownAt - frame.receivedAt);
    this._lastMeasured = frame.shownAt;
  }

  _drop(reason, reconnect = true) {
    if (this._closing || this._dropped) return;
    this._dropped = true;
    this._teardown();
    this.ondrop(reason, reconnect);
  }

  _teardown() {
    if (this.socket) {
      this.socket.onmessage = this.socket.onclose = null;
      if (this.socket.readyState <= WebSocket.OPEN) this.socket.close(CLOSE_NORMAL);
    }
    this.setInput(null);
    this.capture?.disconnect();
    this._mute?.disconnect();
    this.capture = null;
    this.player?.close();
    this.player = null;
  }
}

/** When each piece of the audio we sent left, by its position (seconds) in our audio. */
class SentAudio {
  constructor(sampleRate) {
    this.rate = sampleRate;
    this.samples = 0;
    this.pieces = []; // {start, end, at}: seconds of our audio, performance.now() when sent
  }

  add(samples, at) {
    const start = this.samples / this.rate;
    this.samples += samples;
    this.pieces.push({ start, end: this.samples / this.rate, at });
    while (this.pieces.length && this.pieces[0].end < start - SENT_KEPT_S) this.pieces.shift();
  }

  /** When the piece holding second `source` of our audio was sent; null if we sent no such second. */
  sentAt(source) {
    let lo = 0;
    let hi = this.pieces.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const piece = this.pieces[mid];
      if (source < piece.start) hi = mid - 1;
      else if (source >= piece.end) lo = mid + 1;
      else return piece.at;
    }
    return null;
  }
}
