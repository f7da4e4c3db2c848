// REST helpers for the sonic-rt server, and the sentence a person reads for every error code.
//
// Every server error is JSON `{"error": {"code", "message"}}`; `ApiError` carries both, and
// `describe(code, message)` turns a code into a human sentence (unknown codes fall back to the
// server's own message).
//
// Where the server needs an API key (`authInfo()` says), the key set with `setApiKey` goes with
// every request as `Authorization: Bearer KEY` (the WebSocket sends it in its start message,
// ws.js); it is kept in sessionStorage: this tab only, gone when the tab closes.

/** A refusal from the server (or the browser) with a stable machine-readable `code`. */
export class ApiError extends Error {
  constructor(code, message, status = 0) {
    super(message || code);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
  }
}

const MESSAGES = {
  // portraits
  no_face: "No face found in that image. Try a clear, front-facing photo.",
  face_too_small: "The face in that image is too small. Use a photo where the face fills more of the picture.",
  face_cut_off: "The face is cut off by the edge of the image. Use a photo that shows the whole face.",
  unreadable_image: "That file could not be read as an image. Use a JPEG, PNG or WebP photo.",
  image_too_large: "That image is too large. Use a smaller photo (at most 50 MiB).",
  bad_portrait: "That image cannot be used as a portrait.",
  consent_required:
    "Please confirm that you have the right to use this face and that the person shown agreed to it being animated.",
  unknown_portrait: "The server does not know this portrait (it may have restarted). Choose or upload it again.",
  // sessions
  busy: "The server is full right now.",
  bad_params: "The server refused these settings.",
  bad_offer: "The server could not answer this browser's WebRTC offer.",
  audio_overflow: "Too much audio is waiting to be animated. Send it at real-time pace.",
  bad_audio_chunk: "The server could not read a piece of the audio sent to it.",
  bad_sample_rate: "The server cannot take audio at this sample rate.",
  bad_channel_count: "The server cannot take audio with this many channels.",
  empty_text: "There is nothing to say: type some text first.",
  unknown_voice: "The server has no such voice. Try en-us.",
  bad_speech_parameter: "The server cannot speak with these settings.",
  tts_unavailable: "Text to speech is not available on the server.",
  message_too_large: "That message is too large for the server (text is limited to 64 KiB).",
  internal: "The server failed on this session (the failure is logged there).",
  generator_lost: "The machine animating this face stopped.",
  // access
  unauthorized: "The server refused this API key: it is missing, unknown or revoked. Enter a valid key.",
  bad_origin:
    "The server does not accept requests from this page's address. Its operator can allow it with --allow-origin.",
  too_many_sessions: "This API key already has as many sessions running as it may.",
  quota_exceeded: "This API key has used all its minutes of video for today (more from midnight UTC).",
  disconnected: "The connection to the server was lost.",
  // the browser's side
  network: "Cannot reach the server. Check that it is running.",
  mic_denied: "Microphone access was refused. Allow the microphone for this page, or use a file or text.",
  unreadable_audio: "This browser could not decode that audio file. Try WAV, MP3, OGG or M4A.",
  no_webrtc: "This browser has no WebRTC.",
  connect_timeout: "WebRTC did not connect in time (a firewall or VPN may be blocking it).",
  connect_failed: "The WebRTC connection failed.",
};

/** The sentence to show for an error `code`; the server's `message` where no sentence is known. */
// fatal errors after which a new session may well work: the page starts one, as after a dropped connection
export const RESUMABLE = new Set(["generator_lost"]);

export function describe(code, message = "") {
  if (code in MESSAGES) {
    // a few codes carry details only the server knows ("dynamic_scale must be in [0, 2]")
    const detail = code === "bad_params" || code === "bad_offer" || code === "internal" ? message : "";
    return detail ? `${MESSAGES[code]} (${detail})` : MESSAGES[code];
  }
  return message || `The server reported an error (${code}).`;
}

const KEY_STORAGE = "sonic-rt-api-key";

/** The API key requests carry (null: none). */
export function getApiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

/** Keep `key` for this tab's requests (null: forget it). */
export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

function withKey(init, key = getApiKey()) {
  return key ? { ...init, headers: { ...init.headers, Authorization: `Bearer ${key}` } } : init;
}

/** fetch() with the API key, raising ApiError for network failures and for JSON error answers. */
async function request(url, init = {}, key = getApiKey()) {
  let response;
  try {
    response = await fetch(url, withKey(init, key));
  } catch (err) {
    throw new ApiError("network", err.message);
  }
  if (response.ok) return response;
  let code = `http_${response.status}`;
  let message = response.statusText;
  try {
    const body = await response.json();
    if (body?.error?.code) ({ code, message } = body.error);
  } catch {
    // not JSON: keep the HTTP status
  }
  throw new ApiError(code, message, response.status);
}

/**
 * Whether the server needs a key: `{auth: "api_key" | "none", principal?}`. With a key (`key`, else
 * the one kept) it also checks it: `principal` is whose it is, with its limits; a refused key throws
 * ApiError("unauthorized").
 */
export async function authInfo(key = getApiKey()) {
  return (await request("/v1/auth", {}, key)).json();
}

/** A resource that needs the key (a portrait's picture, a recording) as a blob: URL for the page. */
export async function blobUrl(url) {
  return URL.createObjectURL(await (await request(url)).blob());
}

/** The built-in sample portraits: `[{id, title, image}]`. */
export async function listSamples() {
  const response = await request("/v1/samples");
  return (await response.json()).samples;
}

/**
 * Enrol a portrait: either `{sample: "sample:astronaut"}` or `{file, consent}`.
 * Resolves to the server's answer `{id, size, faces, face_box, image, ...}`.
 */
export async function enrolPortrait({ sample = null, file = null, consent = false }) {
  const form = new FormData();
  if (sample) form.append("sample", sample);
  if (file) {
    form.append("image", file, file.name || "portrait");
    form.append("consent", consent ? "true" : "false");
  }
  const response = await request("/v1/portraits", { method: "POST", body: form });
  return response.json();
}

/** Where the enrolled crop of a portrait (the picture that is animated) can be fetched. */
export function portraitImageUrl(id) {
  return `/v1/portraits/${encodeURIComponent(id)}/image.jpg`;
}

/** WebRTC signalling: the browser's offer (ICE gathered) in, the server's answer out. */
export async function postOffer(body) {
  const response = await request("/v1/webrtc/offer", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return response.json();
}
