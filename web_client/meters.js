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
