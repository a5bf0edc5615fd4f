#!/usr/bin/env python3
"""Convert the CenterNet (MobileNetV3, COCO-80) TF.js graph model shipped in
@vladmandic/human to a frozen TorchScript file that libtorch (tch-rs
`CModule::load`) runs on its own.

    python models/convert_centernet.py --model-json PATH/centernet.json \
        --out PATH/coco-centernet.pt [--images a.png b.png ...] [--verify-tfjs]

The saved module maps images [N,512,512,3] (NHWC, RGB, float 0..255, no
scaling) to detections [N,100,6] = x1, y1, x2, y2 (pixels of the 512x512
input, may overshoot it), score (0..1), class (float, COCO-80 index).

The network part of the graph (everything `tower_0/keypoints` and `tower_0/wh`
depend on) is interpreted node by node: one lowering function per TF op kind
turns a node into a small torch module. Activations are kept NCHW inside
(torch's native conv layout); the TF NHWC layout is handled explicitly at the
input, in axis attributes (Mean, ConcatV2), in filter layouts and at the two
heads. The graph's own decoder after the heads (MaxPool, TopKV2, GatherV2...)
only works for batch 1, so it is replaced by `decode_detections`, written for
any batch size; the constants it relies on are read from the graph and checked.

--images letterboxes the given pictures (longer side to 512, padded with 0 at
the bottom/right), runs the saved file on them and prints the top detections.
--verify-tfjs additionally runs the original graph with @tensorflow/tfjs
(models/tfjs_reference.mjs, needs node) on the same inputs and fails unless
the heatmaps and detections agree within tight tolerances.
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
from tfjs_graph import (  # noqa: E402  (the interpreter shared with convert_faces.py)
    Concat, ConcatUpsampled, ConversionError, TfjsGraph, Upsample2xLegacy, build_steps, input_hw, require)

INPUT = 'tower_0/images'
HEATMAP = 'tower_0/keypoints'  # [1,128,128,80] sigmoid scores, NHWC
BOX_SIZES = 'tower_0/wh'  # [1,128,128,4] distances from the cell to the box sides

# Tolerances of the comparisons (tfjs, batch sizes). Everything is float32;
# the differences come from summation order only. wh is 16 x a conv output, so
# box coordinates carry more absolute noise than scores.
HEATMAP_TOL = 1e-4
SCORE_TOL = 1e-4
BOX_TOL_PX = 5e-3

COCO_NAMES = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
    'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella',
    'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle',
    'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange',
    'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant',
    'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone',
    'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors',
    'teddy bear', 'hair drier', 'toothbrush')


# ---------------------------------------------------------------------------
# Detection decoding (replaces the graph's batch-1 decoder)
# ---------------------------------------------------------------------------

# Op kinds of the graph's own decoder, which is not interpreted.
DECODER_OPS = {'MaxPool', 'Equal', 'Cast', 'Mul', 'Add', 'Sub', 'Reshape', 'TopKV2', 'ExpandDims',
               'FloorDiv', 'FloorMod', 'GatherV2', 'StridedSlice', 'ConcatV2', 'Identity'}


def read_decoder_params(graph, heat_shape, input_hw):
    """Reads, and checks against the head shapes, what the graph's decoder does:
      peaks  = heat * (heat == maxpool3x3(heat))          (MaxPool, Equal, Cast, mul_1)
      score, idx = top_k(peaks flattened NHWC, k)          (Reshape, TopKV2)
      cls = idx % C; x = idx // C % W; y = idx // C // W   (mod, floordiv, mod_1, floordiv_2)
      l, t, r, b = wh[y, x]                                (BatchGather, strided_slice_9..12)
      box = (x*s - l, y*s - t, x*s + r, y*s + b)           (mul_3..6, sub, sub_1, add_1, add_2)
    Returns (k, s)."""
    _, height, width, classes = heat_shape
    network = {n.name for n in graph.ordered_ancestors([HEATMAP, BOX_SIZES])}
    decoder_ops = {n.op for n in graph.nodes.values() if n.name not in network and n.op != 'Const'}
    unexpected = sorted(decoder_ops - DECODER_OPS)
    require(not unexpected, f'unexpected op kinds after the heads: {unexpected}')
    require(graph.scalar('tower_0/strided_slice_7') == classes, 'class count of the decoder != heatmap channels')
    require(graph.scalar('tower_0/strided_slice_6') == width, 'grid width of the decoder != heatmap width')
    require(graph.nodes['tower_0/max_pooling2d/MaxPool'].ints('ksize') == [1, 3, 3, 1], 'peak max-pool is not 3x3')
    scales = {graph.scalar(f'tower_0/mul_{i}/y') for i in (3, 4, 5, 6)}
    require(scales == {input_hw[0] / height} and input_hw[0] / height == input_hw[1] / width,
            f'decoder cell size {scales} != input/heatmap size ratio')
    for channel, node in enumerate(('strided_slice_9', 'strided_slice_10', 'strided_slice_11', 'strided_slice_12')):
        begin = graph.const(f'tower_0/{node}/stack').tolist()
        require(begin == [0, 0, channel], f'{node} reads wh channel {begin}, expected {channel}')
    parts = graph.nodes['tower_0/concat_1'].inputs
    require([p.split('/')[-1] for p in parts] == ['sub', 'sub_1', 'add_1', 'add_2', 'ExpandDims_3', 'Cast_3', 'axis'],
            f'unexpected detection layout {parts}')
    return int(graph.scalar('tower_0/TopKV2/k')), float(scales.pop())


def decode_detections(heat, wh, k: int, cell: float):
    """heat [N,C,H,W], wh [N,4,H,W] (NCHW) -> detections [N,k,6] like the graph's decoder."""
    classes, width = heat.shape[1], heat.shape[3]
    # Channels-last: torch's CPU max-pool is ~15x faster in that layout than in NCHW (0.9
    # against 13.7 ms a frame here, a third of the whole forward pass), and the NHWC
    # flattening below is then a view.
    heat = heat.contiguous(memory_format=torch.channels_last)
    peaks = heat * (heat == F.max_pool2d(heat, 3, stride=1, padding=1)).to(heat.dtype)
    # Flattened in TF's NHWC order so that indices (and tie order) match the original.
    scores, idx = peaks.permute(0, 2, 3, 1).flatten(1).topk(k, dim=1)
    # TF lists equal scores by increasing index; torch.topk leaves their order open.
    idx, order = idx.sort(dim=1)
    scores = scores.gather(1, order)
    scores, order = scores.sort(dim=1, descending=True, stable=True)
    idx = idx.gather(1, order)
    cls = idx.remainder(classes)
    pos = idx.div(classes, rounding_mode='floor')  # y * W + x
    x = pos.remainder(width).to(heat.dtype) * cell
    y = pos.div(width, rounding_mode='floor').to(heat.dtype) * cell
    sides = wh.permute(0, 2, 3, 1).flatten(1, 2).gather(1, pos.unsqueeze(-1).expand(-1, -1, 4))
    return torch.stack([x - sides[..., 0], y - sides[..., 1], x + sides[..., 2], y + sides[..., 3],
                        scores, cls.to(heat.dtype)], dim=-1)


# ---------------------------------------------------------------------------
# The converted model
# ---------------------------------------------------------------------------

class CenterNet(nn.Module):
    def __init__(self, graph):
        super().__init__()
        self.input_hw = input_hw(graph, INPUT)
        self.layers, self.steps = build_steps(graph, INPUT, self.input_hw, [HEATMAP, BOX_SIZES])
        with torch.no_grad():
            heat, wh = self.heads(torch.zeros(1, *self.input_hw, 3))
        heat_shape = (1, *heat.shape[2:], heat.shape[1])
        require(tuple(wh.shape[1:]) == (4, *heat_shape[1:3]), 'wh head does not match the heatmap')
        self.k, self.cell = read_decoder_params(graph, heat_shape, self.input_hw)
        self.fold_upsamples_into_concats()

    def fold_upsamples_into_concats(self):
        """Each 2x upsample whose only reader is a channel concat is done by that concat,
        straight into its slice of the result (ConcatUpsampled)."""
        readers = {}
        for _, _, inputs in self.steps:
            for name in inputs:
                readers[name] = readers.get(name, 0) + 1
        producers = {name: (key, inputs) for name, key, inputs in self.steps}
        folded, steps = set(), []
        for name, key, inputs in self.steps:
            layer = self.layers[key]
            if isinstance(layer, Concat) and layer.dim == 1:
                upsampled = [i in producers and readers[i] == 1 and i not in (HEATMAP, BOX_SIZES)
                             and isinstance(self.layers[producers[i][0]], Upsample2xLegacy) for i in inputs]
                if any(upsampled):
                    self.layers[key] = ConcatUpsampled(upsampled)
                    folded.update(producers[i][0] for i, up in zip(inputs, upsampled) if up)
                    inputs = [producers[i][1][0] if up else i for i, up in zip(inputs, upsampled)]
            steps.append((name, key, inputs))
        self.steps = [step for step in steps if step[1] not in folded]
        for key in folded:
            del self.layers[key]

    def heads(self, images):
        """images [N,H,W,3] NHWC -> (heatmap, wh), NCHW."""
        values = {INPUT: images.permute(0, 3, 1, 2)}
        for name, key, inputs in self.steps:
            values[name] = self.layers[key](*(values[i] for i in inputs))
        return values[HEATMAP], values[BOX_SIZES]

    def forward(self, images):
        return decode_detections(*self.heads(images), self.k, self.cell)


def convert(model_json, out):
    graph = TfjsGraph(model_json)
    model = CenterNet(graph).eval()
    example = torch.rand(1, *model.input_hw, 3) * 255
    with torch.no_grad():
        # `heads` is kept as a second method: the network without the decoder, for callers
        # that decode themselves (Argus on CPU finds peaks above its threshold directly).
        traced = torch.jit.trace_module(model, {'forward': example, 'heads': example})
    frozen = torch.jit.freeze(traced, preserved_attrs=['heads'])
    nodes = [*frozen.graph.nodes(), *frozen.heads.graph.nodes()]
    foreign = sorted({n.kind() for n in nodes if n.kind().split('::')[0] not in ('aten', 'prim')})
    require(not foreign, f'traced graph uses non-libtorch ops {foreign}')
    out.parent.mkdir(parents=True, exist_ok=True)
    frozen.save(str(out))
    return model


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

def letterbox(path, size):
    from PIL import Image  # only needed with --images
    image = Image.open(path).convert('RGB')
    scale = size / max(image.size)
    resized = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    canvas = np.zeros((size, size, 3), np.float32)
    canvas[:resized.height, :resized.width] = np.asarray(resized, np.float32)
    return canvas


def compare_detections(ours, ref, what):
    """Max |diff| of (scores, boxes) between two [K,6] detection lists, or fails.
    Rows are paired by equal class and scores/boxes within tolerance rather than
    by rank: float noise may swap near-equal scores, and rows within noise of
    the top-k cut-off may be replaced by the next candidate, so those are skipped."""
    tol = np.array([BOX_TOL_PX] * 4 + [SCORE_TOL, 0])
    close = (np.abs(ours[:, None] - ref[None]) <= tol).all(-1)  # [K ours, K ref]
    cutoff = max(ours[-1, 4], ref[-1, 4]) + SCORE_TOL
    unmatched = (~close.any(1) & (ours[:, 4] > cutoff)).sum() + (~close.any(0) & (ref[:, 4] > cutoff)).sum()
    require(unmatched == 0, f'{what}: {unmatched} detections have no counterpart')
    rows = np.flatnonzero(ref[:, 4] > cutoff)
    pairs = ours[close[:, rows].argmax(0)], ref[rows]
    return np.abs(pairs[0][:, 4] - pairs[1][:, 4]).max(), np.abs(pairs[0][:, :4] - pairs[1][:, :4]).max(), len(rows)


def check_batch_invariance(module, items):
    """Each item of batches of 1, 2 and 3 must give its batch-1 detections."""
    items = torch.from_numpy(items)
    singles = [module(items[i:i + 1])[0].numpy() for i in range(3)]
    worst = 0.0
    for n in (1, 2, 3):
        batch = module(items[:n]).numpy()
        require(batch.shape == (n, 100, 6), f'batch {n}: output shape {batch.shape}')
        for i in range(n):
            worst = max(worst, *compare_detections(batch[i], singles[i], f'batch {n}, item {i}')[:2])
    return worst


def describe(detections, count):
    lines = []
    for x1, y1, x2, y2, score, cls in detections[:count].tolist():
        lines.append(f'    {COCO_NAMES[int(cls)]:>12} ({int(cls):2d}) {score:.3f}  '
                     f'box ({x1:6.1f}, {y1:6.1f}, {x2:6.1f}, {y2:6.1f})')
    return '\n'.join(lines)


def verify_tfjs(model, model_json, detections, images, script):
    """Runs the original graph with tfjs on `images` and compares heatmaps (from
    the eager module, same code as the traced one) and the saved file's detections."""
    node = shutil.which('node')
    require(node is not None, '--verify-tfjs needs node on PATH')
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, 'input.npy'), images)
        run = subprocess.run([node, str(script), str(model_json), os.path.join(tmp, 'input.npy'), tmp],
                             capture_output=True, text=True)
        require(run.returncode == 0, f'tfjs reference failed:\n{run.stderr.strip()}')
        print('  ' + run.stdout.strip())
        ref = {name: np.load(os.path.join(tmp, f'{name}.npy')) for name in ('keypoints', 'wh', 'detections')}
    with torch.no_grad():
        heat, wh = model.heads(torch.from_numpy(images))
    heat_diff = np.abs(heat.permute(0, 2, 3, 1).numpy() - ref['keypoints']).max()
    wh_diff = np.abs(wh.permute(0, 2, 3, 1).numpy() - ref['wh']).max()
    print(f'  heatmap max |diff| {heat_diff:.2e}, wh max |diff| {wh_diff:.2e} px')
    require(heat_diff <= HEATMAP_TOL, f'heatmap differs from tfjs by {heat_diff}')
    for i, (ours, theirs) in enumerate(zip(detections.numpy(), ref['detections'])):
        score_diff, box_diff, rows = compare_detections(ours, theirs, f'image {i} vs tfjs')
        top = ours[0, 5] == theirs[0, 5] and abs(ours[0, 4] - theirs[0, 4]) <= SCORE_TOL
        require(top, f'image {i}: top detection differs from tfjs')
        print(f'  image {i}: {rows} detections match tfjs: score max |diff| {score_diff:.1e}, '
              f'box max |diff| {box_diff:.1e} px')


def batch_check_inputs(images, size):
    """Three inputs for the batch check: the given pictures, then blocky random ones."""
    rng = np.random.default_rng(0)
    blocks = [np.kron(rng.uniform(0, 255, (16, 16, 3)), np.ones((size // 16, size // 16, 1))) for _ in range(3)]
    return np.concatenate([images, np.asarray(blocks, np.float32)])[:3]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model-json', type=Path, required=True, help='TF.js centernet.json (weights next to it)')
    parser.add_argument('--out', type=Path, required=True, help='TorchScript file to write')
    parser.add_argument('--images', type=Path, nargs='+', default=[], help='pictures to run the saved model on')
    parser.add_argument('--verify-tfjs', action='store_true',
                        help='compare with the original graph run by @tensorflow/tfjs on --images')
    parser.add_argument('--tfjs-script', type=Path, default=Path(__file__).with_name('tfjs_reference.mjs'))
    args = parser.parse_args()
    try:
        require(not args.verify_tfjs or args.images, '--verify-tfjs needs --images')
        started = time.perf_counter()
        model = convert(args.model_json, args.out)
        print(f'wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - started:.1f} s')

        started = time.perf_counter()
        saved = torch.jit.load(str(args.out))
        size = model.input_hw[0]
        images = np.zeros((len(args.images), size, size, 3), np.float32)
        for image, path in zip(images, args.images):
            image[:] = letterbox(path, size)
        with torch.no_grad():
            worst = check_batch_invariance(saved, batch_check_inputs(images, size))
            print(f'batch 1/2/3: every item matches its batch-1 detections (max |diff| {worst:.1e}) '
                  f'in {time.perf_counter() - started:.1f} s')
            detections = saved(torch.from_numpy(images))
        for path, item in zip(args.images, detections):
            print(f'{path}:\n{describe(item, 5)}')

        if args.verify_tfjs:
            started = time.perf_counter()
            print('verifying against tfjs:')
            verify_tfjs(model, args.model_json, detections, images, args.tfjs_script)
            print(f'tfjs check passed in {time.perf_counter() - started:.1f} s')
    except (ConversionError, OSError) as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()
