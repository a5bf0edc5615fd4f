"""A TensorFlow.js graph model read node by node and lowered to torch modules: what the
converters of the bundled models (convert_centernet.py, convert_faces.py) share.

`TfjsGraph` reads `model.json` and its weight shards (float16 "quantization" widened to
float32). `build_steps` lowers the nodes one output set depends on into small torch modules,
one lowering function per TF op kind (`LOWERINGS`); `run_steps` evaluates them. Activations
are kept NCHW inside (torch's native conv layout); the TF NHWC layout is handled explicitly at
the input, in axis attributes (Mean, ConcatV2, Pad), in filter layouts and in per-channel
constants. Anything the lowering does not understand raises ConversionError, never a guess.
"""

import base64
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


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


class Prelu(nn.Module):
    """TF.js Prelu: x where x > 0, else alpha * x, alpha one value per channel."""

    def __init__(self, alpha):
        super().__init__()
        self.register_buffer('alpha', alpha)

    def forward(self, x):
        return torch.where(x > 0, x, x * self.alpha)


def lower_prelu(node, graph, in_shapes):
    require(len(in_shapes) == 1 and len(in_shapes[0]) == 4, f'{node}: expected one rank-4 activation')
    alpha = graph.const(node.inputs[1]).astype(np.float32)
    channels = in_shapes[0][1]
    require(alpha.size == channels, f'{node}: alpha of shape {alpha.shape} for {channels} channels')
    return Prelu(const_tensor(alpha.reshape(1, channels, 1, 1)))


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
    args = 2
    if fused[:1] == ['BiasAdd']:
        require(len(node.inputs) >= 3, f'{node}: BiasAdd without a bias input')
        bias = const_tensor(graph.const(node.inputs[2]))
        fused = fused[1:]
        args = 3
    if tuple(fused) == ('Prelu',):
        # The alpha is the next input, one value per output channel.
        require(len(node.inputs) == args + 1, f'{node}: Prelu without its alpha input')
        alpha = graph.const(node.inputs[args]).astype(np.float32)
        activation = Prelu(const_tensor(alpha.reshape(1, -1, 1, 1)))
        args += 1
    else:
        require(tuple(fused) in FUSED_ACTIVATIONS, f'{node}: unsupported fused ops {node.strings("fused_ops")}')
        activation = FUSED_ACTIVATIONS[tuple(fused)]()
    require(len(node.inputs) == args, f'{node}: {len(node.inputs)} inputs for fused ops {node.strings("fused_ops")}')
    _, cin_x, height, width = in_shapes[0]
    require(cin_x == cin, f'{node}: input has {cin_x} channels, filter expects {cin}')
    padding = node.string('padding')
    if padding == 'SAME':
        pads = (tf_same_padding(height, kh, stride_h, dil[1]), tf_same_padding(width, kw, stride_w, dil[2]))
    else:
        require(padding == 'VALID', f'{node}: unsupported padding {padding}')
        pads = ((0, 0), (0, 0))
    return Conv(const_tensor(weight), bias, (stride_h, stride_w), (dil[1], dil[2]), pads, groups, activation)


def lower_conv2d(node, graph, in_shapes):
    return lower_conv(node, graph, in_shapes, depthwise=False)


def lower_depthwise_conv2d(node, graph, in_shapes):
    return lower_conv(node, graph, in_shapes, depthwise=True)


class Binary(nn.Module):
    """Elementwise op on two activations, or on an activation and a constant (a scalar, or one
    value per channel)."""

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
        value = graph.const(node.inputs[consts[0]]).astype(np.float32)
        if value.size == 1:
            return Binary(fn, torch.tensor(value.item(), dtype=torch.float32), consts[0])
        # One value per channel broadcasts along TF's last axis: the channel axis, which is
        # axis 1 here on a rank-4 activation and the last one on a rank-2 one.
        (shape,) = in_shapes
        channels = shape[1]
        require(value.shape[-1] == channels and value.size == channels,
                f'{node}: constant of shape {value.shape} on an activation of {channels} channels')
        view = (1, channels, 1, 1) if len(shape) == 4 else (1, channels)
        return Binary(fn, const_tensor(value.reshape(view)), consts[0])
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
    axes = sorted(nchw_axis(a) for a in np.atleast_1d(graph.const(node.inputs[1])))
    if node.flag('keep_dims'):
        return Mean(axes, True)
    # Without keep_dims only the global pooling over height and width is supported: it leaves
    # [N, C], the same in both layouts.
    require(axes == [2, 3], f'{node}: a mean without keep_dims over axes other than H and W')
    return Mean(axes, False)


class Reduce(nn.Module):
    """Sum over the channel axis of a rank-2 activation (an L2 norm's sum of squares)."""

    def __init__(self, keepdim):
        super().__init__()
        self.keepdim = keepdim

    def forward(self, x):
        return x.sum(1, keepdim=self.keepdim)


def lower_sum(node, graph, in_shapes):
    (shape,) = in_shapes[:1]
    axes = np.atleast_1d(graph.const(node.inputs[1])).tolist()
    require(len(shape) == 2 and [a % 2 for a in axes] == [1], f'{node}: only a sum over the last axis of [N, C]')
    return Reduce(node.flag('keep_dims'))


class Squeeze(nn.Module):
    def forward(self, x):
        return x.flatten(1)


def lower_squeeze(node, graph, in_shapes):
    (shape,) = in_shapes
    dims = [nchw_axis(a) for a in node.ints('squeeze_dims')]
    require(len(shape) == 4 and sorted(dims) == [2, 3] and shape[2:] == (1, 1),
            f'{node}: only squeezing a [N, 1, 1, C] activation to [N, C]')
    return Squeeze()


class ChannelPad(nn.Module):
    """TF Pad of an NHWC activation, as F.pad of its NCHW twin (zeros)."""

    def __init__(self, pads):
        super().__init__()
        self.pads = pads

    def forward(self, x):
        return F.pad(x, self.pads)


def lower_pad(node, graph, in_shapes):
    paddings = graph.const(node.inputs[1]).tolist()  # per NHWC axis: [before, after]
    require(len(paddings) == 4 and paddings[0] == [0, 0], f'{node}: unexpected paddings {paddings}')
    (n, c), (h, w) = paddings[3], (paddings[1], paddings[2])
    # F.pad lists the last axis first: W, then H, then C.
    return ChannelPad((*w, *h, n, c))


class MaxPool(nn.Module):
    def __init__(self, kernel, stride, pads):
        super().__init__()
        self.kernel, self.stride, self.pads = kernel, stride, pads

    def forward(self, x):
        if any(self.pads):
            x = F.pad(x, self.pads, value=float('-inf'))
        return F.max_pool2d(x, self.kernel, self.stride)


def lower_max_pool(node, graph, in_shapes):
    require(node.string('data_format') == 'NHWC', f'{node}: only NHWC is supported')
    _, kh, kw, _ = node.ints('ksize')
    _, sh, sw, _ = node.ints('strides')
    _, _, height, width = in_shapes[0]
    if node.string('padding') == 'SAME':
        (top, bottom), (left, right) = tf_same_padding(height, kh, sh, 1), tf_same_padding(width, kw, sw, 1)
    else:
        require(node.string('padding') == 'VALID', f'{node}: unsupported padding')
        top = bottom = left = right = 0
    return MaxPool((kh, kw), (sh, sw), (left, right, top, bottom))


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
    'AddV2': lower_binary(torch.add),
    'Sub': lower_binary(torch.sub),
    'Mul': lower_binary(torch.mul),
    'Maximum': lower_binary(torch.maximum),
    'Minimum': lower_binary(torch.minimum),
    'Relu': lower_unary(F.relu),
    'Relu6': lower_unary(F.relu6),
    'Prelu': lower_prelu,
    'Sigmoid': lower_unary(torch.sigmoid),
    'Abs': lower_unary(torch.abs),
    'Square': lower_unary(torch.square),
    'Rsqrt': lower_unary(torch.rsqrt),
    'Identity': lower_unary(lambda x: x),
    'Mean': lower_mean,
    'Sum': lower_sum,
    'Squeeze': lower_squeeze,
    'Pad': lower_pad,
    'MaxPool': lower_max_pool,
    'ConcatV2': lower_concat,
    'ResizeBilinear': lower_resize_bilinear,
}


def build_steps(graph, input_name, input_hw, outputs):
    """Lowers the nodes `outputs` depend on. Returns (layers, steps): a ModuleDict, and
    `(node name, layer key, names of its activation inputs)` in evaluation order. Lowering
    needs input shapes (SAME padding, resize), so every layer is run once on a zero probe as
    it is built."""
    layers, steps = nn.ModuleDict(), []
    probe = {input_name: torch.zeros(1, 3, *input_hw)}
    with torch.no_grad():
        for node in graph.ordered_ancestors(outputs):
            if node.op == 'Placeholder':
                require(node.name == input_name, f'unexpected input {node.name!r}')
                continue
            lower = LOWERINGS.get(node.op)
            require(lower is not None, f'unsupported op kind {node.op!r} (node {node.name!r})')
            inputs = [name for name in node.inputs if name not in graph.consts]
            layer = lower(node, graph, [tuple(probe[name].shape) for name in inputs])
            key = f'{len(steps):03d}_{node.op}'
            layers[key] = layer
            steps.append((node.name, key, inputs))
            probe[node.name] = layer(*(probe[name] for name in inputs))
            require(probe[node.name].dim() in (2, 4), f'{node}: result is neither rank 4 nor rank 2')
    return layers, steps


def input_hw(graph, input_name):
    """(height, width) of an NHWC RGB input placeholder."""
    placeholder = graph.nodes[input_name]
    dims = [int(d['size']) for d in placeholder.attr['shape']['shape']['dim']]
    require(len(dims) == 4 and dims[3] == 3 and min(dims[1:3]) > 0, f'unexpected input shape {dims}')
    return dims[1:3]
