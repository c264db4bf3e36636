"""Models: backbones, the hypernetwork, and the PAH network."""

from .backbones import BackboneError, ResNet18Features, SmallCNN, build_backbone
from .batchnorm import BNMode, batchnorm_mode
from .hypernet import HyperMLP
from .multihead import HyperHeadNet, LinearHeadsNet, TaskHeadNet
from .pah import PAHNet

__all__ = [
    "BNMode",
    "BackboneError",
    "HyperHeadNet",
    "HyperMLP",
    "LinearHeadsNet",
    "PAHNet",
    "ResNet18Features",
    "SmallCNN",
    "TaskHeadNet",
    "batchnorm_mode",
    "build_backbone",
]
