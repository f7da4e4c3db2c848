// What the face listens to: the microphone, an audio file, or nothing (text is spoken by the server).
//
// The input is offered in the two shapes the transports need: a MediaStreamTrack (WebRTC sends it
// with `RTCRtpSender.replaceTrack`) and a Web Audio node (the WebSocket transport captures it with
// an AudioWorklet). A file is decoded by the browser (any format it plays) and played into a
// MediaStreamAudioDestinationNode, not to the speakers: what the user hears is the face speaking.

import { ApiError } from "./api.js";

let sharedContext = null;

/** The page's one AudioContext (created on first use; resumed, which a click allows). */
export async function audioContext() {
  sharedContext ??= new AudioContext({ latencyHint: "interactive" });
  if (sharedContext.state === "suspended") {
    // without a user gesture (or the autoplay flag) resume() never settles: do not wait forever
    await Promise.race([sharedContext.resume(), new Promise((resolve) => setTimeout(resolve, 500))]);
  }
  return sharedContext;
}

/** The current input: `kind` is "mic", "file" or "none"; `track` and `node` are null for "none". */
export class AudioInput {
  constructor(ctx) {
    this.ctx = ctx;
    this.kind = "none";
    this.track = null;
    this.node = null;
    this.onchange = null; // (input) => void, whenever kind/track/node change
    this.onfileend = null; // () => void, when a file has played to its end
    this._mic = null; // {stream, node}, kept once granted
    this._file = null; // the playing AudioBufferSourceNode
    this._fileOut = null; // MediaStreamAudioDestinationNode, one per page
  }

  /** Listen to the microphone (asks for permission the first time). */
  async useMicrophone() {
    if (!this._mic) {
      let stream;
      try {
        stream = await navigator.mediaDevices.getUserMedia({
          audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
        });
      } catch (err) {
        throw new ApiError("mic_denied", err.message);
      }
      this._mic = { stream, node: this.ctx.createMediaStreamSource(stream) };
    }
    this._stopFile();
    this._set("mic", this._mic.stream.getAudioTracks()[0], this._mic.node);
  }

  /** Decode `file` and play it into the session; resolves once it is playing. */
  async playFile(file) {
    let buffer;
    try {
      buffer = await this.ctx.decodeAudioData(await file.arrayBuffer());
    } catch (err) {
      throw new ApiError("unreadable_audio", err.message);
    }
    this._stopFile();
    this._fileOut ??= this.ctx.createMediaStreamDestination();
    const source = new AudioBufferSourceNode(this.ctx, { buffer });
    source.connect(this._fileOut);
    source.onended = () => {
      if (this._file !== source) return; // stopped or replaced
      this._file = null;
      this._set("none", null, null);
      this.onfileend?.();
    };
    this._file = source;
    source.start();
    this._set("file", this._fileOut.stream.getAudioTracks()[0], source);
  }

  /** Send nothing (the server fills in silence; text input is spoken by the server). */
  silence() {
    this._stopFile();
    this._set("none", null, null);
  }

  /** Stop a playing file (interrupt); the microphone, if chosen, stays. */
  stopFile() {
    if (this.kind === "file") this.silence();
  }

  close() {
    this.silence();
    for (const track of this._mic?.stream.getTracks() ?? []) track.stop();
    this._mic = null;
  }

  _stopFile() {
    const source = this._file;
    this._file = null;
    if (source) {
      source.onended = null;
      source.stop();
      source.disconnect();
    }
  }

  _set(kind, track, node) {
    this.kind = kind;
    this.track = track;
    this.node = node;
    this.onchange?.(this);
  }
}
