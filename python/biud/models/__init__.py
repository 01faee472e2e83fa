"""biud's networks as plain PyTorch modules, with biud's parameter names: a checkpoint tower's
tensors load with load_state_dict(strict=True). Each mirrors a C++ definition in
include/biud/models/ (the docstrings name it)."""
from .bert import BertConfig, BertModel, TextOutput, masked_mean
from .build import build, describe_netconfig
from .heads import DistillAdapter, ProjectionHead, Temperature
from .resnet import EncoderOutput, ResBlock, ResNet, resnet
from .vit2d import ViT2D, vit2d
from .vit3d import ViT3D, sincos_position_3d, vit3d

__all__ = ["BertConfig", "BertModel", "TextOutput", "masked_mean", "build", "describe_netconfig", "DistillAdapter",
           "ProjectionHead", "Temperature", "EncoderOutput", "ResBlock", "ResNet", "resnet", "ViT2D", "vit2d", "ViT3D",
           "sincos_position_3d", "vit3d"]
