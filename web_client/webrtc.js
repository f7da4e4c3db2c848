// The WebRTC transport: the input audio goes up as an Opus track, the face and its speech come
// down as one stream played by a <video>, and a data channel carries control messages and events.
//
// Every transport (this one and ws.js) has the same shape:
//   new Transport({portrait, params, record, label, onevent, ondrop, ...elements})
//   await start()        connected; throws ApiError (busy, bad_offer, unknown_portrait, ...)
//   setInput(input)      an AudioInput: what the face listens to
//   send(message)        a control message (say, flush, interrupt, params)
//   figures()            {fps, latencyMs, latencyKind}: measured in the page
//   close()              the user's stop: no `ondrop` after it
// `ondrop(reason, reconnect)` reports an end the user did not ask for, once; the session then
// reconnects (or, where `reconnect` is false because the server ended it on purpose, stops).

import { Timers } from "./timers.js";
import { ApiError, RESUMABLE, postOffer } from "./api.js";
import { OnsetLatency, RateMeter } from "./meters.js";

const ICE_GATHER_TIMEOUT_MS = 3000; // loopback and LAN candidates come in milliseconds
const CONNECT_TIMEOUT_MS = 8000; // not connected by then: the session falls back to WebSocket
const DISCONNECTED_GRACE_MS = 2000; // "disconnected" often recovers by itself; longer is a drop
const STATS_EVERY_MS = 1000;
const PACKET_MS = 20; // one Opus packet each way

export class WebRtcTransport {
  name = "webrtc";

  constructor({ portrait, params, record, label, viseme_events, video, ctx, onevent, ondrop }) {
    this.request = { portrait, params, record, label, viseme_events };
    this.video = video;
    this.ctx = ctx;
    this.onsets = null; // measured latency: speech onsets sent vs received, once connected
    this._sentTrack = null;
    this._receivedTracks = [];
    this.onevent = onevent;
    this.ondrop = ondrop;
    this.pc = null;
    this.channel = null;
    this.sender = null;
    this.session = null;
    this.modelLatencyMs = null; // from `ready`
    this.inputLatencyMs = 0; // the server's receive buffer for the audio we send, from `ready`
    this.queuedMs = 0; // the server's audio waiting to be sent, from `stats`
    this.sending = false; // whether the page sends audio (microphone, file)
    this.meter = new RateMeter();
    this.estimate = { jitterMs: null, rttMs: null };
    this._lastJitter = {}; // by kind, {delay, count}: getStats() totals at the previous poll
    this._timers = new Timers();
    this._started = false; // failures before this are start()'s to throw, not drops
    this._closing = false;
    this._dropped = false;
    this._fatal = false; // the server sent a fatal error (quota_exceeded): the end that follows is on purpose
  }

  static available() {
    return typeof RTCPeerConnection === "function";
  }

  async start(input) {
    if (!WebRtcTransport.available()) throw new ApiError("no_webrtc");
    const pc = (this.pc = new RTCPeerConnection({ iceServers: [] }));
    try {
      this.channel = pc.createDataChannel("control");
      this.channel.onmessage = (e) => this._onEvent(JSON.parse(e.data));
      this.channel.onclose = () => this._drop("the control channel closed");
      // one audio sender, whatever the input: replaceTrack() switches it without renegotiating
      this.sender = pc.addTransceiver("audio", { direction: "sendrecv" }).sender;
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.ontrack = (e) => this._play(e);
      pc.onconnectionstatechange = () => this._onConnectionState();
      await this.setInput(input);

      await pc.setLocalDescription(await pc.createOffer());
      await iceGathered(pc); // the server does not trickle: the offer carries every candidate
      const answer = await postOffer({ sdp: pc.localDescription.sdp, type: "offer", ...this.request });
      this.session = answer.session;
      await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
      await this._connected();
      // timed from now on: audio from before the connection never reached the server
      this.onsets = new OnsetLatency(this.ctx);
      this.onsets.watchSent(this._sentTrack);
      this.onsets.watchReceived(this._receivedTracks);
    } catch (err) {
      this._teardown();
      throw err;
    }
    this._started = true;
    this._watchFrames();
    this._every(STATS_EVERY_MS, () => this._pollStats());
  }

  async setInput(input) {
    this.sending = Boolean(input?.track);
    this._sentTrack = input?.track ?? null;
    this.onsets?.watchSent(this._sentTrack);
    // the microphone's own track (echo cancelled), a playing file's track, or nothing;
    // replaceTrack only fails once the connection is closed, when there is nothing to send to
    await this.sender?.replaceTrack(input?.track ?? null).catch(() => {});
  }

  send(message) {
    if (this.channel?.readyState === "open") this.channel.send(JSON.stringify(message));
  }

  /**
   * Latency measured where the page sends audio and speech has started and come back since
   * (speech onsets in the sent audio against the face's voice; the video is held in step with
   * it); otherwise an estimate: the model + the server's receive buffer and send queue + the
   * Opus packets + Chrome's audio jitter buffer + half the round trip.
   */
  figures() {
    const { jitterMs, rttMs } = this.estimate;
    const fps = this.meter.rate();
    const measured = this.sending ? this.onsets?.value() : null;
    if (measured !== null && measured !== undefined) {
      return { fps, latencyMs: measured, latencyKind: "measured", detail: { onsets: [...this.onsets.meter.values] } };
    }
    const upstream = this.sending ? this.inputLatencyMs + PACKET_MS : 0;
    const parts = [this.modelLatencyMs, upstream + this.queuedMs + PACKET_MS, jitterMs, rttMs === null ? null : rttMs / 2];
    const latencyMs = parts.some((x) => x === null) ? null : parts.reduce((a, b) => a + b, 0);
    const detail = { modelMs: this.modelLatencyMs, transportMs: parts[1], ...this.estimate };
    return { fps, latencyMs, latencyKind: "estimate", detail };
  }

  async close() {
    this._closing = true;
    this.send({ type: "stop" });
    // give the stop message a moment to leave before the connection goes
    await new Promise((resolve) => setTimeout(resolve, 100));
    this._teardown();
  }

  _onEvent(event) {
    if (event.type === "ready") {
      this.modelLatencyMs = event.latency_ms;
      this.inputLatencyMs = event.input_latency_ms ?? 0;
    } else if (event.type === "stats") this.queuedMs = event.audio_queued_ms ?? 0;
    else if (event.type === "error" && event.fatal && !RESUMABLE.has(event.code)) this._fatal = true;
    this.onevent(event);
  }

  _play(event) {
    const stream = event.streams[0] ?? new MediaStream([event.track]);
    if (this.video.srcObject !== stream) this.video.srcObject = stream;
    if (event.track.kind === "audio") {
      this._receivedTracks = [event.track];
      this.onsets?.watchReceived(this._receivedTracks);
    }
    this.video.muted = false; // its audio is the face's speech
    this.video.play().catch(() => {
      // autoplay with sound refused (no user gesture yet): play muted rather than not at all
      this.video.muted = true;
      this.video.play().catch(() => {});
    });
  }

  _connected() {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.pc.connectionState === "connected" && this.channel.readyState === "open") done(resolve);
        else if (this.pc.connectionState === "failed") done(() => reject(new ApiError("connect_failed")));
      };
      const timer = setTimeout(() => done(() => reject(new ApiError("connect_timeout"))), CONNECT_TIMEOUT_MS);
      const done = (settle) => {
        clearTimeout(timer);
        this.pc.removeEventListener("connectionstatechange", check);
        this.channel.removeEventListener("open", check);
        settle();
      };
      this.pc.addEventListener("connectionstatechange", check);
      this.channel.addEventListener("open", check);
      check();
    });
  }

  _onConnectionState() {
    const state = this.pc?.connectionState;
    if (state === "failed" || state === "closed") this._drop(`the WebRTC connection ${state}`);
    else if (state === "disconnected") {
      this._timers.after(DISCONNECTED_GRACE_MS, () => {
        if (this.pc?.connectionState === "disconnected") this._drop("the WebRTC connection was lost");
      });
    }
  }

  _watchFrames() {
    if (!("requestVideoFrameCallback" in HTMLVideoElement.prototype)) return;
    let last = null;
    const onFrame = (now, meta) => {
      if (this.pc === null) return;
      // presentedFrames counts frames the callback did not see (it fires at most once a paint)
      if (last !== null) this.meter.tick(now, Math.max(0, meta.presentedFrames - last));
      last = meta.presentedFrames;
      this.video.requestVideoFrameCallback(onFrame);
    };
    this.video.requestVideoFrameCallback(onFrame);
  }

  async _pollStats() {
    if (!this.pc) return;
    const reports = [...(await this.pc.getStats()).values()];
    // Chrome plays video in step with the audio: the longer of the two jitter buffers is the one that counts
    const delays = [];
    for (const kind of ["audio", "video"]) {
      const r = reports.find((x) => x.type === "inbound-rtp" && x.kind === kind);
      if (!r?.jitterBufferEmittedCount) continue;
      const now = { delay: r.jitterBufferDelay, count: r.jitterBufferEmittedCount };
      const last = this._lastJitter[kind];
      if (last && now.count > last.count) delays.push(((now.delay - last.delay) / (now.count - last.count)) * 1000);
      this._lastJitter[kind] = now;
    }
    if (delays.length) this.estimate.jitterMs = Math.max(...delays);
    const transport = reports.find((r) => r.type === "transport" && r.selectedCandidatePairId);
    const pair =
      reports.find((r) => r.id === transport?.selectedCandidatePairId) ??
      reports.find((r) => r.type === "candidate-pair" && r.nominated && r.state === "succeeded");
    if (pair?.currentRoundTripTime !== undefined) this.estimate.rttMs = pair.currentRoundTripTime * 1000;
  }

  _drop(reason) {
    if (!this._started || this._closing || this._dropped || this.pc === null) return;
    this._dropped = true;
    this._teardown();
    this.ondrop(reason, !this._fatal);
  }

  _teardown() {
    this.onsets?.close();
    this._timers.cancel();
    if (this.channel) this.channel.onclose = this.channel.onmessage = null;
    if (this.pc) {
      this.pc.onconnectionstatechange = this.pc.ontrack = null;
      this.pc.close();
    }
    this.pc = null;
    this.video.srcObject = null;
  }


  _every(ms, work) {
    this._timers.after(ms, async () => {
      if (this.pc === null) return;
      await work().catch(() => {}); // a figure missing for a second is not worth an error
      this._every(ms, work);
    });
  }
}

/** Resolves when the browser has gathered its ICE candidates (or after a short time limit). */
function iceGathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    const timer = setTimeout(done, ICE_GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", check);
  });
}
