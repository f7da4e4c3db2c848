// The WebSocket transport's player: each frame's 1/25 s of speech is scheduled with Web Audio,
// back to back on a playhead with a small jitter buffer, and the frame is drawn on a <canvas>
// when the audio clock reaches the time its audio plays, so picture and sound stay together.
//
// The server sends a frame's audio just before the frame (same index). The jitter buffer adapts
// to how late frames arrive: over the last 3 s, the spread between the earliest and the latest
// arrival relative to the frames' own timeline, plus a margin (40 ms on a quiet loopback, up to
// 300 ms). If audio arrives after its slot has passed (an underrun), the playhead restarts one
// jitter buffer ahead of now. If it has drifted further ahead than that (frames came in a burst),
// the audio of frames without speech is dropped until it is back: the silence is not heard, the
// latency is won back. While
// the AudioContext is not running (no user gesture yet), frames are timed by the page's clock
// instead and no sound plays.

import { RateMeter } from "./meters.js";

const SPEECH_RATE = 16000; // the server's audio: s16le, 16 kHz, mono
const JITTER_MIN_S = 0.04; // the jitter buffer: how far ahead of now the playhead restarts, at least ...
const JITTER_MAX_S = 0.3; // ... and at most
const JITTER_MARGIN_S = 0.02; // added to the arrival spread measured
const JITTER_WINDOW = 75; // frames (3 s) of arrivals the spread is measured over
const MIN_LEAD_S = 0.01; // a slot closer to now than this counts as missed
const EXTRA_LEAD_S = 0.05; // further ahead than the jitter buffer and this, silent frames are dropped
const MAX_SLOTS = 100; // audio slots kept for frames still to come

export class FramePlayer {
  constructor(canvas, ctx) {
    this.canvas = canvas;
    this.draw2d = canvas.getContext("2d");
    this.ctx = ctx;
    this.out = new GainNode(ctx);
    this.out.connect(ctx.destination);
    this.meter = new RateMeter();
    this.onshow = null; // (frame) => void, as each frame is drawn: {index, source, speech, shownAt}
    this._clock = null; // "audio" or "page": which clock the playhead is on
    this._playhead = 0; // seconds on that clock where the next audio slot starts
    this._slots = new Map(); // frame index -> when its audio plays
    this._queue = []; // decoded frames waiting for their time, in index order
    this._sources = new Set();
    this._running = true;
    this._arrivals = []; // arrival time - frame time, seconds, for the last frames
    this.jitterS = 0.1; // until arrivals are measured
    this._raf = requestAnimationFrame(() => this._tick());
  }

  /** A frame's sound: Int16Array of 16 kHz samples; `speech` false where it is silence. */
  audio(index, pcm, speech) {
    this._measureJitter(index, pcm.length / SPEECH_RATE);
    const clock = this.ctx.state === "running" ? "audio" : "page";
    const now = this._now(clock);
    if (clock !== this._clock || this._playhead < now + MIN_LEAD_S) {
      this._clock = clock;
      this._playhead = now + this.jitterS;
    }
    this._slots.set(index, this._playhead);
    if (this._slots.size > MAX_SLOTS) this._slots.delete(this._slots.keys().next().value); // a frame lost
    if (!speech && this._playhead > now + this.jitterS + EXTRA_LEAD_S) return; // dropped; the next takes its slot
    if (clock === "audio") this._schedule(pcm, this._playhead);
    this._playhead += pcm.length / SPEECH_RATE;
  }

  /** A frame's picture (JPEG bytes); `info` travels with it to `onshow`. */
  async video(index, jpeg, info) {
    const bitmap = await createImageBitmap(new Blob([jpeg], { type: "image/jpeg" }));
    if (!this._running) return bitmap.close();
    const at = this._slots.get(index) ?? this._now(this._clock ?? "page");
    this._slots.delete(index);
    const frame = { index, bitmap, at, ...info };
    let i = this._queue.length;
    while (i > 0 && this._queue[i - 1].index > index) i--; // decodes may finish out of order
    this._queue.splice(i, 0, frame);
  }

  close() {
    this._running = false;
    cancelAnimationFrame(this._raf);
    for (const source of this._sources) source.stop();
    this._sources.clear();
    this.out.disconnect();
    for (const frame of this._queue) frame.bitmap.close();
    this._queue = [];
  }

  _measureJitter(index, frameS) {
    this._arrivals.push(performance.now() / 1000 - index * frameS);
    if (this._arrivals.length > JITTER_WINDOW) this._arrivals.shift();
    if (this._arrivals.length < JITTER_WINDOW / 3) return;
    const spread = Math.max(...this._arrivals) - Math.min(...this._arrivals);
    this.jitterS = Math.min(JITTER_MAX_S, Math.max(JITTER_MIN_S, spread + JITTER_MARGIN_S));
  }

  _schedule(pcm, at) {
    const buffer = new AudioBuffer({ length: pcm.length, sampleRate: SPEECH_RATE, numberOfChannels: 1 });
    const samples = buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
    const source = new AudioBufferSourceNode(this.ctx, { buffer });
    source.connect(this.out);
    source.onended = () => this._sources.delete(source);
    this._sources.add(source);
    source.start(at);
  }

  /** Now on `clock`: for "audio", the context time of the sound coming out of the speakers now. */
  _now(clock) {
    if (clock === "page") return performance.now() / 1000;
    const stamp = this.ctx.getOutputTimestamp?.();
    if (stamp?.performanceTime > 0) return stamp.contextTime + (performance.now() - stamp.performanceTime) / 1000;
    return this.ctx.currentTime - (this.ctx.outputLatency || 0);
  }

  _tick() {
    if (!this._running) return;
    this._raf = requestAnimationFrame(() => this._tick());
    if (!this._queue.length) return;
    const now = this._now(this._clock ?? "page");
    let due = -1; // the newest frame whose time has come; older ones are skipped
    while (due + 1 < this._queue.length && this._queue[due + 1].at <= now) due++;
    if (due < 0) return;
    const skipped = this._queue.splice(0, due + 1);
    const frame = skipped.pop();
    for (const old of skipped) old.bitmap.close();
    if (this.canvas.width !== frame.bitmap.width) this.canvas.width = frame.bitmap.width;
    if (this.canvas.height !== frame.bitmap.height) this.canvas.height = frame.bitmap.height;
    this.draw2d.drawImage(frame.bitmap, 0, 0);
    frame.bitmap.close();
    const shownAt = performance.now();
    this.meter.tick(shownAt);
    this.onshow?.({ ...frame, bitmap: null, shownAt });
  }
}
