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
import base64
import json
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


class ConversionError(Exception):
    pass


def require(condition, message):
    if not condition:
        raise ConversionError(message)


# ---------------------------------------------------------------------------
# TF.js graph model loading
# ---------------------------------------------------------------------------

class Node:
    def __init__(self, raw):
        self.name = raw['name']
        self.op = raw['op']
        self.inputs = raw.get('input', [])
        self.attr = raw.get('attr', {})

    def string(self, key):
        return base64.b64decode(self.attr[key]['s']).decode()

    def ints(self, key):
        return [int(i) for i in self.attr[key]['list'].get('i', [])]

    def strings(self, key):
        return [base64.b64decode(s).decode() for s in self.attr.get(key, {}).get('list', {}).get('s', [])]

    def flag(self, key):
        return bool(self.attr.get(key, {}).get('b', False))

    def __repr__(self):
        return f'{self.op} node {self.name!r}'


class TfjsGraph:
    """Nodes of a TF.js graph model plus its constants, dequantized to numpy."""

    def __init__(self, model_json):
        model_json = Path(model_json)
        spec = json.loads(model_json.read_text())
        require(spec.get('format') == 'graph-model', f'{model_json}: not a TF.js graph model')
        self.nodes = {}
        for raw in spec['modelTopology']['node']:
            node = Node(raw)
            self.nodes[node.name] = node
        self.consts = self._load_weights(model_json.parent, spec['weightsManifest'])
        for node in self.nodes.values():
            require(node.op != 'Const' or node.name in self.consts, f'{node} has no weight data')

    @staticmethod
    def _load_weights(folder, manifest):
        consts = {}
        for group in manifest:
            data = b''.join((folder / p).read_bytes() for p in group['paths'])
            offset = 0
            for spec in group['weights']:
                count = int(np.prod(spec['shape'], dtype=np.int64))
                dtype = spec.get('quantization', {}).get('dtype', spec['dtype'])
                # float16 "quantization" is plain half precision: widen to float32.
                numpy_dtype = {'float16': np.float16, 'float32': np.float32, 'int32': np.int32}.get(dtype)
                require(numpy_dtype is not None, f'weight {spec["name"]}: unsupported storage dtype {dtype}')
                size = count * np.dtype(numpy_dtype).itemsize
                require(offset + size <= len(data), f'weight {spec["name"]}: weight file too short')
                array = np.frombuffer(data, numpy_dtype, count, offset).reshape(spec['shape'])
                consts[spec['name']] = array.astype(spec['dtype'])
                offset += size
            require(offset == len(data), f'weights of {group["paths"]}: {len(data) - offset} bytes left over')
        return consts

    def const(self, name):
        require(name in self.consts, f'{name!r} is expected to be a constant')
        return self.consts[name]

    def scalar(self, name):
        value = self.const(name)
        require(value.size == 1, f'constant {name!r} is expected to be a scalar, has shape {value.shape}')
        return value.item()

    def ordered_ancestors(self, outputs):
        """Non-constant nodes the outputs depend on, in evaluation order."""
        order, seen = [], set()

        def visit(name):
            require(not name.startswith('^'), f'control dependency {name!r} is not supported')
            require(':' not in name or name.endswith(':0'), f'multi-output reference {name!r} in the network part')
            name = name.removesuffix(':0')
            require(name in self.nodes, f'reference to unknown node {name!r}')
            if name in seen or self.nodes[name].op == 'Const':
                return
            seen.add(name)
            for i in self.nodes[name].inputs:
                visit(i)
            order.append(self.nodes[name])

        for output in outputs:
            visit(output)
        return order


# ---------------------------------------------------------------------------
# Lowering of TF ops to torch modules (activations NCHW)
# ---------------------------------------------------------------------------

NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


def nchw_axis(axis):
    return NHWC_TO_NCHW_AXIS[int(axis) % 4]


def tf_same_padding(size, kernel, stride, dilation):
    """TF 'SAME' padding (before, after) along one axis; odd totals put the
    extra row/column after (e.g. (0, 1) for a 3x3 stride-2 conv on even sizes)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def const_tensor(array):
    return torch.from_numpy(np.ascontiguousarray(array))


class Conv(nn.Module):
    """TF convolution with its fused BiasAdd and activation, on NCHW."""

    def __init__(self, weight, bias, stride, dilation, pads, groups, activation):
        super().__init__()
        self.register_buffer('weight', weight)
        self.register_buffer('bias', bias)
        self.stride, self.dilation, self.groups = stride, dilation, groups
        (top, bottom), (left, right) = pads
        # Symmetric padding goes into the conv itself; TF's asymmetric SAME
        # padding (stride 2) needs an explicit pad first.
        if top == bottom and left == right:
            self.pad, self.conv_padding = None, (top, left)
        else:
            self.pad, self.conv_padding = (left, right, top, bottom), (0, 0)
        self.activation = activation

    def forward(self, x):
        if self.pad is not None:
            x = F.pad(x, self.pad)
        x = F.conv2d(x, self.weight, self.bias, self.stride, self.conv_padding, self.dilation, self.groups)
        return self.activation(x)


# In place: the conv's output is fresh and read by nothing else, and rewriting it saves a
# pass into a new buffer (the largest activations are 16 MB).
FUSED_ACTIVATIONS = {(): nn.Identity, ('Relu',): lambda: nn.ReLU(inplace=True),
                     ('Relu6',): lambda: nn.ReLU6(inplace=True)}


def lower_conv(node, graph, in_shapes, depthwise):
    require(node.string('data_format') == 'NHWC', f'{node}: only NHWC is supported')
    stride_n, stride_h, stride_w, stride_c = node.ints('strides')
    dil = node.ints('dilations') if 'dilations' in node.attr else [1, 1, 1, 1]
    require(stride_n == stride_c == dil[0] == dil[3] == 1, f'{node}: batch/channel strides or dilations')
    filt = graph.const(node.inputs[1])  # [kh, kw, in, out] or, depthwise, [kh, kw, in, multiplier]
    kh, kw, cin = filt.shape[:3]
    if depthwise:
        # Output channel c*multiplier+m uses filt[:, :, c, m]: reshaping keeps that order.
        weight = filt.reshape(kh, kw, -1).transpose(2, 0, 1)[:, None]
        groups = cin
    else:
        weight = filt.transpose(3, 2, 0, 1)
        groups = 1
    fused = node.strings('fused_ops')
    bias = None
    if fused[:1] == ['BiasAdd']:
        require(len(node.inputs) == 3, f'{node}: BiasAdd without a bias input')
        bias = const_tensor(graph.const(node.inputs[2]))
        fused = fused[1:]
    else:
        require(len(node.inputs) == 2, f'{node}: extra inputs without BiasAdd')
    require(tuple(fused) in FUSED_ACTIVATIONS, f'{node}: unsupported fused ops {node.strings("fused_ops")}')
    _, cin_x, height, width = in_shapes[0]
    require(cin_x == cin, f'{node}: input has {cin_x} channels, filter expects {cin}')
    padding = node.string('padding')
    if padding == 'SAME':
        pads = (tf_same_padding(height, kh, stride_h, dil[1]), tf_same_padding(width, kw, stride_w, dil[2]))
    else:
        require(padding == 'VALID', f'{node}: unsupported padding {padding}')
        pads = ((0, 0), (0, 0))
    return Conv(const_tensor(weight), bias, (stride_h, stride_w), (dil[1], dil[2]), pads, groups,
                FUSED_ACTIVATIONS[tuple(fused)]())


def lower_conv2d(node, graph, in_shapes):
    return lower_conv(node, graph, in_shapes, depthwise=False)


def lower_depthwise_conv2d(node, graph, in_shapes):
    return lower_conv(node, graph, in_shapes, depthwise=True)


class Binary(nn.Module):
    """Elementwise op on two activations, or on an activation and a scalar constant."""

    def __init__(self, fn, const=None, const_position=-1):
        super().__init__()
        self.fn = fn
        self.register_buffer('const', const)
        self.const_position = const_position

    def forward(self, *activations):
        args = list(activations)
        if self.const_position >= 0:
            args.insert(self.const_position, self.const)
        return self.fn(*args)


def lower_binary(fn):
    def lower(node, graph, in_shapes):
        require(len(node.inputs) == 2, f'{node}: expected 2 inputs')
        consts = [i for i, name in enumerate(node.inputs) if name in graph.consts]
        if not consts:
            # Both rank 4 and permuted alike, so TF's broadcasting (e.g. the
            # squeeze-excite [N,1,1,C] * [N,H,W,C]) carries over axis by axis.
            return Binary(fn)
        require(len(consts) == 1, f'{node}: both operands constant')
        value = graph.const(node.inputs[consts[0]])
        # A non-scalar constant would broadcast along TF's last (channel) axis,
        # which is not the last axis here.
        require(value.size == 1, f'{node}: non-scalar constant operand of shape {value.shape}')
        return Binary(fn, torch.tensor(value.item(), dtype=torch.float32), consts[0])
    return lower


class Unary(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def lower_unary(fn):
    def lower(node, graph, in_shapes):
        require(len(node.inputs) == 1, f'{node}: expected 1 input')
        return Unary(fn)
    return lower


class Mean(nn.Module):
    def __init__(self, dims, keepdim):
        super().__init__()
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x):
        return x.mean(self.dims, keepdim=self.keepdim)


def lower_mean(node, graph, in_shapes):
    # Dropping an axis would break the rank-4 NCHW invariant of the activations.
    require(node.flag('keep_dims'), f'{node}: only keep_dims=true is supported')
    axes = np.atleast_1d(graph.const(node.inputs[1]))
    return Mean([nchw_axis(a) for a in axes], True)


class Concat(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, *xs):
        return torch.cat(xs, self.dim)


def lower_concat(node, graph, in_shapes):
    *parts, axis = node.inputs
    require(all(p not in graph.consts for p in parts), f'{node}: constant operands are not supported')
    return Concat(nchw_axis(graph.scalar(axis)))


class ResizeBilinearLegacy(nn.Module):
    """TF ResizeBilinear with align_corners=false, half_pixel_centers=false:
    source coordinate = destination * in/out (for 2x: out[2i] = in[i],
    out[2i+1] = (in[i] + in[min(i+1, n-1)]) / 2). torch's bilinear modes use
    half-pixel centres, hence the explicit gathers."""

    def __init__(self, in_hw, out_hw):
        super().__init__()
        for axis, n_in, n_out in (('y', in_hw[0], out_hw[0]), ('x', in_hw[1], out_hw[1])):
            src = np.arange(n_out, dtype=np.float64) * (n_in / n_out)
            lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
            hi = np.minimum(lo + 1, n_in - 1)
            self.register_buffer(f'{axis}_lo', torch.from_numpy(lo))
            self.register_buffer(f'{axis}_hi', torch.from_numpy(hi))
            self.register_buffer(f'{axis}_frac', torch.from_numpy((src - lo).astype(np.float32)))

    def forward(self, x):
        # Same order as TF: along x first, then along y.
        left, right = x.index_select(3, self.x_lo), x.index_select(3, self.x_hi)
        x = left + (right - left) * self.x_frac
        top, bottom = x.index_select(2, self.y_lo), x.index_select(2, self.y_hi)
        return top + (bottom - top) * self.y_frac[:, None]


def upsample2x_legacy_into(x, out):
    """ResizeBilinearLegacy for exactly twice the size, the case this graph has, written into
    `out` ([N,C,2H,2W], possibly a channel slice of a larger tensor). Slices instead of gathers,
    with the same arithmetic (left + (right - left) * 0.5, along x first): bit-identical, and
    ~6x faster on CPU (the gathers took ~4 ms a frame). Each pass writes its even and odd
    samples straight into the interleaved result: no padded copy of the input, no stacked
    copy of the output."""
    n, c, h, w = x.shape
    # Along x: row[2i] = x[i], row[2i+1] = x[i] + (x[i+1] - x[i]) * 0.5, and the last column
    # repeated (x + (x - x) * 0.5 is x).
    rows = x.new_empty(n, c, h, w, 2)
    rows[..., 0] = x
    rows[:, :, :, :-1, 1] = x[..., :-1] + (x[..., 1:] - x[..., :-1]) * 0.5
    rows[:, :, :, -1, 1] = x[..., -1]
    x = rows.flatten(3, 4)
    # Then along y, the same way, into `out`.
    out = out.view(n, c, h, 2, 2 * w)
    out[:, :, :, 0] = x
    out[:, :, :-1, 1] = x[:, :, :-1] + (x[:, :, 1:] - x[:, :, :-1]) * 0.5
    out[:, :, -1, 1] = x[:, :, -1]


class Upsample2xLegacy(nn.Module):
    def forward(self, x):
        n, c, h, w = x.shape
        out = x.new_empty(n, c, 2 * h, 2 * w)
        upsample2x_legacy_into(x, out)
        return out


class ConcatUpsampled(nn.Module):
    """ConcatV2 along channels of activations, some of them Upsample2xLegacy results that
    nothing else reads (the head's FPN: skip + upsampled, three times): those are upsampled
    straight into their slice of the result, which saves a pass over the largest activations
    of the network (the last one is 128 channels of 128x128). Same values as resize + concat."""

    def __init__(self, upsampled):
        super().__init__()
        self.upsampled = upsampled  # per input: is it the input of an elided 2x upsample

    def forward(self, *xs):
        n = xs[0].shape[0]
        scale = 2 if self.upsampled[0] else 1
        height, width = xs[0].shape[2] * scale, xs[0].shape[3] * scale
        out = xs[0].new_empty(n, sum(x.shape[1] for x in xs), height, width)
        start = 0
        for x, upsampled in zip(xs, self.upsampled):
            part = out[:, start:start + x.shape[1]]
            if upsampled:
                upsample2x_legacy_into(x, part)
            else:
                part.copy_(x)
            start += x.shape[1]
        return out


def lower_resize_bilinear(node, graph, in_shapes):
    require(not node.flag('align_corners') and not node.flag('half_pixel_centers'),
            f'{node}: only the legacy (no align_corners, no half_pixel_centers) mode is supported')
    out_hw = [int(v) for v in graph.const(node.inputs[1])]
    if out_hw == [2 * n for n in in_shapes[0][2:]]:
        return Upsample2xLegacy()
    return ResizeBilinearLegacy(in_shapes[0][2:], out_hw)


LOWERINGS = {
    'Conv2D': lower_conv2d,
    '_FusedConv2D': lower_conv2d,
    'DepthwiseConv2dNative': lower_depthwise_conv2d,
    'FusedDepthwiseConv2dNative': lower_depthwise_conv2d,
    'Add': lower_binary(torch.add),
    'Sub': lower_binary(torch.sub),
    'Mul': lower_binary(torch.mul),
    'Relu': lower_unary(F.relu),
    'Relu6': lower_unary(F.relu6),
    'Sigmoid': lower_unary(torch.sigmoid),
    'Identity': lower_unary(lambda x: x),
    'Mean': lower_mean,
    'ConcatV2': lower_concat,
    'ResizeBilinear': lower_resize_bilinear,
}


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
        placeholder = graph.nodes[INPUT]
        dims = [int(d['size']) for d in placeholder.attr['shape']['shape']['dim']]
        require(len(dims) == 4 and dims[3] == 3, f'unexpected input shape {dims}')
        self.input_hw = dims[1:3]
        self.layers = nn.ModuleDict()
        self.steps = []  # (node name, layer key, names of its activation inputs)
        # Lowering needs input shapes (SAME padding, resize), so every layer is
        # run once on a zero probe as it is built.
        probe = {INPUT: torch.zeros(1, 3, *self.input_hw)}
        with torch.no_grad():
            for node in graph.ordered_ancestors([HEATMAP, BOX_SIZES]):
                if node.op == 'Placeholder':
                    require(node.name == INPUT, f'unexpected input {node.name!r}')
                    continue
                lower = LOWERINGS.get(node.op)
                require(lower is not None, f'unsupported op kind {node.op!r} (node {node.name!r})')
                inputs = [name for name in node.inputs if name not in graph.consts]
                layer = lower(node, graph, [tuple(probe[name].shape) for name in inputs])
                key = f'{len(self.steps):03d}_{node.op}'
                self.layers[key] = layer
                self.steps.append((node.name, key, inputs))
                probe[node.name] = layer(*(probe[name] for name in inputs))
                require(probe[node.name].dim() == 4, f'{node}: result is not rank 4')
        heat_shape = (1, *probe[HEATMAP].shape[2:], probe[HEATMAP].shape[1])
        require(tuple(probe[BOX_SIZES].shape[1:]) == (4, *heat_shape[1:3]), 'wh head does not match the heatmap')
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
