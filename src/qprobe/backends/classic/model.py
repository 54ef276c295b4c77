"""The classic backend's network: one MobileNetV2 trunk, two heads.

* ``quality`` head: global average pooling of the last feature map (1280
  channels) → dropout → linear → a score on the 1–5 MOS scale. Trained on
  CLIVE at native resolution (random crops, L1 + (1 − batch PLCC)).
  ``members`` > 1 makes it an ensemble: each member has its own fine-tuned
  copy of blocks [split, 19) and its own head on the shared frozen stem, and
  the score is the members' mean (member 0 lives in ``features`` and
  ``quality``; the others in ``extra_tops`` / ``extra_quality``).
* ``defect`` head: a per-location classifier on the frozen stride-8 feature
  map (output of the first ``defect_tap`` blocks, 32 channels: low-level
  ImageNet features, where blur, noise and compression show) concatenated
  with its deviation from the crop's mean feature (context: a blurred patch
  inside sharp texture differs from its surroundings, a depth-of-field
  background does not), reduced to stride 16 → logits over
  ``config.classes`` (index 0 = clean) and a severity regression (1–5).
  ``defect_adapt = k`` gives the head its own copies of the tap's last ``k``
  blocks, fine-tuned with it (the quality stem keeps reading the frozen
  ImageNet blocks); off by default: at stop 24, k = 1 found more than the
  frozen tap on the same crops but fired on clean texture, and no more than
  the shipped head (docs/classic-experiments.md).

The trunk's first ``split`` blocks are frozen at their ImageNet values
during training (BN statistics kept), the later blocks are fine-tuned on
CLIVE. DESIGN §2.3 froze the first 7; measured by 5-fold CV on CLIVE,
freezing the first 14 (fine-tuning only the stride-32 blocks 14–18)
generalizes better (SRCC 0.843 vs 0.830) in a third of the time, so the
training default is ``split = 14`` (README). The defect head reads only
frozen blocks (``defect_tap <= split``), so fine-tuning the regressor — per
cross-validation fold or for the shipped model — never invalidates it.

``aux = "efficientnet_lite0"`` adds a second quality regressor on another
ImageNet backbone (:class:`~qprobe.backends.classic.efficientnet.LiteQuality`,
its stem frozen, its later blocks fine-tuned the same way); the quality
score is then the mean over every top, the MobileNetV2 members and the
EfficientNet one alike. Two backbones err differently: measured by 5-fold
CV on CLIVE, their mean scores better than either (README).

Torch-only module: import it only on torch code paths.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from qprobe.backends.classic.core import five_crop_origins
from qprobe.backends.classic.mobilenet import MobileNetV2, normalize



@dataclass
class NetConfig:
    split: int = field(default=7, metadata={"help": "Blocks [0, split) form the frozen stem; the rest is fine-tuned."})
    defect_tap: int = field(
        default=7, metadata={"help": "The defect head reads the output of blocks [0, defect_tap) (frozen, stride 8)."}
    )
    dropout: float = field(default=0.2, metadata={"help": "Dropout before the quality head."})
    defect_hidden: int = field(default=64, metadata={"help": "Hidden width of the defect head."})
    classes: list[str] = field(
        default_factory=lambda: ["clean"],
        metadata={"help": "Defect class names; index 0 is 'clean' (set from the benchmark's degradations)."},
    )
    score_flip: bool = field(
        default=False,
        metadata={"help": "Score the global view as the mean over it and its mirror (set when trained with flips)."},
    )
    members: int = field(
        default=1,
        metadata={"help": "Quality tops on the shared frozen stem (an ensemble: the score is their mean)."},
    )
    aux: str = field(
        default="",
        metadata={"help": "A second quality backbone averaged with the tops: '' (none) or 'efficientnet_lite0'."},
    )
    defect_adapt: int = field(
        default=0,
        metadata={
            "help": "The defect head's own fine-tuned copies of the tap's last k blocks (0: the head reads the frozen "
            "tap); the quality stem keeps the frozen ImageNet blocks either way."
        },
    )
    defect_surround: int = field(
        default=0,
        metadata={
            "help": "0: the defect head sees the tap and its deviation from the crop's mean; k > 0: also its "
            "deviation from the mean of the k x k tap cells around it (odd k; a local surround)."
        },
    )


AUX_BACKBONES = ("efficientnet_lite0",)


def five_crops(feat: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Four corners and the centre of an N x C x h x w map (the whole map if it is small)."""
    ch, cw, origins = five_crop_origins(int(feat.shape[2]), int(feat.shape[3]), size)
    return [feat[:, :, y : y + ch, x : x + cw] for y, x in origins]


class ClassicNet(nn.Module):
    """MobileNetV2 trunk with a quality head and a dense defect head."""

    def __init__(self, config: NetConfig | None = None) -> None:
        super().__init__()
        self.config = config or NetConfig()
        trunk = MobileNetV2()
        self.features = trunk.features
        self.dropout = nn.Dropout(self.config.dropout)
        self.quality = nn.Linear(1280, 1)
        cin = (3 if self.config.defect_surround > 0 else 2) * self._stem_channels()
        h = self.config.defect_hidden
        if self.config.defect_tap > self.config.split:
            raise ValueError(f"defect_tap ({self.config.defect_tap}) must not exceed split ({self.config.split})")
        self.defect = nn.Sequential(
            nn.Conv2d(cin, h, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(h, h, 3, stride=2, padding=1),  # stride 8 -> 16
            nn.ReLU(inplace=True),
            nn.Conv2d(h, h, 3, padding=2, dilation=2),  # wider context
            nn.ReLU(inplace=True),
            nn.Conv2d(h, len(self.config.classes) + 1, 1),
        )
        nn.init.constant_(self.quality.bias, 3.0)
        nn.init.normal_(self.quality.weight, std=1e-3)
        # members 1.. of the ensemble: their own copies of blocks [split, 19) and head
        n_extra = max(0, int(self.config.members) - 1)
        self.extra_tops = nn.ModuleList(
            nn.Sequential(*(copy.deepcopy(b) for b in self.features[self.config.split :])) for _ in range(n_extra)
        )
        self.extra_quality = nn.ModuleList(copy.deepcopy(self.quality) for _ in range(n_extra))
        k_adapt = int(self.config.defect_adapt)
        if not 0 <= k_adapt < self.config.defect_tap:
            raise ValueError(f"defect_adapt must be in 0..{self.config.defect_tap - 1}, got {k_adapt}")
        # the head's fine-tuned copies of blocks [defect_tap - k, defect_tap) (empty: it reads the frozen tap)
        self.defect_adapt = nn.Sequential(*(copy.deepcopy(b) for b in self.features[self.frozen_tap : self.config.defect_tap]))
        self.aux: nn.Module | None = None
        if self.config.aux:
            if self.config.aux not in AUX_BACKBONES:
                raise ValueError(f"unknown aux backbone {self.config.aux!r}; choose from {list(AUX_BACKBONES)}")
            from qprobe.backends.classic.efficientnet import LiteQuality

            self.aux = LiteQuality(self.config.dropout)

    def _stem_channels(self) -> int:
        block = self.features[self.config.defect_tap - 1]
        return int(getattr(block, "out_channels", 32))

    @property
    def frozen_tap(self) -> int:
        """Blocks [0, frozen_tap) are what :meth:`tap` returns: the frozen part the defect head and stem share."""
        return int(self.config.defect_tap) - int(self.config.defect_adapt)

    def reset_defect_adapt(self) -> None:
        """Start the head's own tap blocks (``defect_adapt``) from the frozen blocks they copy."""
        for dst, src in zip(self.defect_adapt, self.features[self.frozen_tap : self.config.defect_tap], strict=True):
            dst.load_state_dict(src.state_dict())

    # -- pieces ---------------------------------------------------------------
    def use_channels_last(self) -> "ClassicNet":
        """NHWC memory layout: ~1.3-1.5x faster depthwise convolutions on CPU (inference)."""
        self._channels_last = True
        return self.to(memory_format=torch.channels_last)  # type: ignore[return-value]

    def tap(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """Frozen blocks [0, frozen_tap): uint8 N x 3 x H x W → the defect head's input (stride 8).

        With ``defect_adapt`` = 0 this is the output of blocks [0, defect_tap); otherwise the head's
        own copies of the remaining tap blocks run inside :meth:`defect_logits`.
        """
        x = normalize(x_uint8)
        if getattr(self, "_channels_last", False):
            x = x.contiguous(memory_format=torch.channels_last)
        return self.features[: self.frozen_tap](x)

    def stem_from_tap(self, tap: torch.Tensor) -> torch.Tensor:
        """Frozen blocks [frozen_tap, split) on top of the tap."""
        return self.features[self.frozen_tap : self.config.split](tap)

    def stem(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """The frozen stem: blocks [0, split)."""
        return self.stem_from_tap(self.tap(x_uint8))

    def stem_stride(self) -> int:
        """Pixels per cell of the stem's output map (16 at split 14, 8 at split 7)."""
        stride = 1
        for m in self.features[: self.config.split].modules():
            if isinstance(m, nn.Conv2d):
                stride *= int(m.stride[0])
        return stride

    @property
    def n_members(self) -> int:
        """MobileNetV2 tops (the ``aux`` backbone, if any, is one more top)."""
        return 1 + len(self.extra_tops)

    @property
    def n_tops(self) -> int:
        """Every quality top the score averages: the MobileNetV2 members and the ``aux`` backbone."""
        return self.n_members + (self.aux is not None)

    def combine(self, mobile: torch.Tensor | float, aux: torch.Tensor | float | None) -> torch.Tensor | float:
        """The score from the MobileNetV2 ensemble's mean and the aux backbone's score (each top counts once)."""
        if aux is None:
            return mobile
        return (mobile * self.n_members + aux) / self.n_tops

    def member(self, k: int) -> tuple[nn.Sequential, nn.Linear]:
        """Member ``k``'s fine-tuned blocks [split, 19) and linear head (member 0 lives in ``features``)."""
        if k == 0:
            return self.features[self.config.split :], self.quality
        return self.extra_tops[k - 1], self.extra_quality[k - 1]  # type: ignore[return-value]

    def set_member(self, k: int, other: "ClassicNet") -> None:
        """Copy member 0 of ``other`` (same split) into member ``k`` of this network."""
        blocks, head = self.member(k)
        src_blocks, src_head = other.member(0)
        for dst, src in zip(blocks, src_blocks, strict=True):  # features[split:] keeps its indices as names
            dst.load_state_dict(src.state_dict())
        head.load_state_dict(src_head.state_dict())

    def top(self, stem_feats: torch.Tensor, member: int = 0) -> torch.Tensor:
        """Fine-tuned later blocks [split, 19) of one member: → 1280-channel map."""
        return self.member(member)[0](stem_feats)

    def score_from_top(self, top_feats: torch.Tensor, member: int = 0) -> torch.Tensor:
        pooled = top_feats.mean(dim=(2, 3))
        return self.member(member)[1](self.dropout(pooled)).squeeze(1)

    def score_from_stem(self, stem_feats: torch.Tensor) -> torch.Tensor:
        """The ensemble's score: the mean over members of each member's score."""
        scores = [self.score_from_top(self.top(stem_feats, k), k) for k in range(self.n_members)]
        return torch.stack(scores).mean(dim=0)

    @staticmethod
    def defect_grid(tap_hw: tuple[int, int]) -> tuple[int, int]:
        """The defect head's output grid for a tap of ``tap_hw`` (one stride-2 convolution)."""
        return (int(tap_hw[0]) + 1) // 2, (int(tap_hw[1]) + 1) // 2

    def defect_logits(self, tap: torch.Tensor) -> torch.Tensor:
        """N x (n_classes + 1) x h x w: class logits, then the severity channel (from :meth:`tap`'s output)."""
        tap = self.defect_adapt(tap)
        ctx = tap - tap.mean(dim=(2, 3), keepdim=True)
        k = int(self.config.defect_surround)
        if k <= 0:
            return self.defect(torch.cat([tap, ctx], dim=1))
        # the local surround: a patch unlike the cells around it (an injected region's border and inside)
        # stands out even where the crop's mean is dominated by the same damage
        local = nn.functional.avg_pool2d(tap, k, stride=1, padding=k // 2, count_include_pad=False)
        return self.defect(torch.cat([tap, ctx, tap - local], dim=1))

    def forward(self, x_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.tap(x_uint8)
        return self.score_from_stem(self.stem_from_tap(t)), self.defect_logits(t)
