// The page: choose a photo, send it, follow the job, compare before and after, download.
// Everything it loads comes from this gateway (no CDN, no build step); the API is the same
// one curl uses (docs/service.md).

import {
  ApiError, apiKey, failureWords, fileNameOf, formatBytes, plainWords, request, setApiKey,
} from "./api.js";
import { checkFile } from "./checks.js";
import { Comparison } from "./compare.js";
import { drawOverlay, scaleTopPx } from "./overlay.js";

const LONG_POLL_S = 10;
const TERMINAL = new Set(["succeeded", "failed", "canceled", "expired"]);

const $ = (id) => document.getElementById(id);
const els = {
  keyPanel: $("key-panel"), keyForm: $("key-form"), keyInput: $("key-input"),
  keyMessage: $("key-message"),
  dropZone: $("drop-zone"), fileInput: $("file-input"), fileInfo: $("file-info"),
  limits: $("limits"), optionsForm: $("options-form"), qualityLabel: $("quality-label"),
  quality: $("quality"), selfEnsemble: $("self-ensemble"), start: $("start"),
  refineBlur: $("refine-blur"), refineBlurLabel: $("refine-blur-label"),
  uploadMessage: $("upload-message"),
  jobPanel: $("job-panel"), jobStatus: $("job-status"), jobProgress: $("job-progress"),
  cancel: $("cancel"), jobMessage: $("job-message"),
  resultPanel: $("result-panel"), blurSummary: $("blur-summary"), download: $("download"),
  overlayToggleLabel: $("overlay-toggle-label"), overlayToggle: $("overlay-toggle"),
  overlayLegend: $("overlay-legend"), overlay: $("overlay"), again: $("again"),
};
const comparison = new Comparison({
  compare: $("compare"), before: $("before-image"), after: $("after-image"),
  divider: $("divider"), marker: $("zoom-marker"), zoom: $("zoom"),
  zoomBefore: $("zoom-before"), zoomAfter: $("zoom-after"), zoomPosition: $("zoom-position"),
});

const state = { limits: null, file: null, jobId: null, urls: [], polling: null };

/** The page's state for people (aria-live) and for tests (data-state on <body>). */
function setState(name) {
  document.body.dataset.state = name;
}

function showError(element, error) {
  element.replaceChildren();
  if (!error) return;
  if (typeof error === "string") {
    element.textContent = error;
    return;
  }
  const words = plainWords(error, state.limits);
  const detail = document.createElement("small");
  detail.className = "detail";
  detail.textContent = ` (server: ${words.detail})`;
  element.append(words.text, detail);
  if (error.code === "unauthorized" || error.code === "forbidden") {
    askForKey(words.text);
  }
}

function askForKey(message) {
  setApiKey(null);
  els.keyPanel.hidden = false;
  els.keyMessage.textContent = message || "";
  els.keyInput.focus();
}

function objectUrl(blob) {
  const url = URL.createObjectURL(blob);
  state.urls.push(url);
  return url;
}

async function loadLimits() {
  try {
    state.limits = await (await request("/client-settings")).json();
  } catch (error) {
    showError(els.uploadMessage, error);
    return;
  }
  const megapixels = Math.floor(state.limits.max_pixels / 1e6);
  els.limits.textContent =
    `Up to ${formatBytes(state.limits.max_upload_bytes)} and ${megapixels} megapixels.`;
  offerPasses(state.limits.self_ensemble_sizes, state.limits.self_ensemble);
  els.refineBlurLabel.hidden = !state.limits.refine_blur_available;
  els.refineBlur.checked = state.limits.refine_blur;
  if (state.limits.api_key_required && !apiKey()) {
    askForKey("");
  }
}

/** The self-ensemble sizes this server allows, its own default selected. */
function offerPasses(sizes, chosen) {
  els.selfEnsemble.replaceChildren(...sizes.map((size) => {
    const option = document.createElement("option");
    option.value = String(size);
    option.textContent = size === 1 ? "1 (fastest)" : `${size} (about ${size}x the time)`;
    option.selected = size === chosen;
    return option;
  }));
}

async function choose(file) {
  state.file = null;
  els.start.disabled = true;
  showError(els.uploadMessage, null);
  if (!file) return;
  if (!state.limits) {
    showError(els.uploadMessage, "The server's limits are not known yet; try again in a moment.");
    return;
  }
  const checked = await checkFile(file, state.limits);
  const size = checked.width ? `, ${checked.width} × ${checked.height} px` : "";
  els.fileInfo.textContent = `${file.name}: ${formatBytes(file.size)}${size}`;
  if (!checked.ok) {
    showError(els.uploadMessage, checked.problem);
    setState("refused");
    return;
  }
  state.file = file;
  els.start.disabled = false;
  setState("chosen");
}

async function submit(event) {
  event.preventDefault();
  if (!state.file) return;
  if (state.limits && state.limits.api_key_required && !apiKey()) {
    askForKey("Enter the API key first.");
    return;
  }
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  const format = new FormData(els.optionsForm).get("output_format");
  form.append("output_format", format);
  if (format !== "png") {
    form.append("quality", els.quality.value);
  }
  form.append("self_ensemble", els.selfEnsemble.value);
  if (state.limits.refine_blur_available) {
    form.append("refine_blur", els.refineBlur.checked ? "true" : "false");
  }
  els.start.disabled = true;
  showError(els.uploadMessage, null);
  setState("uploading");
  let accepted;
  try {
    accepted = await (await request("/deblur", { method: "POST", body: form })).json();
  } catch (error) {
    showError(els.uploadMessage, error);
    els.start.disabled = false;
    setState("refused");
    return;
  }
  state.jobId = accepted.id;
  document.body.dataset.jobId = accepted.id;
  els.jobPanel.hidden = false;
  els.cancel.disabled = false;
  showError(els.jobMessage, null);
  showJob(accepted);
  follow(accepted.id);
}

function showJob(view) {
  const progress = view.progress || { done: 0, total: 0 };
  if (view.status === "queued") {
    const ahead = view.queue_position;
    els.jobStatus.textContent = ahead === null || ahead === undefined ? "Queued." :
      `Queued: ${ahead === 0 ? "next in line" : `${ahead} job${ahead === 1 ? "" : "s"} ahead`}.`;
    els.jobProgress.removeAttribute("value");
  } else if (view.status === "running") {
    els.jobStatus.textContent = progress.total ?
      `Restoring: ${progress.done} of ${progress.total} tiles.` : "Restoring: planning the tiles.";
    els.jobProgress.max = Math.max(progress.total, 1);
    els.jobProgress.value = progress.done;
  } else if (view.status === "succeeded") {
    els.jobStatus.textContent = `Done: ${progress.done} of ${progress.total} tiles.`;
    els.jobProgress.max = Math.max(progress.total, 1);
    els.jobProgress.value = progress.total;
  } else if (view.status === "failed") {
    els.jobStatus.textContent = "Failed.";
    showError(els.jobMessage, `${failureWords(view.error && view.error.code)}` +
      (view.error ? ` (server: ${view.error.message})` : ""));
  } else if (view.status === "canceled") {
    els.jobStatus.textContent = "Canceled.";
  } else if (view.status === "expired") {
    els.jobStatus.textContent = "This job is no longer kept on the server.";
  }
  setState(view.status);
}

/** Long-poll the job until it ends; each answer comes as soon as something changed. */
async function follow(jobId) {
  const controller = new AbortController();
  state.polling = controller;
  const wait = Math.min(LONG_POLL_S, state.limits ? state.limits.max_wait_s : LONG_POLL_S);
  let view = null;
  while (state.jobId === jobId && !controller.signal.aborted) {
    try {
      const response = await request(`/jobs/${jobId}?wait=${wait}`, { signal: controller.signal });
      view = await response.json();
    } catch (error) {
      if (error.name === "AbortError") return;
      showError(els.jobMessage, error);
      if (error instanceof ApiError && (error.status === 0 || error.status >= 500)) {
        await new Promise((resolve) => setTimeout(resolve, 1000 * (error.retryAfterS || 2)));
        continue;
      }
      return;
    }
    showError(els.jobMessage, null);
    showJob(view);
    if (TERMINAL.has(view.status)) break;
  }
  els.cancel.disabled = true;
  if (view && view.status === "succeeded" && state.jobId === jobId) {
    await showResult(view);
  }
}

async function cancel() {
  if (!state.jobId) return;
  els.cancel.disabled = true;
  try {
    showJob(await (await request(`/jobs/${state.jobId}`, { method: "DELETE" })).json());
  } catch (error) {
    showError(els.jobMessage, error);
  }
}

async function showResult(view) {
  let response;
  try {
    response = await request(view.result_url);
  } catch (error) {
    showError(els.jobMessage, error);
    return;
  }
  const name = fileNameOf(response.headers.get("Content-Disposition")) || "deblurred";
  const afterUrl = objectUrl(await response.blob());
  els.download.href = afterUrl;
  els.download.download = name;
  els.download.textContent = `Download ${name}`;
  els.resultPanel.hidden = false;
  try {
    await comparison.show(objectUrl(state.file), afterUrl);
  } catch (error) {
    showError(els.jobMessage, `${error.message}; the download still works.`);
  }
  await showBlur(view);
  setState("shown");
  els.resultPanel.scrollIntoView({ block: "start" });
}

async function showBlur(view) {
  const blur = view.blur;
  els.blurSummary.hidden = !blur;
  els.overlayToggleLabel.hidden = !blur;
  els.overlayToggle.checked = false;
  els.overlay.hidden = true;
  els.overlayLegend.hidden = true;
  if (!blur) return;
  const percent = Math.round(100 * blur.in_focus_fraction);
  els.blurSummary.textContent = `Estimated blur: median radius ${blur.median_radius_px.toFixed(1)} px, ` +
    `90% of the image under ${blur.p90_radius_px.toFixed(1)} px; ${percent}% in focus ` +
    `(radius under ${blur.in_focus_below_px} px).`;
  const top = scaleTopPx(blur);
  const bar = document.createElement("span");
  bar.className = "legend-bar";
  els.overlayLegend.replaceChildren("in focus", bar, `${top} px or more`);
  try {
    const map = await (await request(view.defocus_map_url)).blob();
    await drawOverlay(els.overlay, map, top);
  } catch (error) {
    els.overlayToggleLabel.hidden = true;
    showError(els.jobMessage, error instanceof ApiError ? error : "The blur map could not be shown.");
  }
}

function reset() {
  if (state.polling) state.polling.abort();
  for (const url of state.urls) URL.revokeObjectURL(url);
  Object.assign(state, { file: null, jobId: null, urls: [], polling: null });
  delete document.body.dataset.jobId;
  els.fileInput.value = "";
  els.fileInfo.textContent = "";
  els.start.disabled = true;
  els.jobPanel.hidden = true;
  els.resultPanel.hidden = true;
  showError(els.uploadMessage, null);
  showError(els.jobMessage, null);
  setState("idle");
  els.dropZone.focus();
}

function wire() {
  els.fileInput.addEventListener("change", () => choose(els.fileInput.files[0]));
  els.dropZone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      els.fileInput.click();
    }
  });
  for (const name of ["dragenter", "dragover"]) {
    els.dropZone.addEventListener(name, (event) => {
      event.preventDefault();
      els.dropZone.classList.add("dragging");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    els.dropZone.addEventListener(name, () => els.dropZone.classList.remove("dragging"));
  }
  els.dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    choose(event.dataTransfer.files[0]);
  });
  // a photo dropped anywhere else must not make the browser navigate away to it
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  els.optionsForm.addEventListener("change", () => {
    els.qualityLabel.hidden = new FormData(els.optionsForm).get("output_format") === "png";
  });
  els.optionsForm.addEventListener("submit", submit);
  els.cancel.addEventListener("click", cancel);
  els.again.addEventListener("click", reset);
  els.overlayToggle.addEventListener("change", () => {
    els.overlay.hidden = !els.overlayToggle.checked;
    els.overlayLegend.hidden = !els.overlayToggle.checked;
  });
  els.keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey(els.keyInput.value.trim());
    els.keyInput.value = "";
    els.keyMessage.textContent = "";
    els.keyPanel.hidden = true;
    showError(els.uploadMessage, null);
    els.start.disabled = !state.file;
    (state.file ? els.start : els.dropZone).focus();
  });
}

wire();
setState("idle");
loadLimits();
