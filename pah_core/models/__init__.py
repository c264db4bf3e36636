"""Models: backbones, the hypernetwork, and the PAH network."""

from .backbones import BackboneError, ResNet18Features, SmallCNN, build_backbone
from .hypernet import HyperMLP
from .pah import PAHNet

__all__ = ["BackboneError", "HyperMLP", "PAHNet", "ResNet18Features", "SmallCNN", "build_backbone"]
