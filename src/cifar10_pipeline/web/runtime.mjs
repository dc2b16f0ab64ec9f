// onnxruntime-web's wasm build, as the upload page's browser mode and the export's browser target
// (cifar10_pipeline.export.targets.browser) run it: loaded from ./ort/ beside this module (served by whoever serves
// this module: nothing is fetched from anywhere else), one thread, the model's one uint8 [N, H, W, C] input to its
// one float32 [N, classes] output (the contract's).

import { decodeFile, imageSize } from "./pixels.mjs";

const ORT_DIR = new URL("./ort/", import.meta.url);
// cifar10_pipeline.web.ORT_FILES: this bundle holds onnxruntime-web's Emscripten glue, and it loads its .wasm from
// its own folder
const BUNDLE = "ort.wasm.bundle.min.mjs";
let loading = null;

/** onnxruntime-web, once per page: {ort, version}. Rejects with the server's explanation when its files are
 * missing (the service answers 404 with a JSON error saying how to install them). */
export function loadOrt() {
  loading ??= (async () => {
    const response = await fetch(new URL("VERSION", ORT_DIR), { cache: "no-cache" });
    if (!response.ok) throw new Error(await explain(response));
    const ort = await import(new URL(BUNDLE, ORT_DIR).href);
    // one thread: threads need a cross-origin isolated page, and one thread answers the same on every machine
    ort.env.wasm.numThreads = 1;
    ort.env.logLevel = "error";
    return { ort, version: (await response.text()).trim() };
  })();
  loading.catch(() => { loading = null; }); // a later call tries again
  return loading;
}

async function explain(response) {
  try {
    return (await response.json()).error;
  } catch {
    return `onnxruntime-web cannot be loaded: ${response.status} ${response.statusText}`;
  }
}

/** An inference session on the ONNX file's ``bytes`` (Uint8Array), on onnxruntime-web's wasm backend. */
export async function openSession(bytes) {
  const { ort } = await loadOrt();
  return ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
}

/** uint8 ``pixels`` (N * H * W * C, row-major) of ``shape`` = [N, H, W, C] -> float32 logits (N * classes). */
export async function logits(session, pixels, shape) {
  const { ort } = await loadOrt();
  const input = new ort.Tensor("uint8", pixels, shape);
  const outputs = await session.run({ [session.inputNames[0]]: input });
  const output = outputs[session.outputNames[0]];
  const values = output.data.slice();
  output.dispose();
  return values;
}

/** The model the service serves now, fetched from ``url`` (GET /model.onnx) and kept while its ETag (the model id)
 * stays the same: the HTTP cache revalidates it with If-None-Match, so an unchanged model is not downloaded again. */
export class ServedModel {
  constructor(url) {
    this.url = url;
    this.id = null;
    this.session = null;
  }

  async open(modelId) {
    if (this.session && this.id === modelId) return this;
    const response = await fetch(this.url, { cache: "no-cache" });
    if (!response.ok) throw new Error(await explain(response));
    const id = (response.headers.get("ETag") || "").replaceAll('"', "");
    const session = await openSession(new Uint8Array(await response.arrayBuffer()));
    this.session?.release();
    Object.assign(this, { id, session });
    return this;
  }
}

/** Classify ``files`` as POST /predict does, but here: the same JSON answer ({model_id, predictions: [{file, label,
 * probability, top_k, model_id}]}) plus each image's ``logits``; ``info`` is GET /info's answer (labels, input,
 * config.max_pixels, max_files, max_upload_bytes). */
export async function classifyFiles(model, files, info) {
  refuseOverLimits(files, info.config);
  const { height, width, channels } = info.input;
  const size = height * width * channels;
  const batch = new Uint8Array(files.length * size);
  for (const [i, file] of files.entries()) {
    batch.set(await decodeUpload(file, [height, width, channels], info.config.max_pixels), i * size);
  }
  const values = await logits(model.session, batch, [files.length, height, width, channels]);
  const classes = info.labels.length;
  const predictions = files.map((file, i) => {
    const row = Array.from(values.subarray(i * classes, (i + 1) * classes));
    return { file: file.name, model_id: model.id, logits: row, ...rank(row, info.labels) };
  });
  return { model_id: model.id, predictions };
}

/** The service's limits on one upload (inference.predict), applied before any file is read: the page takes what
 * the server would take, and every file it takes is decoded into one batch in this tab's memory. The server counts
 * the multipart body, a little more than the files' bytes. */
function refuseOverLimits(files, config) {
  if (files.length > config.max_files) {
    throw new Error(`${files.length} files in one request, at most ${config.max_files} accepted`);
  }
  const bytes = files.reduce((total, file) => total + file.size, 0);
  if (bytes > config.max_upload_bytes) {
    throw new Error(`the files are ${bytes} bytes together, at most ${config.max_upload_bytes} bytes accepted`);
  }
}

/** decodeFile for an uploaded ``file``, refused as contract.images.open_image refuses it when its header says it has
 * more than ``maxPixels`` (the service's max_pixels): the page takes what the server would take. */
async function decodeUpload(file, shape, maxPixels) {
  const cannot = (e) => new Error(`'${file.name}' cannot be decoded by this browser: ${e.message || e.name}`);
  const [width, height] = await imageSize(file).catch((e) => { throw cannot(e); });
  if (width * height > maxPixels) {
    throw new Error(`'${file.name}' is ${width}x${height} = ${width * height} pixels, at most ${maxPixels} are ` +
      "accepted (decompression-bomb guard)");
  }
  return decodeFile(file, shape).catch((e) => { throw cannot(e); });
}

/** postprocess.rank for one image: softmax probabilities, every label best first (ties keep the label order). */
export function rank(row, labels) {
  const top = Math.max(...row);
  const exp = row.map((v) => Math.exp(v - top));
  const total = exp.reduce((a, b) => a + b, 0);
  const p = exp.map((v) => v / total);
  const order = labels.map((_, i) => i).sort((a, b) => p[b] - p[a]); // a stable sort
  return {
    label: labels[order[0]], probability: p[order[0]],
    top_k: order.map((i) => ({ label: labels[i], probability: p[i] })),
  };
}
