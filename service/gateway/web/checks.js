// What the gateway would refuse, checked in the browser before anything is uploaded:
// the type (from the file's first bytes, not its name), the size and the pixel count.
// The gateway checks again; its answer is the one that counts.

import { formatBytes } from "./api.js";

// Room for the multipart form around the file (boundaries, headers, option fields).
const FORM_ALLOWANCE_BYTES = 16 * 1024;

function ascii(bytes, start, end) {
  return String.fromCharCode(...bytes.slice(start, end));
}

/** The media type of an image from its first bytes, or null when it is none we know. */
export function sniffType(bytes) {
  if (bytes.length >= 8 && bytes[0] === 0x89 && ascii(bytes, 1, 4) === "PNG") return "image/png";
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    return "image/jpeg";
  }
  if (bytes.length >= 12 && ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 12) === "WEBP") {
    return "image/webp";
  }
  const tiffOrder = bytes.length >= 4 ? ascii(bytes, 0, 4) : "";
  if (tiffOrder === "II*\0" || tiffOrder === "MM\0*") return "image/tiff";
  if (bytes.length >= 12 && ascii(bytes, 4, 8) === "ftyp" && HEIF_BRANDS.has(ascii(bytes, 8, 12))) {
    return "image/heic";
  }
  return null;
}

// ISO-BMFF brands of HEIC/HEIF stills (the file's `ftyp` box), as phones write them.
const HEIF_BRANDS = new Set(["heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1"]);

function pngHeader(bytes) {
  // signature (8), IHDR length (4) and type (4), then width, height, bit depth, colour type
  if (bytes.length < 26 || ascii(bytes, 12, 16) !== "IHDR") return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    width: view.getUint32(16),
    height: view.getUint32(20),
    bitDepth: bytes[24],
    colourType: bytes[25],
  };
}

async function decodedSize(file) {
  try {
    const bitmap = await createImageBitmap(file);
    const size = { width: bitmap.width, height: bitmap.height };
    bitmap.close();
    return size;
  } catch {
    return null; // the browser cannot decode it; the gateway will say what is wrong
  }
}

/**
 * Check `file` against the gateway's limits (GET /client-settings).
 * Resolves to {ok, type, width, height, problem}: `problem` is set when it would be refused.
 */
export async function checkFile(file, limits) {
  const result = { ok: false, type: null, width: null, height: null, problem: null };
  const head = new Uint8Array(await file.slice(0, 32).arrayBuffer());
  result.type = sniffType(head);
  if (result.type === null || !limits.input_media_types.includes(result.type)) {
    result.problem = "This is not a PNG, JPEG, WebP, TIFF or HEIC image, the only kinds the " +
      "server accepts.";
    return result;
  }
  if (file.size + FORM_ALLOWANCE_BYTES > limits.max_upload_bytes) {
    result.problem = `This file is ${formatBytes(file.size)}: the server accepts files up to ` +
      `${formatBytes(limits.max_upload_bytes - FORM_ALLOWANCE_BYTES)}.`;
    return result;
  }
  const png = result.type === "image/png" ? pngHeader(head) : null;
  const size = png || (await decodedSize(file));
  if (size) {
    result.width = size.width;
    result.height = size.height;
    if (size.width * size.height > limits.max_pixels) {
      const megapixels = (size.width * size.height / 1e6).toFixed(1);
      result.problem = `This image has ${megapixels} megapixels: the server accepts up to ` +
        `${Math.floor(limits.max_pixels / 1e6)} megapixels.`;
      return result;
    }
  }
  result.ok = true;
  return result;
}
