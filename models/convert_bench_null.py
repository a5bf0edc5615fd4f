#!/usr/bin/env python3
"""Build bench-null: a TorchScript model with coco-centernet's interface and almost no
compute, so that a benchmark measures the platform's own cost (decoding, letterboxing,
batching, messaging, results) rather than the network's. For benchmarks only: it never
detects anything real, and nothing chooses it unless told (ARGUS_MODEL=bench-null).

    python models/convert_bench_null.py --out-dir "$ARGUS_MODELS_DIR" [--size 64] \
        [--check-against "$ARGUS_MODELS_DIR/coco-centernet.pt"]

Writes <out-dir>/bench-null.pt and its manifest <out-dir>/bench-null.json (labels, score
threshold and NMS IoU copied from models/coco-centernet.json), each only once the saved file
passes the checks below: one detection a frame from both methods, for batches of 1, 3 and 8,
and (with --check-against) the same output structure as coco-centernet's. Then it prints the
CPU time of both methods on a batch of 8. Any failed check exits with status 1. The module has both methods the "centernet" adapter uses,
with coco-centernet's layouts, dtypes and stride, at a --size x --size input:

    heads(images [N,S,S,3] float NHWC 0..255) -> (heatmap [N,80,S/4,S/4], box sides [N,4,S/4,S/4])
    forward(images)                          -> detections [N,100,6] (x1, y1, x2, y2, score, class)

forward's rows are what coco-centernet's own decoder (convert_centernet.decode_detections:
3x3 peaks, top-100 in the NHWC order, boxes from the sides) makes of heads' output, computed
once when the model is built (heads' output is the same for every frame) and checked against
that decoder on every build, so the GPU path (forward) and the CPU path (Argus decoding heads)
give the same detections, as with the real model, and neither does any real work.

heads is a constant map plus 0 x one input pixel per frame (a slice: the output follows
the batch and the graph keeps its input, but does no work per pixel). The map has one peak,
score 0.9, class 0 ("person"), at the cell (2, 2) whose sides are 8 px, so every frame gives
exactly ONE detection, the same one whatever the picture: the box (0, 0, 16, 16) in input
pixels, at the input's top-left corner, which a letterboxed frame always covers (it is
clamped to the frame when the frame is under 16 px there), i.e. (0, 0, 16/s, 16/s) in source
pixels at letterbox scale s. Every other cell is 0 (below any positive threshold; with a
threshold of 0 those rows have zero-area boxes, which the adapter drops).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert_centernet import decode_detections  # noqa: E402  (coco-centernet's decoder)

NAME = 'bench-null'
CLASSES = 80
STRIDE = 4  # input pixels per heatmap cell, as in coco-centernet (512 -> 128)
TOP_K = 100  # rows forward returns per frame, as in coco-centernet
PEAK_CELL = (2, 2)  # (y, x)
PEAK_SCORE = 0.9
PEAK_CLASS = 0
PEAK_SIDES = (8.0, 8.0, 8.0, 8.0)  # left, top, right, bottom, in input pixels


class BenchNull(nn.Module):
    def __init__(self, size):
        super().__init__()
        # At least 16: the peak's cell (2, 2) and its whole 16 px box fit in the input.
        if size % STRIDE or size < 16:
            raise ValueError(f'--size must be a multiple of {STRIDE}, at least 16')
        self.size = size
        cells = size // STRIDE
        heat = torch.zeros(1, CLASSES, cells, cells)
        heat[0, PEAK_CLASS, PEAK_CELL[0], PEAK_CELL[1]] = PEAK_SCORE
        sides = torch.zeros(1, 4, cells, cells)
        sides[0, :, PEAK_CELL[0], PEAK_CELL[1]] = torch.tensor(PEAK_SIDES)
        self.register_buffer('heat', heat)
        self.register_buffer('sides', sides)
        # What coco-centernet's decoder makes of these heads: forward's answer for every frame.
        self.register_buffer('rows', decode_detections(heat, sides, TOP_K, float(STRIDE)))

    def heads(self, images):
        """images [N,H,W,3] NHWC -> (heatmap [N,80,H/4,W/4], sides [N,4,H/4,W/4]), NCHW."""
        zero = images[:, :1, :1, :1] * 0.0  # [N,1,1,1]: the batch, from the input
        return self.heat + zero, self.sides + zero

    def forward(self, images):
        """images [N,H,W,3] -> detections [N,100,6]: decode_detections of heads' (constant)
        output, computed once here rather than per batch (checked equal in `check`)."""
        return self.rows + images[:, :1, :1, 0] * 0.0  # [1,100,6] + [N,1,1]


def build(size, out_dir, labels_from):
    model = BenchNull(size).eval()
    example = torch.rand(2, size, size, 3) * 255
    with torch.no_grad():
        traced = torch.jit.trace_module(model, {'forward': example, 'heads': example})
    frozen = torch.jit.freeze(traced, preserved_attrs=['heads'])
    pt = out_dir / f'{NAME}.pt'
    manifest = out_dir / f'{NAME}.json'
    coco = json.loads(labels_from.read_text())
    spec = {
        'name': NAME,
        'description': (
            'FOR BENCHMARKS ONLY, never a default: no real detections. coco-centernet\'s interface '
            f'(adapter centernet, {CLASSES} COCO labels, stride {STRIDE}, top {TOP_K}) with almost no '
            'compute; every frame gives the same one detection, "person" 0.9 at the input box '
            '(0, 0, 16, 16). Made by models/convert_bench_null.py'),
        'file': pt.name,
        'adapter': 'centernet',
        'input_size': [size, size],
        'score_threshold': coco['score_threshold'],
        'nms_iou': coco['nms_iou'],
        'labels': coco['labels'],
    }
    if len(spec['labels']) != CLASSES:
        raise ValueError(f'{labels_from} has {len(spec["labels"])} labels, expected {CLASSES}')
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = Path(f'{pt}.part'), Path(f'{manifest}.part')
    frozen.save(str(parts[0]))
    parts[1].write_text(json.dumps(spec, indent=2) + '\n')
    return parts, (pt, manifest)


# ---------------------------------------------------------------------------
# Checks: the interface against coco-centernet's, the detections, the speed
# ---------------------------------------------------------------------------

def describe_outputs(module, size, batch):
    """Runs `module` as the detector does (float NHWC 0..255 batch of the manifest's size)."""
    images = torch.zeros(batch, size, size, 3)
    with torch.no_grad():
        out = module(images)
        heads = module.heads(images)
    return out, heads


def shape_line(t):
    return f'{list(t.shape)} {str(t.dtype).removeprefix("torch.")} rank {t.dim()}'


def structure(out, heads, size):
    """What the adapter relies on, with sizes relative to the input: comparable across models."""
    heat, sides = heads
    return {
        'forward': (out.dim(), out.dtype, out.shape[1], out.shape[2]),
        'heads': (type(heads).__name__, len(heads)),
        'heatmap': (heat.dim(), heat.dtype, heat.shape[1], size / heat.shape[2], size / heat.shape[3]),
        'sides': (sides.dim(), sides.dtype, sides.shape[1], size / sides.shape[2], size / sides.shape[3]),
    }


def adapter_detections(rows, labels, size, threshold):
    """The centernet adapter's forward decoding, minus NMS: rows at or above the threshold,
    clamped to the input, with a positive area."""
    found = []
    for x1, y1, x2, y2, score, cls in rows.tolist():
        if not score >= threshold:
            continue
        box = [min(max(v, 0.0), float(size)) for v in (x1, y1, x2, y2)]
        if box[2] > box[0] and box[3] > box[1]:
            found.append((labels[int(cls)], round(score, 4), box))
    return found


def check(pt, manifest, coco_pt, coco_manifest):
    """Exits with status 1 unless the saved file gives one detection a frame on both paths
    (and, given coco_pt, has its interface)."""
    spec = json.loads(manifest.read_text())
    size = spec['input_size'][0]
    ours = torch.jit.load(str(pt))
    models = [('bench-null', ours, size)]
    if coco_pt is not None:
        coco_size = json.loads(coco_manifest.read_text())['input_size'][0]
        models.insert(0, ('coco-centernet', torch.jit.load(str(coco_pt)), coco_size))
    results = {}
    for label, module, n in models:
        out, heads = describe_outputs(module, n, 2)
        print(f'{label} (input [2, {n}, {n}, 3] float32):')
        print(f'  forward -> {shape_line(out)}')
        print(f'  heads   -> {type(heads).__name__} of {len(heads)}: '
              + ', '.join(shape_line(t) for t in heads))
        results[label] = structure(out, heads, n)
    if coco_pt is not None:
        if results['coco-centernet'] != results['bench-null']:
            raise SystemExit(f'interface differs: {results}')
        print('same interface: forward [N,100,6] float32; heads (heatmap [N,80,S/4,S/4], '
              'sides [N,4,S/4,S/4]) float32')

    # The batch follows the input, every frame gives the same single detection on both paths.
    threshold = spec['score_threshold']
    for n in (1, 3, 8):
        images = torch.rand(n, size, size, 3) * 255
        with torch.no_grad():
            out = ours(images)
            heat, sides = ours.heads(images)
        if out.shape != (n, TOP_K, 6) or heat.shape[0] != n or sides.shape[0] != n:
            raise SystemExit(f'batch {n}: shapes {out.shape} {heat.shape} {sides.shape}')
        for frame in out:
            for t in (threshold, 0.0):
                found = adapter_detections(frame, spec['labels'], size, t)
                if found != [('person', PEAK_SCORE, [0.0, 0.0, 16.0, 16.0])]:
                    raise SystemExit(f'batch {n}, threshold {t}: detections {found}')
        decoded = decode_detections(heat, sides, TOP_K, float(STRIDE))
        if not torch.equal(out, decoded):
            raise SystemExit(f'batch {n}: forward differs from the decoder on heads by '
                             f'{(out - decoded).abs().max().item()}')
        peaks = (heat >= threshold).nonzero().tolist()
        if peaks != [[i, PEAK_CLASS, *PEAK_CELL] for i in range(n)]:
            raise SystemExit(f'batch {n}: heatmap cells above the threshold {peaks}')
    print(f'every frame (batches 1, 3, 8; random pictures; thresholds {threshold} and 0): one detection, '
          f'person {PEAK_SCORE} at input box (0, 0, 16, 16), from forward and from heads alike')

    # Speed: a batch of 8 on 1 intra-op thread, as the detector's CPU replicas run by default
    # (and as the scale benchmark runs them); the best of 5 rounds.
    images = torch.rand(8, size, size, 3) * 255
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for method in ('forward', 'heads'):
        run = getattr(ours, method)
        with torch.no_grad():
            for _ in range(20):
                run(images)
            reps, best = 2000, float('inf')
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(reps):
                    run(images)
                best = min(best, (time.perf_counter() - started) / reps)
        print(f'bench-null {method:7s} on the CPU, batch 8, 1 thread: {best * 1e6:6.1f} us a batch, '
              f'{best / 8 * 1e6:5.2f} us a frame')
    torch.set_num_threads(threads)


def main():
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out-dir', type=Path, required=True, help='where bench-null.pt and .json go')
    parser.add_argument('--size', type=int, default=64, help='input width = height, a multiple of 4 (64)')
    parser.add_argument('--labels-from', type=Path, default=here / 'coco-centernet.json',
                        help='manifest whose labels, score_threshold and nms_iou are copied')
    parser.add_argument('--check-against', type=Path,
                        help='coco-centernet.pt to compare the interface with (its manifest: --labels-from)')
    args = parser.parse_args()
    torch.manual_seed(0)
    (pt_part, manifest_part), (pt, manifest) = build(args.size, args.out_dir, args.labels_from)
    try:
        check(pt_part, manifest_part, args.check_against, args.labels_from)
    except BaseException:
        pt_part.unlink(missing_ok=True)
        manifest_part.unlink(missing_ok=True)
        raise
    # Installed only once checked; the manifest last, since the registry lists manifests.
    pt_part.rename(pt)
    manifest_part.rename(manifest)
    print(f'wrote {pt} ({pt.stat().st_size / 1024:.0f} KiB) and {manifest}')


if __name__ == '__main__':
    main()
