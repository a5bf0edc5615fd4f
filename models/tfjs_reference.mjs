// Runs an ORIGINAL TF.js graph model with pure-JS @tensorflow/tfjs (CPU
// backend) so that the converters (convert_centernet.py, convert_faces.py) can
// compare their TorchScript output against it.
//
//   node models/tfjs_reference.mjs MODEL_JSON INPUT_NPY OUT_DIR [NAME=NODE,...]
//
// INPUT_NPY: float32 [N,H,W,3] NHWC, as the model's input expects it. Some
// graphs are batch-1 only, so the items are run one by one. Writes
// OUT_DIR/NAME.npy (float32, batch dimension N) for each requested output node;
// without the list, CenterNet's keypoints, wh and detections.
//
// Dependencies live outside the repository (see models/package.json for the
// pinned version). They are resolved from $ARGUS_NODE_PREFIX, default
// ~/.cache/argus/node, installed with:
//   mkdir -p ~/.cache/argus/node
//   cp models/package.json models/package-lock.json ~/.cache/argus/node/
//   npm ci --prefix ~/.cache/argus/node
// ESM `import` ignores NODE_PATH, hence createRequire rooted at that prefix.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const CENTERNET_OUTPUTS = ['keypoints', 'wh', 'detections'].map((o) => [o, `tower_0/${o}`]);

function fail(message) {
  console.error(`tfjs_reference: ${message}`);
  process.exit(1);
}

function loadTf() {
  const prefix = process.env.ARGUS_NODE_PREFIX || path.join(os.homedir(), '.cache', 'argus', 'node');
  const require = createRequire(path.join(prefix, 'package.json'));
  try {
    return require('@tensorflow/tfjs');
  } catch (err) {
    fail(`cannot load @tensorflow/tfjs from ${prefix} (${err.code || err.message}); ` +
      'install it as described at the top of models/tfjs_reference.mjs');
  }
}

function readNpyFloat32(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') fail(`${file}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const dataStart = (major === 1 ? 10 : 12) + headerLen;
  const header = buf.toString('latin1', major === 1 ? 10 : 12, dataStart);
  if (!/'descr':\s*'<f4'/.test(header) || /'fortran_order':\s*True/.test(header)) {
    fail(`${file}: expected little-endian float32 in C order, header ${header.trim()}`);
  }
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(',')
    .map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  // Copy so the Float32Array is aligned whatever the header length is.
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + dataStart, buf.byteOffset + buf.length));
  if (data.length !== shape.reduce((a, b) => a * b, 1)) fail(`${file}: size does not match shape ${shape}`);
  return { shape, data };
}

function writeNpyFloat32(file, shape, data) {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  // Format v1: magic(6) + version(2) + u16 length, then the header padded with
  // spaces and ended by '\n' so that the data starts on a 64-byte boundary.
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const prefix = Buffer.alloc(10);
  prefix.write('\x93NUMPY', 0, 'latin1');
  prefix[6] = 1;
  prefix[7] = 0;
  prefix.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([
    prefix, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

// IOHandler reading model.json + its weight shards from disk (tf.io.fileSystem
// only exists in tfjs-node).
function fileHandler(modelJsonPath) {
  return {
    load: async () => {
      const model = JSON.parse(fs.readFileSync(modelJsonPath, 'utf8'));
      const dir = path.dirname(modelJsonPath);
      const weightSpecs = [];
      const shards = [];
      for (const group of model.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const p of group.paths) shards.push(fs.readFileSync(path.join(dir, p)));
      }
      const all = Buffer.concat(shards);
      return {
        modelTopology: model.modelTopology,
        format: model.format,
        generatedBy: model.generatedBy,
        convertedBy: model.convertedBy,
        signature: model.signature,
        weightSpecs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.length),
      };
    },
  };
}

async function main() {
  const [modelJson, inputNpy, outDir, outputsArg] = process.argv.slice(2);
  if (!outDir) fail('usage: node tfjs_reference.mjs MODEL_JSON INPUT_NPY OUT_DIR [NAME=NODE,...]');
  const OUTPUTS = outputsArg
    ? outputsArg.split(',').map((pair) => pair.split('='))
    : CENTERNET_OUTPUTS;
  if (OUTPUTS.some((pair) => pair.length !== 2 || !/^[a-z0-9_]+$/.test(pair[0]))) {
    fail(`outputs must be NAME=NODE pairs, got ${outputsArg}`);
  }

  const tf = loadTf();
  await tf.setBackend('cpu');
  const model = await tf.loadGraphModel(fileHandler(modelJson));
  const inputName = model.inputs[0].name;
  const outputNames = OUTPUTS.map(([, node]) => node);

  const input = readNpyFloat32(inputNpy);
  const [n, ...itemShape] = input.shape;
  const expected = model.inputs[0].shape.slice(1);
  if (itemShape.join() !== expected.join()) fail(`input item shape ${itemShape} != model's ${expected}`);
  const itemSize = input.data.length / n;

  const results = OUTPUTS.map(() => ({ shape: null, chunks: [] }));
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const item = tf.tensor(input.data.subarray(i * itemSize, (i + 1) * itemSize), [1, ...itemShape], 'float32');
    // One requested output comes back as a tensor, several as an array.
    const outs = [].concat(model.execute({ [inputName]: item }, outputNames));
    outs.forEach((t, k) => {
      results[k].shape = t.shape.slice(1);
      results[k].chunks.push(t.dataSync().slice());
      t.dispose();
    });
    item.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;

  fs.mkdirSync(outDir, { recursive: true });
  OUTPUTS.forEach(([name], k) => {
    const { shape, chunks } = results[k];
    const data = new Float32Array(chunks.reduce((a, c) => a + c.length, 0));
    chunks.reduce((offset, c) => { data.set(c, offset); return offset + c.length; }, 0);
    writeNpyFloat32(path.join(outDir, `${name}.npy`), [n, ...shape], data);
  });
  console.log(`tfjs ${tf.version.tfjs} (${tf.getBackend()}): ${n} item(s) in ${seconds.toFixed(2)} s -> ${outDir}`);
}

main().catch((err) => fail(err.stack || String(err)));
