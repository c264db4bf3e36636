"""Feature extractors: image batch -> (N, D) features. D is each backbone's ``feature_dim``."""

from __future__ import annotations

import torch
from torch import nn


class BackboneError(RuntimeError):
    pass


def _resnet18(pretrained: bool) -> nn.Module:
    from torchvision.models import ResNet18_Weights, resnet18

    if not pretrained:
        return resnet18(weights=None)
    try:
        return resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)
    except Exception as e:  # noqa: BLE001 - network, disk or hash failure: one piece of advice
        raise BackboneError(
            f"could not load the ImageNet-pretrained ResNet-18 weights ({type(e).__name__}: {e}). Put "
            f"'{ResNet18_Weights.IMAGENET1K_V1.url.rsplit('/', 1)[-1]}' into $TORCH_HOME/hub/checkpoints "
            "(default ~/.cache/torch/hub/checkpoints) on this machine, or set model.pretrained=false."
        ) from e


class ResNet18Features(nn.Module):
    """torchvision ResNet-18 without its classifier; ``stem="imagenet"`` keeps the 7x7/2 conv and
    max-pool (the official PAH code feeds 32x32 CIFAR images into it), ``stem="cifar"`` uses a 3x3/1
    conv and no max-pool."""

    feature_dim = 512

    def __init__(self, stem: str = "imagenet", pretrained: bool = False):
        super().__init__()
        net = _resnet18(pretrained)
        if stem == "cifar":
            net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        net.fc = nn.Identity()
        self.net = net

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


def build_backbone(name: str, pretrained: bool = False) -> nn.Module:
    if name == "resnet18":
        return ResNet18Features("imagenet", pretrained)
    if name == "resnet18_cifar":
        return ResNet18Features("cifar", pretrained)
    if name == "small_cnn":
        if pretrained:
            raise BackboneError(
                "model.backbone=small_cnn has no pretrained weights: set model.pretrained=false"
            )
        return SmallCNN()
    raise BackboneError(f"unknown backbone {name!r}: use resnet18, resnet18_cifar or small_cnn")
