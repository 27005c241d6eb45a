// The gateway's HTTP API as the page uses it: this tab's API key, and errors in plain words.

const KEY_STORAGE = "swintormer.apiKey";

/** The API key of this tab (sessionStorage: forgotten when the tab closes), or null. */
export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function setApiKey(key) {
  if (key) {
    sessionStorage.setItem(KEY_STORAGE, key);
  } else {
    sessionStorage.removeItem(KEY_STORAGE);
  }
}

/** An error answer of the gateway: `{error: {code, message}}` and its status. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfterS = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterS = retryAfterS;
  }
}

/** fetch() with the API key; resolves to the Response when it is 2xx, else throws ApiError. */
export async function request(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = apiKey();
  if (key) {
    headers.set("X-API-Key", key);
  }
  let response;
  try {
    response = await fetch(path, { ...options, headers, cache: "no-store" });
  } catch (error) {
    if (error.name === "AbortError") {
      throw error;
    }
    throw new ApiError(0, "network", "the server could not be reached");
  }
  if (!response.ok) {
    throw await errorOf(response);
  }
  return response;
}

async function errorOf(response) {
  let code = `http_${response.status}`;
  let message = response.statusText || "no message";
  try {
    const body = await response.json();
    code = body.error.code;
    message = body.error.message;
  } catch {
    // not the API's JSON error shape (a proxy in between): keep the status line
  }
  const retryAfter = Number.parseInt(response.headers.get("Retry-After") || "", 10);
  return new ApiError(response.status, code, message, Number.isNaN(retryAfter) ? null : retryAfter);
}

/** "64 MB", "1.2 MB", "850 KB" (decimal units, as file managers show them). */
export function formatBytes(bytes) {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${Math.round(bytes / 1e3)} KB`;
  return `${bytes} bytes`;
}

function retryIn(error) {
  return error.retryAfterS === null ? "in a moment" : `in ${error.retryAfterS} seconds`;
}

/**
 * What went wrong, for people. `limits` is the body of GET /client-settings.
 * The gateway's own message follows in `detail` (shown beside it, smaller).
 */
export function plainWords(error, limits) {
  const megapixels = limits ? `${Math.floor(limits.max_pixels / 1e6)} megapixels` : "its limit";
  const size = limits ? formatBytes(limits.max_upload_bytes) : "its limit";
  const words = {
    network: "The server could not be reached. Check the connection and try again.",
    invalid_image: "The server could not read this image: the file seems damaged or incomplete.",
    payload_too_large: `This file is too large: the server accepts files up to ${size}.`,
    too_many_pixels: `This image has too many pixels: the server accepts up to ${megapixels}.`,
    unsupported_media_type: "This kind of file is not accepted: choose a PNG, JPEG, WebP, TIFF or HEIC image.",
    unsupported_bit_depth:
      "16-bit colour PNGs are not accepted (they would silently lose precision). " +
      "Save the photo as an 8-bit PNG or a JPEG and try again.",
    queue_full: `The server is busy: its queue is full. Try again ${retryIn(error)}.`,
    redis_unavailable: `The server is briefly unavailable. Try again ${retryIn(error)}.`,
    unauthorized: "This server needs an API key.",
    forbidden: "The API key was not accepted. Check it and enter it again.",
    invalid_options: "The server refused an option.",
    job_not_found: "The server does not know this job (it may have been restarted).",
    job_expired: "The job and its result are no longer kept on the server.",
  };
  const text = words[error.code] ||
    (error.status === 503 ? `The server is unavailable. Try again ${retryIn(error)}.` :
      "Something went wrong on the server.");
  return { text, detail: error.message };
}

/** Why a job failed (its `error.code`), for people. */
export function failureWords(code) {
  const words = {
    invalid_image: "The server could not read this image: the file seems damaged or incomplete.",
    too_many_pixels: "This image has too many pixels for the server.",
    unsupported_media_type: "This kind of file is not accepted: choose a PNG, JPEG, WebP, TIFF or HEIC image.",
    unsupported_bit_depth: "16-bit colour PNGs are not accepted.",
    input_expired: "The photo waited too long in the queue and was dropped. Please send it again.",
    out_of_memory: "The server ran out of memory on this image, even in small pieces.",
    timeout: "Restoring this image took longer than the server allows.",
    canceled: "Canceled.",
    worker_lost: "The server restoring this image stopped, on every attempt.",
  };
  return words[code] || "The server failed to restore this image.";
}

/** The file name of a Content-Disposition header (`inline; filename="x.png"`), or null. */
export function fileNameOf(disposition) {
  const match = /filename="([^"]+)"/.exec(disposition || "");
  return match ? match[1] : null;
}
