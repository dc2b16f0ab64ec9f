// contract.images.decode_image in JavaScript: image file -> the uint8 [H, W, C] pixels the model takes, so that a
// model run in the browser sees what the server would have given it.
//
// The browser decodes the file (EXIF orientation applied, colour profiles ignored, as Pillow does); the rest is
// Pillow's own arithmetic, integer for integer: an image with any transparency is resized premultiplied (Pillow's
// RGBa), with Image.resize(size, BILINEAR, reducing_gap=3.0) = an integer box reduce (Reduce.c) and then an
// antialiased bilinear resample (Resample.c); then it is composited on white (AlphaComposite.c) and, for a gray model,
// turned gray with ITU-R 601-2 luma (Convert.c). Where the browser's decoder differs from Pillow's (JPEG's IDCT and
// Pillow's JPEG draft mode, which downscales large JPEGs while decoding; 16-bit PNGs; the alpha of nearly
// transparent pixels, which a canvas keeps premultiplied) the pixels can differ by a little.

const PRECISION_BITS = 32 - 8 - 2; // Resample.c: the fixed-point coefficients' fraction bits
const REDUCING_GAP = 3.0; // contract.images: resize(..., reducing_gap=3.0)

/** [width, height] of ``blob`` (an image file), from its header: an image element that is never drawn is not decoded,
 * so a decompression bomb can be measured before anything allocates its pixels. Rejects when the browser cannot read
 * the file as an image. */
export async function imageSize(blob) {
  const url = URL.createObjectURL(blob);
  try {
    const image = new Image();
    await new Promise((resolve, reject) => {
      image.onload = resolve;
      image.onerror = () => reject(new Error("not an image this browser reads"));
      image.src = url;
    });
    return [image.naturalWidth, image.naturalHeight];
  } finally {
    URL.revokeObjectURL(url);
  }
}

/** Decode ``blob`` (an image file) to ``shape`` = [H, W, C], C 1 or 3: a Uint8Array of H * W * C pixels. */
export async function decodeFile(blob, shape) {
  const bitmap = await createImageBitmap(blob, {
    premultiplyAlpha: "none", colorSpaceConversion: "none", imageOrientation: "from-image",
  });
  try {
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(bitmap, 0, 0);
    const { data } = context.getImageData(0, 0, bitmap.width, bitmap.height);
    return squash(data, bitmap.width, bitmap.height, shape);
  } finally {
    bitmap.close();
  }
}

/** RGBA pixels (``width`` x ``height``, unpremultiplied, row-major) -> ``shape`` = [H, W, C], as decode_image
 * brings an RGB (all alpha 255) or RGBA image there. */
export function squash(rgba, width, height, [outHeight, outWidth, channels]) {
  let pixels = rgba;
  if (width !== outWidth || height !== outHeight) {
    let opaque = true;
    for (let i = 3; i < rgba.length; i += 4) if (rgba[i] !== 255) { opaque = false; break; }
    const work = Uint8Array.from(rgba);
    if (!opaque) premultiply(work); // what Pillow's resize does for RGBA (for opaque pixels it changes nothing)
    pixels = resize(work, width, height, outWidth, outHeight);
    if (!opaque) unpremultiply(pixels);
  }
  const out = new Uint8Array(outHeight * outWidth * channels);
  for (let i = 0, o = 0; o < out.length; i += 4) {
    const a = pixels[i + 3];
    const r = onWhite(pixels[i], a), g = onWhite(pixels[i + 1], a), b = onWhite(pixels[i + 2], a);
    if (channels === 3) {
      out[o++] = r; out[o++] = g; out[o++] = b;
    } else {
      out[o++] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16; // Convert.c L24: RGB -> L
    }
  }
  return out;
}

// ---------------------------------------------------------------- alpha (Convert.c, AlphaComposite.c)

function premultiply(rgba) { // RGBA -> RGBa: each colour times alpha / 255, rounded (MULDIV255)
  for (let i = 0; i < rgba.length; i += 4) {
    const a = rgba[i + 3];
    for (let c = i; c < i + 3; c++) {
      const t = rgba[c] * a + 128;
      rgba[c] = ((t >> 8) + t) >> 8;
    }
  }
}

function unpremultiply(rgba) { // RGBa -> RGBA: alpha 0 and 255 keep the colour, others 255 * c / a, truncated
  for (let i = 0; i < rgba.length; i += 4) {
    const a = rgba[i + 3];
    if (a === 0 || a === 255) continue;
    for (let c = i; c < i + 3; c++) rgba[c] = Math.min(255, Math.trunc((255 * rgba[c]) / a));
  }
}

function onWhite(colour, alpha) { // Image.alpha_composite(white, image), one channel; alpha 255 gives colour back
  const x = colour * alpha + 255 * (255 - alpha) + 128;
  return (x + (x >> 8)) >> 8;
}

// ---------------------------------------------------------------- Image.resize(size, BILINEAR, reducing_gap=3.0)

/** 4-channel ``pixels`` (width x height) -> outWidth x outHeight: first reduced by the integer factors that leave at
 * least REDUCING_GAP times the output size, then resampled from the box the reduce leaves (Image.resize). */
function resize(pixels, width, height, outWidth, outHeight) {
  const factorX = Math.trunc(width / outWidth / REDUCING_GAP) || 1;
  const factorY = Math.trunc(height / outHeight / REDUCING_GAP) || 1;
  if (factorX === 1 && factorY === 1) {
    return resample(pixels, width, height, outWidth, outHeight, [0, 0, width, height]);
  }
  const reduced = reduce(pixels, width, height, factorX, factorY);
  // the box is passed to C as floats
  const box = [0, 0, width / factorX, height / factorY].map(Math.fround);
  return resample(reduced, Math.ceil(width / factorX), Math.ceil(height / factorY), outWidth, outHeight, box);
}

/** Reduce.c: each output pixel is the mean of a factorX x factorY block (the last column and row take what is
 * left), rounded as Pillow rounds: (sum + n / 2) * multiplier >> 24, with Pillow's float-made multiplier. */
function reduce(pixels, width, height, factorX, factorY) {
  const outWidth = Math.ceil(width / factorX), outHeight = Math.ceil(height / factorY);
  const out = new Uint8Array(outWidth * outHeight * 4);
  const sums = new Float64Array(4);
  for (let y = 0; y < outHeight; y++) {
    const y0 = y * factorY, y1 = Math.min(y0 + factorY, height);
    for (let x = 0; x < outWidth; x++) {
      const x0 = x * factorX, x1 = Math.min(x0 + factorX, width);
      const n = (x1 - x0) * (y1 - y0);
      const multiplier = Math.trunc(Math.fround(4294967296 / Math.fround(256 * n))); // division_UINT32(n, 8)
      sums.fill(Math.trunc(n / 2));
      for (let yy = y0; yy < y1; yy++) {
        for (let xx = x0; xx < x1; xx++) {
          const i = (yy * width + xx) * 4;
          sums[0] += pixels[i]; sums[1] += pixels[i + 1]; sums[2] += pixels[i + 2]; sums[3] += pixels[i + 3];
        }
      }
      const o = (y * outWidth + x) * 4;
      for (let c = 0; c < 4; c++) out[o + c] = Math.floor((sums[c] * multiplier) / 16777216); // UINT32 >> 24
    }
  }
  return out;
}

/** Resample.c precompute_coeffs + normalize_coeffs_8bpc for the bilinear filter: for each output pixel the first
 * input pixel, the count, and integer weights with PRECISION_BITS fraction bits. ``in0``, ``in1``: the box's
 * edges (floats). */
function coefficients(inSize, in0, in1, outSize) {
  const scale = Math.fround(in1 - in0) / outSize; // float subtraction, then double division
  const filterScale = Math.max(scale, 1.0); // antialiasing: the filter widens with the reduction
  const support = 1.0 * filterScale; // the bilinear filter's support is 1
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    const ss = 1.0 / filterScale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let total = 0.0;
    for (let x = 0; x < xmax; x++) {
      const w = Math.max(0, 1.0 - Math.abs((x + xmin - center + 0.5) * ss)); // bilinear_filter
      k[x] = w;
      total += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = total !== 0.0 ? k[x] / total : k[x];
      weights[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * (1 << PRECISION_BITS))
        : Math.trunc(0.5 + w * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { bounds, weights, ksize };
}

function clip8(ss) { // the fixed-point sum back to 0..255
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Resample.c ImagingResampleInner: two one-dimensional passes, each skipped where its size and box edges leave
 * nothing to do. Pillow (13) runs the vertical pass first when it removes more than twice as many rows as the
 * horizontal one removes columns, else the horizontal one first: the order changes the rounding in between, and this
 * rule reproduces Pillow's pixels exactly (tests/inference/test_browser_pixels.py compares them). */
function resample(pixels, width, height, outWidth, outHeight, box) {
  const needHorizontal = outWidth !== width || box[0] !== 0 || box[2] !== outWidth;
  const needVertical = outHeight !== height || box[1] !== 0 || box[3] !== outHeight;
  const horizontal = coefficients(width, box[0], box[2], outWidth);
  const vertical = coefficients(height, box[1], box[3], outHeight);
  if (needHorizontal && needVertical && Math.max(height - outHeight, 0) > 2 * Math.max(width - outWidth, 0)) {
    return horizontalPass(verticalPass(pixels, width, vertical, outHeight), width, outHeight, horizontal, outWidth);
  }
  let current = pixels;
  if (needHorizontal) current = horizontalPass(current, width, height, horizontal, outWidth);
  if (needVertical) current = verticalPass(current, outWidth, vertical, outHeight);
  return current === pixels ? Uint8Array.from(pixels) : current;
}

function horizontalPass(pixels, width, rows, { bounds, weights, ksize }, outWidth) {
  const out = new Uint8Array(outWidth * rows * 4);
  for (let y = 0; y < rows; y++) {
    const line = y * width * 4;
    for (let xx = 0; xx < outWidth; xx++) {
      const xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1], k = xx * ksize;
      for (let c = 0; c < 4; c++) {
        let ss = 1 << (PRECISION_BITS - 1);
        for (let x = 0; x < xmax; x++) ss += pixels[line + (x + xmin) * 4 + c] * weights[k + x];
        out[(y * outWidth + xx) * 4 + c] = clip8(ss);
      }
    }
  }
  return out;
}

function verticalPass(pixels, width, { bounds, weights, ksize }, outHeight) {
  const stride = width * 4;
  const out = new Uint8Array(stride * outHeight);
  for (let yy = 0; yy < outHeight; yy++) {
    const ymin = bounds[yy * 2], ymax = bounds[yy * 2 + 1], k = yy * ksize;
    for (let x = 0; x < stride; x++) {
      let ss = 1 << (PRECISION_BITS - 1);
      for (let y = 0; y < ymax; y++) ss += pixels[(y + ymin) * stride + x] * weights[k + y];
      out[yy * stride + x] = clip8(ss);
    }
  }
  return out;
}
