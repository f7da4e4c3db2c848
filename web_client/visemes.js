// The viseme stream as bars: the 15 Oculus/OVR visemes the server sends per frame (`visemes`
// events, asked for with `viseme_events`), the vocabulary 3-D avatars animate. Over WebSocket a
// frame's weights are shown when the page draws that frame; over WebRTC (the page cannot tell
// which frame the video element shows) when they arrive.

export const NAMES = ["sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou"];
const KEEP_FRAMES = 250; // weights of frames not yet shown, at most (10 s)

export class VisemeBars {
  constructor(container) {
    this.container = container;
    this.bars = new Map();
    this.pending = new Map(); // frame index -> weights, until the frame is shown
    for (const name of NAMES) {
      const row = document.createElement("div");
      row.className = "viseme";
      const label = document.createElement("span");
      label.textContent = name;
      const bar = document.createElement("meter");
      Object.assign(bar, { min: 0, max: 1, value: name === "sil" ? 1 : 0 });
      bar.setAttribute("aria-label", `viseme ${name}`);
      bar.dataset.viseme = name;
      row.append(label, bar);
      container.append(row);
      this.bars.set(name, bar);
    }
  }

  /** A `visemes` event: shown now (`now`) or kept until its frame is shown. */
  add(event, now) {
    if (now) {
      this.show(event.weights);
      return;
    }
    this.pending.set(event.frame, event.weights);
    if (this.pending.size > KEEP_FRAMES) this.pending.delete(this.pending.keys().next().value);
  }

  /** Frame `index` is on screen: show its weights. */
  shown(index) {
    const weights = this.pending.get(index);
    if (weights === undefined) return;
    for (const key of this.pending.keys()) {
      if (key > index) break;
      this.pending.delete(key);
    }
    this.show(weights);
  }

  show(weights) {
    let top = null;
    for (const [name, bar] of this.bars) {
      bar.value = weights[name] ?? 0;
      if (top === null || bar.value > top.value) top = bar;
    }
    this.container.dataset.top = top?.dataset.viseme ?? "";
  }

  clear() {
    this.pending.clear();
    this.show({ sil: 1 });
  }
}
