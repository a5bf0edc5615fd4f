#!/usr/bin/env python3
"""Convert the face models shipped in @vladmandic/human to one frozen TorchScript file that
libtorch (tch-rs `CModule::load`) runs on its own: BlazeFace (MediaPipe's full-range "back"
detector, 256x256) finds faces and six landmarks, and an embedding network turns each face's
crop into an L2-normalised vector.

    python models/convert_faces.py --detector-json PATH/blazeface.json \
        --embedder-json PATH/faceres.json --out PATH/faces.pt [--images a.png ...] [--verify-tfjs]

The saved module has two methods:
  forward(images [N,256,256,3] NHWC RGB float 0..255) -> faces [N,896,17]: x1, y1, x2, y2
      (pixels of the 256x256 input), score (0..1), then the six landmarks' x, y (right eye,
      left eye, nose tip, mouth, right ear, left ear: the subject's right and left). One row
      per anchor, unsorted and unfiltered: the caller thresholds and applies NMS.
  embed(crops [M,S,S,3] NHWC RGB float 0..255) -> embeddings [M,D], each of L2 norm 1.
      A crop is the square around a face's box (see `face_crop`), resized to S.

Both networks are interpreted node by node by models/tfjs_graph.py (shared with
convert_centernet.py). BlazeFace's anchors and box decoding are MediaPipe's, as
@vladmandic/human applies them (src/face/blazeface.ts): an anchor at the centre of every cell
of a 16x16 (2 anchors) and an 8x8 (6 anchors) grid; centre = anchor + (dx, dy), size = (w, h),
landmark = anchor + (lx, ly), all in input pixels.

--images runs the saved file on the given pictures, --verify-tfjs compares both networks'
raw outputs with the original graphs run by @tensorflow/tfjs (models/tfjs_reference.mjs),
and --assess prints the checks the model is chosen by: where faces are found, and how close
embeddings of one face under flips and crops are against those of different faces.
Any problem (unsupported op, unexpected graph, mismatch) exits with status 1.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tfjs_graph import ConversionError, TfjsGraph, build_steps, input_hw, require  # noqa: E402

DETECTOR_INPUT = 'input'
LANDMARKS = ('right_eye', 'left_eye', 'nose', 'mouth', 'right_ear', 'left_ear')
# The embedding networks this converter knows: input node, output node, and how a 0..255 crop
# is scaled into what the network was trained on (x * scale + offset).
EMBEDDERS = {
    # FaceRes (HSE_FaceRec_tf, MobileNet on VGGFace2): 1024 values, the global pooling before
    # the age and gender heads; human feeds it 0..255.
    'faceres': ('input_1', 'global_pooling/Mean', 1.0, 0.0),
    # MobileFaceNet (sirius-ai, on MS-Celeb-1M), already L2-normalised by the graph; human feeds
    # it 0..1.
    'mobilefacenet': ('img_inputs', 'embeddings', 1 / 255, 0.0),
}
# How much larger than the detector's box the square crop an embedding is made from is: the
# networks were trained on loose crops with hair and chin (chosen by --assess, see docs/models.md).
CROP_SCALE = 1.5

RAW_TOL = 1e-3  # max |diff| of raw heads / embeddings against tfjs (float32, summation order only)


class GraphNet(nn.Module):
    """The part of a TF.js graph that `outputs` depend on, as torch modules."""

    def __init__(self, graph, input_name, outputs):
        super().__init__()
        self.input_name, self.outputs = input_name, outputs
        self.input_hw = input_hw(graph, input_name)
        self.layers, self.steps = build_steps(graph, input_name, self.input_hw, outputs)

    def forward(self, x):
        """x [N,H,W,3] NHWC -> the outputs (rank 4 ones NCHW)."""
        values = {self.input_name: x.permute(0, 3, 1, 2)}
        for name, key, inputs in self.steps:
            values[name] = self.layers[key](*(values[i] for i in inputs))
        return [values[o] for o in self.outputs]


class BlazeFace(nn.Module):
    def __init__(self, graph):
        super().__init__()
        # The graph ends in four Reshapes ([1,H,W,A*k] -> [1,H*W*A,k]): scores (k=1) and
        # regressors (k=16) of each of the two grids. The network stops before them.
        reshapes = sorted((n for n in graph.nodes.values() if n.op == 'Reshape'), key=lambda n: n.name)
        require(len(reshapes) == 4, f'expected 4 Reshape heads, found {len(reshapes)}')
        convs = [n.inputs[0] for n in reshapes]
        self.net = GraphNet(graph, DETECTOR_INPUT, convs)
        self.input_hw = self.net.input_hw
        require(self.input_hw[0] == self.input_hw[1], f'square input expected, got {self.input_hw}')
        with torch.no_grad():
            shapes = [tuple(t.shape) for t in self.net(torch.zeros(1, *self.input_hw, 3))]
        # Per grid, finest first (human's order: the 512 rows, then the 384): (scores, regressors).
        grids = {}
        for index, (_, channels, height, width) in enumerate(shapes):
            grids.setdefault((height, width), []).append((channels, index))
        self.heads = []
        anchors = []
        size = self.input_hw[0]
        for (height, width) in sorted(grids, reverse=True):
            (score_ch, score_i), (reg_ch, reg_i) = sorted(grids[(height, width)])
            require(reg_ch == 16 * score_ch, f'grid {height}x{width}: {score_ch} scores, {reg_ch} regressors')
            require(height == width and size % height == 0, f'grid {height}x{width} does not tile {size}')
            self.heads.append((score_i, reg_i, score_ch))
            stride = size // height
            centres = (np.arange(height) + 0.5) * stride
            cy, cx = np.meshgrid(centres, centres, indexing='ij')
            cells = np.stack([cx, cy], -1).reshape(-1, 1, 2)
            anchors.append(np.repeat(cells, score_ch, axis=1).reshape(-1, 2))
        self.register_buffer('anchors', torch.from_numpy(np.concatenate(anchors).astype(np.float32)))
        require(self.anchors.shape[0] == 896, f'{self.anchors.shape[0]} anchors, expected 896')

    def raw(self, images):
        """images [N,H,W,3] 0..255 -> [N,896,17]: logit, then the 16 regressors, as the graph's
        Reshape heads order them."""
        outs = self.net(images / 127.5 - 1.0)
        rows = []
        for score_i, reg_i, per_cell in self.heads:
            # NCHW -> NHWC, then one row per (y, x, anchor): TF's reshape order.
            scores = outs[score_i].permute(0, 2, 3, 1).unflatten(3, (per_cell, 1)).flatten(1, 3)
            regs = outs[reg_i].permute(0, 2, 3, 1).unflatten(3, (per_cell, 16)).flatten(1, 3)
            rows.append(torch.cat([scores, regs], 2))
        return torch.cat(rows, 1)

    def forward(self, images):
        raw = self.raw(images)
        anchors = self.anchors
        centre = raw[..., 1:3] + anchors
        half = raw[..., 3:5] / 2
        landmarks = (raw[..., 5:17].unflatten(2, (6, 2)) + anchors[:, None]).flatten(2)
        score = torch.sigmoid(raw[..., 0:1])
        return torch.cat([centre - half, centre + half, score, landmarks], 2)


class Embedder(nn.Module):
    def __init__(self, graph, kind):
        super().__init__()
        input_name, output, self.scale, self.offset = EMBEDDERS[kind]
        self.net = GraphNet(graph, input_name, [output])
        self.input_hw = self.net.input_hw

    def forward(self, crops):
        (out,) = self.net(crops * self.scale + self.offset)
        require_rank2 = out.flatten(1)
        return F.normalize(require_rank2, dim=1)


class FaceCheck(nn.Module):
    """FaceMesh's face flag: how sure MediaPipe's mesh network is that a crop holds a face. BlazeFace
    alone fires on cat and cup faces (0.77 on chelsea, 0.62 on coffee); human uses this flag the
    same way, as a second opinion on each detection."""

    def __init__(self, graph):
        super().__init__()
        (flag,) = [n.name for n in graph.nodes.values() if n.op == 'Sigmoid']
        self.net = GraphNet(graph, 'input_1', [flag])
        self.input_hw = self.net.input_hw

    def forward(self, crops):
        """crops [M,S,S,3] 0..255 -> [M,1] face score; the network takes 0..1 at its own size."""
        x = F.interpolate(crops.permute(0, 3, 1, 2), size=self.input_hw, mode='bilinear',
                          align_corners=False, antialias=True).permute(0, 2, 3, 1)
        (out,) = self.net(x / 255.0)
        return out.flatten(1)


class Faces(nn.Module):
    def __init__(self, detector, check, embedder):
        super().__init__()
        self.detector, self.check, self.embedder = detector, check, embedder

    def forward(self, images):
        return self.detector(images)

    def embed(self, crops):
        """crops [M,S,S,3] 0..255 -> [M,1+D]: the face score, then the unit embedding."""
        return torch.cat([self.check(crops), self.embedder(crops)], 1)


def embedder_kind(graph):
    for kind, (input_name, output, _, _) in EMBEDDERS.items():
        if input_name in graph.nodes and output in graph.nodes:
            return kind
    raise ConversionError('the embedding graph is neither FaceRes nor MobileFaceNet')


def convert(detector_json, mesh_json, embedder_json, out):
    detector = BlazeFace(TfjsGraph(detector_json)).eval()
    check = FaceCheck(TfjsGraph(mesh_json)).eval()
    embedder_graph = TfjsGraph(embedder_json)
    embedder = Embedder(embedder_graph, embedder_kind(embedder_graph)).eval()
    model = Faces(detector, check, embedder).eval()
    images = torch.rand(2, *detector.input_hw, 3) * 255
    crops = torch.rand(2, *embedder.input_hw, 3) * 255
    with torch.no_grad():
        traced = torch.jit.trace_module(model, {'forward': images, 'embed': crops})
    frozen = torch.jit.freeze(traced, preserved_attrs=['embed'])
    nodes = [*frozen.graph.nodes(), *frozen.embed.graph.nodes()]
    foreign = sorted({n.kind() for n in nodes if n.kind().split('::')[0] not in ('aten', 'prim')})
    require(not foreign, f'traced graph uses non-libtorch ops {foreign}')
    out.parent.mkdir(parents=True, exist_ok=True)
    frozen.save(str(out))
    return model


# ---------------------------------------------------------------------------
# Pictures, crops and checks
# ---------------------------------------------------------------------------

def load_rgb(path):
    from PIL import Image  # only needed with --images
    return np.asarray(Image.open(path).convert('RGB'), np.float32)


def letterbox(image, size):
    """Longer side to `size`, padded with 0 at the bottom/right; returns (canvas, scale)."""
    from PIL import Image
    h, w = image.shape[:2]
    scale = size / max(h, w)
    resized = Image.fromarray(image.astype(np.uint8)).resize((round(w * scale), round(h * scale)), Image.BILINEAR)
    canvas = np.zeros((size, size, 3), np.float32)
    canvas[:resized.height, :resized.width] = np.asarray(resized, np.float32)
    return canvas, scale


def face_crop(image, box, size, scale=CROP_SCALE):
    """The square of side scale * max(w, h) centred on `box` (source pixels), zero outside the
    image, resized to size x size with an antialiased bilinear filter (what Argus does)."""
    x1, y1, x2, y2 = box
    side = scale * max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    side = max(int(round(side)), 1)
    h, w = image.shape[:2]
    square = np.zeros((side, side, 3), np.float32)
    sx0, sy0, sx1, sy1 = max(left, 0), max(top, 0), min(left + side, w), min(top + side, h)
    if sx1 > sx0 and sy1 > sy0:
        square[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = image[sy0:sy1, sx0:sx1]
    t = torch.from_numpy(square).permute(2, 0, 1)[None]
    t = F.interpolate(t, size=(size, size), mode='bilinear', align_corners=False, antialias=True)
    return t[0].permute(1, 2, 0)


def nms(rows, threshold, iou=0.3):
    rows = rows[rows[:, 4] >= threshold]
    rows = rows[np.argsort(-rows[:, 4], kind='stable')]
    keep = []
    for r in rows:
        if all(box_iou(r[:4], k[:4]) <= iou for k in keep):
            keep.append(r)
    return np.array(keep).reshape(-1, 17)


def box_iou(a, b):
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0)
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def detect(saved, image, threshold):
    """Faces of one picture in its own pixels: [K,17] rows as forward's, after NMS."""
    size = 256
    canvas, scale = letterbox(image, size)
    with torch.no_grad():
        rows = saved(torch.from_numpy(canvas)[None])[0].numpy()
    faces = nms(rows, threshold)
    faces[:, [0, 1, 2, 3, *range(5, 17)]] /= scale
    return faces


def run_tfjs(model_json, inputs, outputs, script):
    node = shutil.which('node')
    require(node is not None, '--verify-tfjs needs node on PATH')
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, 'input.npy'), inputs.astype(np.float32))
        pairs = ','.join(f'{name}={node_name}' for name, node_name in outputs.items())
        run = subprocess.run([node, str(script), str(model_json), os.path.join(tmp, 'input.npy'), tmp, pairs],
                             capture_output=True, text=True)
        require(run.returncode == 0, f'tfjs reference failed:\n{run.stderr.strip()}')
        print('  ' + run.stdout.strip())
        return {name: np.load(os.path.join(tmp, f'{name}.npy')) for name in outputs}


def verify_tfjs(model, args, canvases, crops):
    """Raw BlazeFace heads and the embedder's output against the original graphs in tfjs."""
    graph = TfjsGraph(args.detector_json)
    identities = {f'out{i}': n.name for i, n in enumerate(graph.nodes.values()) if n.op == 'Reshape'}
    ref = run_tfjs(args.detector_json, canvases / 127.5 - 1.0, identities, args.tfjs_script)
    by_rows = sorted(ref.values(), key=lambda a: (-a.shape[1], a.shape[2]))  # 512x1, 512x16, 384x1, 384x16
    theirs = np.concatenate([np.concatenate(by_rows[0:2], 2), np.concatenate(by_rows[2:4], 2)], 1)
    with torch.no_grad():
        ours = model.detector.raw(torch.from_numpy(canvases)).numpy()
    diff = np.abs(ours - theirs).max()
    print(f'  BlazeFace raw heads ({ours.shape}, values {theirs.min():.1f}..{theirs.max():.1f}) max |diff| {diff:.2e}')
    require(diff <= RAW_TOL, f'BlazeFace differs from tfjs by {diff}')

    flag = model.check.net.outputs[0]
    theirs = run_tfjs(args.mesh_json, F.interpolate(torch.from_numpy(crops).permute(0, 3, 1, 2), size=(192, 192),
                      mode='bilinear', antialias=True).permute(0, 2, 3, 1).numpy() / 255.0,
                      {'flag': flag}, args.tfjs_script)['flag'].reshape(len(crops), -1)
    with torch.no_grad():
        ours = model.check(torch.from_numpy(crops)).numpy()
    diff = np.abs(ours - theirs).max()
    print(f'  FaceMesh face flags {np.round(ours.ravel(), 3).tolist()} max |diff| {diff:.2e}')
    require(diff <= RAW_TOL, f'FaceMesh differs from tfjs by {diff}')

    kind = embedder_kind(TfjsGraph(args.embedder_json))
    input_name, output, scale, offset = EMBEDDERS[kind]
    ref = run_tfjs(args.embedder_json, crops * scale + offset, {'embedding': output}, args.tfjs_script)
    theirs = ref['embedding'].reshape(len(crops), -1)
    theirs = theirs / np.linalg.norm(theirs, axis=1, keepdims=True)
    with torch.no_grad():
        ours = model.embedder(torch.from_numpy(crops)).numpy()
    diff = np.abs(ours - theirs).max()
    print(f'  {kind} embeddings ({ours.shape}) max |diff| {diff:.2e}')
    require(diff <= RAW_TOL, f'{kind} differs from tfjs by {diff}')


def assess(saved, images, threshold, size):
    """Where faces are found, and embedding distances: one face under flips and crops against
    different faces. Returns (same-face worst distance, different-faces best distance)."""
    found = {}
    for path in images:
        image = load_rgb(path)
        faces = detect(saved, image, threshold)
        with torch.no_grad():
            checks = [float(saved.embed(face_crop(image, f[:4], size)[None])[0, 0]) for f in faces]
        found[path] = (image, faces[[c >= threshold for c in checks]] if len(faces) else faces)
        desc = ', '.join(f'{r[4]:.2f} at ({r[0]:.0f},{r[1]:.0f},{r[2]:.0f},{r[3]:.0f}), face check {c:.2f}'
                         for r, c in zip(faces, checks)) or 'none'
        print(f'  {Path(path).name}: {len(found[path][1])} face(s); BlazeFace: {desc}')
    people = [(p, img, f[0]) for p, (img, f) in found.items() if len(f)]
    require(len(people) >= 2, 'need faces on at least two pictures to compare embeddings')

    def embed(crops):
        with torch.no_grad():
            return saved.embed(torch.stack(crops))[:, 1:].numpy()

    same, different = [], []
    anchors = []
    for path, image, face in people:
        box = face[:4]
        w, h = box[2] - box[0], box[3] - box[1]
        variants = [face_crop(image, box, size)]
        flipped = image[:, ::-1].copy()
        fbox = np.array([image.shape[1] - box[2], box[1], image.shape[1] - box[0], box[3]])
        variants.append(face_crop(flipped, fbox, size))
        for dx, dy, s in ((0.05, 0, 1), (-0.05, 0.05, 1), (0, 0, 0.9), (0, 0, 1.1)):
            shifted = box + np.array([dx * w, dy * h, dx * w, dy * h])
            c = (shifted[:2] + shifted[2:]) / 2
            half = (shifted[2:] - shifted[:2]) / 2 * s
            variants.append(face_crop(image, np.concatenate([c - half, c + half]), size))
        e = embed(variants)
        d = 1 - e[1:] @ e[0]
        same.extend(d.tolist())
        print(f'  {Path(path).name}: cosine distance to flip {d[0]:.3f}, shifted/scaled crops '
              + ', '.join(f'{v:.3f}' for v in d[1:]))
        anchors.append(e)
    for i in range(len(anchors)):
        for j in range(i + 1, len(anchors)):
            d = 1 - anchors[i] @ anchors[j].T
            different.append(d.min())
            print(f'  {Path(people[i][0]).name} vs {Path(people[j][0]).name}: closest cosine distance {d.min():.3f}')
    print(f'  same face: worst {max(same):.3f}; different faces: closest {min(different):.3f}')
    require(max(same) < min(different), 'a flipped or cropped face is farther than a different face')
    return max(same), min(different)


def video_frame(path, index):
    """One RGB frame of a video (ffmpeg CLI), saved as a PNG next to the temp dir."""
    out = Path(tempfile.gettempdir()) / f'{Path(path).stem}-{index}.png'
    subprocess.run(['ffmpeg', '-v', 'error', '-y', '-i', str(path), '-vf', f'select=eq(n\\,{index})',
                    '-frames:v', '1', str(out)], check=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--detector-json', type=Path, required=True, help='TF.js blazeface.json')
    parser.add_argument('--mesh-json', type=Path, required=True, help='TF.js facemesh.json (the face check)')
    parser.add_argument('--embedder-json', type=Path, required=True, help='TF.js faceres.json or mobilefacenet.json')
    parser.add_argument('--out', type=Path, required=True, help='TorchScript file to write')
    parser.add_argument('--images', type=Path, nargs='+', default=[], help='pictures to check the saved model on')
    parser.add_argument('--video-frames', nargs='*', default=[], help='VIDEO:FRAME pictures to add to --images')
    parser.add_argument('--verify-tfjs', action='store_true', help='compare with the original graphs in tfjs')
    parser.add_argument('--assess', action='store_true', help='print detections and embedding distances')
    parser.add_argument('--threshold', type=float, default=0.5)
    parser.add_argument('--tfjs-script', type=Path, default=Path(__file__).with_name('tfjs_reference.mjs'))
    args = parser.parse_args()
    try:
        started = time.perf_counter()
        model = convert(args.detector_json, args.mesh_json, args.embedder_json, args.out)
        print(f'wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - started:.1f} s')
        saved = torch.jit.load(str(args.out))
        size = model.embedder.input_hw[0]
        images = list(args.images) + [video_frame(*v.rsplit(':', 1)) for v in args.video_frames]

        # Batch invariance: every item of a batch of 3 gives its batch-1 rows.
        canvases = np.stack([letterbox(load_rgb(p), 256)[0] for p in images[:3]]) if images else \
            np.random.default_rng(0).uniform(0, 255, (3, 256, 256, 3)).astype(np.float32)
        with torch.no_grad():
            batch = saved(torch.from_numpy(canvases)).numpy()
            singles = np.concatenate([saved(torch.from_numpy(canvases[i:i + 1])).numpy() for i in range(len(canvases))])
            crops = torch.rand(3, size, size, 3) * 255
            e_batch, e_single = saved.embed(crops).numpy(), np.concatenate([saved.embed(crops[i:i + 1]).numpy() for i in range(3)])
        diff = max(np.abs(batch - singles).max(), np.abs(e_batch - e_single).max())
        require(diff <= RAW_TOL, f'batch of {len(canvases)} differs from single items by {diff}')
        norms = np.linalg.norm(e_batch[:, 1:], axis=1)
        require(np.abs(norms - 1).max() < 1e-4, f'embeddings are not unit vectors: {norms}')
        print(f'batches match single items (max |diff| {diff:.1e}); embeddings have {e_batch.shape[1] - 1} values, norm 1')

        if args.verify_tfjs:
            require(images, '--verify-tfjs needs --images')
            print('verifying against tfjs:')
            face_crops = []
            for p in images:
                image = load_rgb(p)
                for face in detect(saved, image, args.threshold)[:2]:
                    face_crops.append(face_crop(image, face[:4], size).numpy())
            face_crops.append(np.random.default_rng(1).uniform(0, 255, (size, size, 3)).astype(np.float32))
            verify_tfjs(model, args, canvases, np.stack(face_crops))
            print('tfjs check passed')
        if args.assess:
            print('assessment:')
            assess(saved, images, args.threshold, size)
    except (ConversionError, OSError, subprocess.CalledProcessError) as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()
