// The estimated defocus map over the comparison: radius in pixels as colour, in focus clear.
//
// The map is the gateway's 16-bit grey PNG (GET /jobs/{id}/defocus-map, grey level / 1000 =
// radius in px). A canvas holds 8 bits a channel, so the browser hands each pixel over as
// level / 257: one 8-bit step is 0.257 px of radius, fine enough for a colour overlay.

const PX_PER_8BIT_LEVEL = 257 * 0.001;
const IN_FOCUS_PX = 0.5; // clear below this, as the job status counts "in focus"
// colour stops from small to large blur (the legend's gradient in style.css matches)
const STOPS = [
  [0.0, [59, 130, 246]],
  [0.33, [34, 197, 94]],
  [0.66, [234, 179, 8]],
  [1.0, [239, 68, 68]],
];

function colourAt(t) {
  for (let i = 1; i < STOPS.length; i += 1) {
    const [t1, c1] = STOPS[i];
    const [t0, c0] = STOPS[i - 1];
    if (t <= t1) {
      const f = (t - t0) / (t1 - t0);
      return c0.map((channel, k) => Math.round(channel + f * (c1[k] - channel)));
    }
  }
  return STOPS[STOPS.length - 1][1];
}

/** The colour scale's top for this job's blur summary (px): a round number above its p90. */
export function scaleTopPx(blur) {
  return Math.max(1, Math.ceil(blur.p90_radius_px * 1.25));
}

/** Draw the defocus map (a PNG Blob) as colours on `canvas`, radii from 0 to `topPx`. */
export async function drawOverlay(canvas, mapBlob, topPx) {
  const bitmap = await createImageBitmap(mapBlob, { colorSpaceConversion: "none" });
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
  const data = pixels.data;
  for (let i = 0; i < data.length; i += 4) {
    const radius = data[i] * PX_PER_8BIT_LEVEL;
    if (radius < IN_FOCUS_PX) {
      data[i + 3] = 0;
      continue;
    }
    const [r, g, b] = colourAt(Math.min(radius / topPx, 1));
    data[i] = r;
    data[i + 1] = g;
    data[i + 2] = b;
    data[i + 3] = 255;
  }
  context.putImageData(pixels, 0, 0);
}
