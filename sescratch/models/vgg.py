"""VGG-16 with batch norm (Simonyan & Zisserman 2015; BN after every conv) and SE-VGG-16.

ImageNet (``vgg16_bn``, 224x224 only): 13 3x3 convs (padding 1, with biases) in five blocks of
64, 128, 256, 512, 512 channels (2, 2, 3, 3, 3 convs), each conv followed by BN and ReLU, a 2x2
max pool after each block (224 -> 7), then the classifier on the flattened 512x7x7 grid: FC 4096,
ReLU, dropout, FC 4096, ReLU, dropout, FC ``num_classes``. 138,365,992 parameters at 1000
classes (torchvision's ``vgg16_bn``), 15.47 G multiply-accumulates at 224 (the paper's 15.47
GFLOPs). Names follow Cadene's port of torchvision's model: ``features.0`` ... ``features.43``
(the torchvision indices), ``linear0``, ``relu0``, ``dropout0``, ``linear1``, ``relu1``,
``dropout1``, ``last_linear``; a torchvision ``vgg16_bn`` state dict has the same ``features``
keys and names the FCs ``classifier.0``, ``classifier.3``, ``classifier.6``, which loading renames
(:mod:`sescratch.interop.naming`, naming ``torchvision_vgg``).
``dropout`` (default 0.5, VGG's) sets both classifier dropouts.

SE (``se_vgg16_bn``): the paper puts SE in non-residual networks "after the non-linearity
following each convolution", so every one of the 13 convs is followed by BN, ReLU and an SE
block (``features.se{block}_{conv}``, analysis label ``SE_{block}_{conv}``, as VGG's
``conv3_2``). The backbone keeps the plain model's indices: a ``vgg16_bn`` state dict loads into
``se_vgg16_bn`` with ``strict=False``. At r = 16 the SE blocks add 230,792 parameters and 27 M
MACs (0.2 M in the FCs, the rest one squeeze and one scale pass over each conv's output): 15.47
-> 15.50 G, the paper's 15.48 within 0.2 %.

CIFAR (``vgg16_bn_cifar``, any input of at least 16x16, e.g. 28x28 or 32x32): the same 13
conv-BN-ReLU(-SE) units with ``width, 2 width, 4 width, 8 width, 8 width`` channels (``width``
default 16), max pools after the first four blocks only (32 -> 2, 28 -> 1), global average
pooling and one FC, the usual CIFAR form of VGG (no 4096-wide FCs, which would hold most of
the parameters for a 2x2 grid).
"""
from __future__ import annotations

from sescratch.models.parts import Flatten, Network, make_se
from sescratch.nn.dropout import Dropout
from sescratch.nn.layers import BatchNorm2d, Conv2d, GlobalAvgPool, Linear, MaxPool2d, ReLU, Sequential

__all__ = ["vgg16_bn", "VGG16_BLOCKS"]

VGG16_BLOCKS = (2, 2, 3, 3, 3)  # convs per block
VGG16_WIDTHS = (64, 128, 256, 512, 512)


def _features(in_channels, widths, se, *, pool_after):
    """conv-BN-ReLU(-SE) units in blocks, torchvision's indices for the backbone layers."""
    layers, se_paths, index, channels = {}, {}, 0, in_channels
    for b, (convs, width) in enumerate(zip(VGG16_BLOCKS, widths), start=1):
        for j in range(1, convs + 1):
            layers[str(index)] = Conv2d(channels, width, 3, padding=1, bias=True)
            layers[str(index + 1)] = BatchNorm2d(width)
            layers[str(index + 2)] = ReLU()
            index += 3
            channels = width
            if se is not None:  # after the non-linearity that follows the conv
                layers[f"se{b}_{j}"] = make_se(width, se)
                se_paths[f"SE_{b}_{j}"] = f"features.se{b}_{j}"
        if b in pool_after:
            layers[str(index)] = MaxPool2d(2, stride=2)
            index += 1
    return Sequential(layers), channels, se_paths


def vgg16_bn(name, *, num_classes, in_channels=3, se=None, cifar=False, width=None, dropout=None) -> Network:
    """Build VGG-16-BN (``se=None``) or SE-VGG-16-BN; ``cifar=True`` for the CIFAR-scale network.

    ``width``: channels of the first block of the CIFAR network (default 16); the ImageNet one has
    VGG's fixed widths. ``dropout``: both classifier dropouts (ImageNet, default 0.5) or one before
    the CIFAR network's FC (default 0).
    """
    if not cifar:
        if width is not None:
            raise ValueError(f"{name}: option width applies to the CIFAR network only (vgg16_bn_cifar)")
        features, channels, se_paths = _features(in_channels, VGG16_WIDTHS, se, pool_after={1, 2, 3, 4, 5})
        p = 0.5 if dropout is None else dropout
        layers = {"features": features, "flatten": Flatten(),
                  "linear0": Linear(channels * 7 * 7, 4096), "relu0": ReLU()}
        if p:
            layers["dropout0"] = Dropout(p)
        layers.update({"linear1": Linear(4096, 4096), "relu1": ReLU()})
        if p:
            layers["dropout1"] = Dropout(p)
        layers["last_linear"] = Linear(4096, num_classes)
        return Network(name, layers, in_channels, se_paths=se_paths, input_size=(224, 224),
                       fixed_reason="its first classifier layer reads the flattened 512x7x7 grid of a 224x224 image")
    width = 16 if width is None else width
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"{name}: option width must be a positive int (channels of the first block), got {width!r}")
    widths = (width, 2 * width, 4 * width, 8 * width, 8 * width)
    features, channels, se_paths = _features(in_channels, widths, se, pool_after={1, 2, 3, 4})
    layers = {"features": features, "avg_pool": GlobalAvgPool()}
    if dropout:
        layers["dropout"] = Dropout(dropout)
    layers["last_linear"] = Linear(channels, num_classes)
    return Network(name, layers, in_channels, se_paths=se_paths)
