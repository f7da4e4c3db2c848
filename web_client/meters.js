// Small measuring instruments for the figures on screen.

const WINDOW_MS = 1000;

/** Frames per second over the last second, from the times frames were shown. */
export class RateMeter {
  constructor(windowMs = WINDOW_MS) {
    this.windowMs = windowMs;
    this.times = [];
    this.count = 0; // frames counted since creation
  }

  tick(now = performance.now(), frames = 1) {
    for (let i = 0; i < frames; i++) this.times.push(now);
    this.count += frames;
    this._trim(now);
  }

  /** Frames per second over the window, or null before half a window's worth of frames. */
  rate(now = performance.now()) {
    this._trim(now);
    const n = this.times.length;
    if (n < 2 || now - this.times[0] < this.windowMs / 2) return null;
    return ((n - 1) * 1000) / (this.times[n - 1] - this.times[0]);
  }

  _trim(now) {
    while (this.times.length && this.times[0] <= now - this.windowMs) this.times.shift();
  }
}

/** A value that jumps around from frame to frame (latency), shown as the median of the last ones. */
export class MedianMeter {
  constructor(size = 25) {
    this.size = size;
    this.values = [];
  }

  push(value) {
    this.values.push(value);
    if (this.values.length > this.size) this.values.shift();
  }

  clear() {
    this.values = [];
  }

  value() {
    if (!this.values.length) return null;
    const sorted = [...this.values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }
}

const ONSET_LOUD = 0.02; // RMS of a 512-sample window that counts as sound
const ONSET_QUIET_MS = 800; // this long below it before a sound counts as an onset
const ONSET_WITHIN_MS = 2000; // a received onset this long after a sent one answers it
const ONSET_POLL_MS = 4;

/**
 * Latency measured on the audio itself: the moment speech starts in what the page sends, and the
 * moment it starts in the face's voice that comes back (Chrome holds the video in step with that
 * voice). Works for anything the page sends (a microphone, a file); one value per utterance.
 */
export class OnsetLatency {
  constructor(ctx) {
    this.ctx = ctx;
    this.meter = new MedianMeter(5);
    this._levels = { sent: null, received: null };
    this._lastLoud = { sent: -Infinity, received: -Infinity };
    this._pending = []; // sent onsets not answered yet
    this._timer = setInterval(() => this._poll(), ONSET_POLL_MS);
  }

  /** The track the page sends (null: none, e.g. text input). */
  watchSent(track) {
    this._levels.sent = track ? level(this.ctx, [track]) : null;
    this._lastLoud.sent = performance.now(); // a sound already going when watching starts is no onset
  }

  /** The audio tracks the page receives. */
  watchReceived(tracks) {
    this._levels.received = tracks.length ? level(this.ctx, tracks) : null;
    this._lastLoud.received = performance.now();
  }

  value() {
    return this.meter.value();
  }

  close() {
    clearInterval(this._timer);
  }

  _poll() {
    const now = performance.now();
    for (const name of ["sent", "received"]) {
      const rms = this._levels[name]?.();
      if (rms === undefined || rms < ONSET_LOUD) continue;
      if (now - this._lastLoud[name] > ONSET_QUIET_MS) this._onset(name, now);
      this._lastLoud[name] = now;
    }
  }

  _onset(name, now) {
    this._pending = this._pending.filter((t) => now - t < ONSET_WITHIN_MS);
    if (name === "sent") this._pending.push(now);
    else if (this._pending.length) this.meter.push(now - this._pending.shift());
  }
}

/** A function that returns the RMS of the last 512 samples of `tracks`. */
function level(ctx, tracks) {
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  ctx.createMediaStreamSource(new MediaStream(tracks)).connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  return () => {
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    return Math.sqrt(sum / buf.length);
  };
}
