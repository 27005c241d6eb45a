// Before/after comparison: the whole image with a draggable divider, and a 1:1 view of the
// same spot in both. The divider and the 1:1 spot move with the pointer and with the keyboard.

const ZOOM_CSS_PX = 256; // the 1:1 views' edge on screen
const KEY_STEP_PERCENT = 1;
const KEY_STEP_PX = 16;
const KEY_BIG_STEP = 10; // with Shift
const DIVIDER_GRAB_PX = 16; // a press this close to the divider drags it

function clamp(value, low, high) {
  return Math.min(Math.max(value, low), high);
}

function loaded(image, url) {
  return new Promise((resolve, reject) => {
    image.onload = () => resolve();
    image.onerror = () => reject(new Error("the image could not be shown"));
    image.src = url;
  });
}

export class Comparison {
  /** `els`: the elements of the result panel, by role (see index.html). */
  constructor(els) {
    this.els = els;
    this.split = 50;
    this.centre = { x: 0, y: 0 };
    this.zoomOrigin = { x: 0, y: 0 };
    this.drag = null;
    els.compare.addEventListener("pointerdown", (event) => this.onPointerDown(event));
    els.compare.addEventListener("pointermove", (event) => this.onPointerMove(event));
    els.compare.addEventListener("pointerup", () => { this.drag = null; });
    els.compare.addEventListener("pointercancel", () => { this.drag = null; });
    els.divider.addEventListener("keydown", (event) => this.onDividerKey(event));
    els.zoom.addEventListener("keydown", (event) => this.onZoomKey(event));
    // the panel's width changes with the window and when a scrollbar comes or goes
    new ResizeObserver(() => this.layout()).observe(els.compare.parentElement);
  }

  get width() {
    return this.els.before.naturalWidth;
  }

  get height() {
    return this.els.before.naturalHeight;
  }

  /** Show the two images (object URLs); resolves once both are decoded. */
  async show(beforeUrl, afterUrl) {
    await Promise.all([loaded(this.els.before, beforeUrl), loaded(this.els.after, afterUrl)]);
    this.layout();
    this.setSplit(50);
    this.setCentre(this.width / 2, this.height / 2);
  }

  /** Fit the whole image to the panel's width and to 70% of the window's height. */
  layout() {
    if (!this.width) return;
    const panel = this.els.compare.parentElement;
    const style = getComputedStyle(panel);
    const available =
      panel.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const scale = Math.min(available / this.width, (0.7 * window.innerHeight) / this.height);
    this.els.compare.style.width = `${Math.floor(this.width * scale)}px`;
    this.els.compare.style.height = `${Math.floor(this.height * scale)}px`;
    this.placeMarker();
  }

  setSplit(percent) {
    this.split = clamp(percent, 0, 100);
    const rounded = Math.round(this.split);
    this.els.compare.style.setProperty("--split", `${this.split}%`);
    this.els.divider.setAttribute("aria-valuenow", String(rounded));
    this.els.divider.setAttribute("aria-valuetext", `${rounded}% before, ${100 - rounded}% after`);
  }

  /** Centre the 1:1 views on image pixel (x, y). */
  setCentre(x, y) {
    this.centre = { x: Math.round(clamp(x, 0, this.width)), y: Math.round(clamp(y, 0, this.height)) };
    this.drawZoom();
    this.placeMarker();
    this.els.zoomPosition.textContent =
      `1:1 view centred on pixel ${this.centre.x}, ${this.centre.y} of ${this.width} × ${this.height}`;
  }

  /** The side, in image pixels, of the square the 1:1 views show (device pixels: truly 1:1). */
  zoomSide() {
    return Math.round(ZOOM_CSS_PX * (window.devicePixelRatio || 1));
  }

  drawZoom() {
    const side = this.zoomSide();
    const x0 = clamp(this.centre.x - side / 2, 0, Math.max(this.width - side, 0));
    const y0 = clamp(this.centre.y - side / 2, 0, Math.max(this.height - side, 0));
    // an image smaller than the view sits in its middle
    const w = Math.min(side, this.width);
    const h = Math.min(side, this.height);
    const dx = Math.floor((side - w) / 2);
    const dy = Math.floor((side - h) / 2);
    for (const [canvas, image] of [[this.els.zoomBefore, this.els.before],
      [this.els.zoomAfter, this.els.after]]) {
      canvas.width = side;
      canvas.height = side;
      const context = canvas.getContext("2d");
      context.imageSmoothingEnabled = false;
      context.clearRect(0, 0, side, side);
      context.drawImage(image, x0, y0, w, h, dx, dy, w, h);
    }
    this.zoomOrigin = { x: x0, y: y0 };
  }

  placeMarker() {
    const marker = this.els.marker;
    const shown = this.els.before.getBoundingClientRect();
    if (!this.width || !shown.width) {
      marker.hidden = true;
      return;
    }
    const scale = shown.width / this.width;
    const side = this.zoomSide();
    marker.style.left = `${this.zoomOrigin.x * scale}px`;
    marker.style.top = `${this.zoomOrigin.y * scale}px`;
    marker.style.width = `${Math.min(side, this.width) * scale}px`;
    marker.style.height = `${Math.min(side, this.height) * scale}px`;
    marker.hidden = false;
  }

  /** Image pixel under a pointer event, and the divider position it means (percent). */
  locate(event) {
    const rect = this.els.compare.getBoundingClientRect();
    const fx = clamp((event.clientX - rect.left) / rect.width, 0, 1);
    const fy = clamp((event.clientY - rect.top) / rect.height, 0, 1);
    return { x: fx * this.width, y: fy * this.height, percent: fx * 100, rect };
  }

  onPointerDown(event) {
    if (event.button !== 0) return;
    const where = this.locate(event);
    const dividerX = where.rect.left + (where.rect.width * this.split) / 100;
    const onDivider = event.target === this.els.divider ||
      Math.abs(event.clientX - dividerX) <= DIVIDER_GRAB_PX;
    this.drag = onDivider ? "divider" : "spot";
    this.els.compare.setPointerCapture(event.pointerId);
    event.preventDefault();
    if (onDivider) {
      this.els.divider.focus();
    }
    this.onPointerMove(event);
  }

  onPointerMove(event) {
    if (!this.drag) return;
    const where = this.locate(event);
    if (this.drag === "divider") {
      this.setSplit(where.percent);
    } else {
      this.setCentre(where.x, where.y);
    }
  }

  onDividerKey(event) {
    const step = event.shiftKey ? KEY_BIG_STEP * KEY_STEP_PERCENT : KEY_STEP_PERCENT;
    const moves = {
      ArrowLeft: -step, ArrowDown: -step, ArrowRight: step, ArrowUp: step,
      PageDown: -10 * KEY_STEP_PERCENT, PageUp: 10 * KEY_STEP_PERCENT,
    };
    if (event.key in moves) {
      this.setSplit(this.split + moves[event.key]);
    } else if (event.key === "Home") {
      this.setSplit(0);
    } else if (event.key === "End") {
      this.setSplit(100);
    } else {
      return;
    }
    event.preventDefault();
  }

  onZoomKey(event) {
    const step = event.shiftKey ? KEY_BIG_STEP * KEY_STEP_PX : KEY_STEP_PX;
    const moves = {
      ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step],
    };
    if (!(event.key in moves)) return;
    const [dx, dy] = moves[event.key];
    this.setCentre(this.centre.x + dx, this.centre.y + dy);
    event.preventDefault();
  }
}
