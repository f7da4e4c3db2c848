// AudioWorklet for the WebSocket transport: collects the input (microphone or a playing file) as
// mono float32 and posts it to the page in chunks of `chunkSize` samples (20 ms by default),
// which the page sends as `f32le` at the AudioContext's sample rate.

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.chunkSize = options.processorOptions?.chunkSize ?? Math.round(sampleRate / 50);
    this.chunk = new Float32Array(this.chunkSize);
    this.filled = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true; // nothing connected: nothing to send
    const frames = channels[0].length;
    for (let i = 0; i < frames; i++) {
      let sum = 0;
      for (const channel of channels) sum += channel[i];
      this.chunk[this.filled++] = sum / channels.length; // down-mix to mono
      if (this.filled === this.chunkSize) {
        this.port.postMessage(this.chunk, [this.chunk.buffer]);
        this.chunk = new Float32Array(this.chunkSize);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("capture", CaptureProcessor);
