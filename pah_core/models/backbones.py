"""Feature extractors: image batch -> (N, D) features. D is each backbone's ``feature_dim``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # types only: config loads the methods, which import this module
    from pah_core.config import ModelConfig


class BackboneError(RuntimeError):
    pass


class CentreTapConv2d(nn.Conv2d):
    """A Conv2d that, on a 1x1 input, multiplies by its centre tap alone: with odd kernels and
    'same' zero padding every other tap sees padding, so the result is the convolution's, exactly.

    ResNet-18 runs layer4 at 1x1 on 32x32 images, and layer3 and layer4 at 1x1 on PAH's 10x10
    prototypes; the convolution kernels compute all nine taps there. One matrix product instead
    makes a CPU training step ~15% faster and PAH's prototype pass ~30% faster.
    """

    @staticmethod
    def applies_to(conv: nn.Conv2d) -> bool:
        return (
            type(conv) is nn.Conv2d
            and conv.groups == 1
            and conv.padding_mode == "zeros"
            and conv.dilation == (1, 1)
            and not isinstance(conv.padding, str)
            and all(
                k % 2 == 1 and p == k // 2
                for k, p in zip(conv.kernel_size, conv.padding, strict=True)
            )
        )

    def _conv_forward(self, x, weight, bias):
        if x.shape[-1] == 1 and x.shape[-2] == 1:
            kh, kw = self.kernel_size
            return F.linear(x.flatten(1), weight[:, :, kh // 2, kw // 2], bias)[..., None, None]
        return super()._conv_forward(x, weight, bias)


def use_centre_tap_convs(module: nn.Module) -> nn.Module:
    """Switch every eligible Conv2d of ``module`` to ``CentreTapConv2d`` in place (same parameters,
    same state dict, so pretrained weights and checkpoints load unchanged)."""
    for m in module.modules():
        if CentreTapConv2d.applies_to(m):
            m.__class__ = CentreTapConv2d
    return module


def load_state_dict_file(path: str | Path, net: nn.Module) -> None:
    """Load a local torchvision state dict into ``net``; tensors only (``weights_only``), so a file
    from a shared folder cannot run code. Errors name the file and what did not fit."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise BackboneError(
            f"model.pretrained_path = {str(p)!r}: no such file. Point it at a torchvision ResNet-18 "
            "state dict (e.g. resnet18-f37072fd.pth from download.pytorch.org/models)"
        )
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a pickle with code, a truncated file, not a torch file
        raise BackboneError(
            f"model.pretrained_path = {str(p)!r} could not be read as a tensors-only state dict "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        ) from e
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # the common {"state_dict": ...} wrapper
    expected = net.state_dict()
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BackboneError(
            f"model.pretrained_path = {str(p)!r} holds a {type(state).__name__}, not a state dict of "
            f"tensors; expected torchvision ResNet-18 keys such as {', '.join(list(expected)[:3])}"
        )
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:

        def few(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")

        problems = [
            f"missing keys {few(missing)}" if missing else "",
            f"unexpected keys {few(unexpected)}" if unexpected else "",
            f"shape mismatches {few(shapes)}" if shapes else "",
        ]
        raise BackboneError(
            f"model.pretrained_path = {str(p)!r} does not fit torchvision's ResNet-18: "
            f"{'; '.join(x for x in problems if x)}. Expected the {len(expected)} keys of "
            "torchvision.models.resnet18().state_dict() (conv1.weight, bn1.*, layer1..4.*, fc.*)"
        )
    net.load_state_dict(state)


def _resnet18(pretrained: bool, pretrained_path: str | None = None) -> nn.Module:
    from torchvision.models import ResNet18_Weights, resnet18

    if not pretrained:
        return resnet18(weights=None)
    if pretrained_path is not None:
        net = resnet18(weights=None)
        load_state_dict_file(pretrained_path, net)
        return net
    try:
        return resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)
    except Exception as e:  # noqa: BLE001 - network, disk or hash failure: one piece of advice
        raise BackboneError(
            f"could not load the ImageNet-pretrained ResNet-18 weights ({type(e).__name__}: {e}). Put "
            f"'{ResNet18_Weights.IMAGENET1K_V1.url.rsplit('/', 1)[-1]}' into $TORCH_HOME/hub/checkpoints "
            "(default ~/.cache/torch/hub/checkpoints) on this machine, set model.pretrained_path to a "
            "local copy, or set model.pretrained=false."
        ) from e


class ResNet18Features(nn.Module):
    """torchvision ResNet-18 without its classifier; ``stem="imagenet"`` keeps the 7x7/2 conv and
    max-pool (the official PAH code feeds 32x32 CIFAR images into it), ``stem="cifar"`` uses a 3x3/1
    conv and no max-pool."""

    feature_dim = 512

    def __init__(
        self, stem: str = "imagenet", pretrained: bool = False, pretrained_path: str | None = None
    ):
        super().__init__()
        net = _resnet18(pretrained, pretrained_path)
        if stem == "cifar":
            net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        net.fc = nn.Identity()
        self.net = use_centre_tap_convs(net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SmallCNN(nn.Module):
    """Four conv blocks and global pooling: fast enough for unit tests on 2 CPU cores."""

    feature_dim = 64

    def __init__(self, width: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        chans = [3, width, width, 2 * width, 2 * width]
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            layers += [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.body = nn.Sequential(*layers)
        self.feature_dim = 2 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))


def build_backbone(model: ModelConfig) -> nn.Module:
    name, pretrained = model.backbone, model.pretrained
    if name == "resnet18":
        return ResNet18Features("imagenet", pretrained, model.pretrained_path)
    if name == "resnet18_cifar":
        return ResNet18Features("cifar", pretrained, model.pretrained_path)
    if name == "small_cnn":
        if pretrained:
            raise BackboneError(
                "model.backbone=small_cnn has no pretrained weights: set model.pretrained=false"
            )
        return SmallCNN()
    raise BackboneError(f"unknown backbone {name!r}: use resnet18, resnet18_cifar or small_cnn")
