"""A small Vision Transformer (timm, random init) whose block Linears are quantized.

Every Linear inside the transformer blocks (attention qkv and proj, MLP fc1 and fc2) becomes a
:class:`QLinear`; the patch-embedding conv and the classifier stay full precision, as the stem
and FC do in the CNNs (docs/method.md §2.3, §2.4).

Only weights are quantized. The activation quantizer of docs/method.md §2.2 clamps to [0, 1], which fits
post-ReLU CNN activations but not transformer activations, which are signed and unbounded.
There is no BatchNorm: LayerNorm normalises each token by its own statistics, so it does not
depend on the bit-width, and ``bn_mode`` / ``trained_bits`` are accepted and unused.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..quant import QLinear, QuantSpec

PATCH_SIZE = 4
DEPTH = 6
NUM_HEADS = 3
MLP_RATIO = 2.0


def quantize_linears(module: nn.Module, spec: QuantSpec) -> None:
    """Replace every nn.Linear below ``module`` by a QLinear of the same shape and weights, in place."""
    for name, child in module.named_children():
        if type(child) is nn.Linear:
            q = QLinear(child.in_features, child.out_features, bias=child.bias is not None, spec=spec)
            q.weight, q.bias = child.weight, child.bias  # timm's initialisation; the quantizer keeps its own state (LSQ steps)
            setattr(module, name, q)
        else:
            quantize_linears(child, spec)


class ViT(nn.Module):
    """timm VisionTransformer with quantized block Linears and a separate full-precision classifier."""

    def __init__(self, width: float, num_classes: int, in_channels: int, image_size: int, spec: QuantSpec) -> None:
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer  # imported here: timm takes seconds to load

        embed_dim = max(NUM_HEADS, int(round(192 * width / NUM_HEADS)) * NUM_HEADS)
        self.vit = VisionTransformer(img_size=image_size, patch_size=PATCH_SIZE, in_chans=in_channels,
                                     num_classes=num_classes, embed_dim=embed_dim, depth=DEPTH,
                                     num_heads=NUM_HEADS, mlp_ratio=MLP_RATIO)
        quantize_linears(self.vit.blocks, spec)
        self.classifier = self.vit.head
        self.vit.head = nn.Identity()
        self.feature_dim = embed_dim

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled (class-token) features [N, feature_dim] (input of the classifier)."""
        return self.vit.forward_head(self.vit.forward_features(x), pre_logits=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.forward_features(x))


def vit(width: float = 1.0, *, num_classes: int, in_channels: int, bn_mode: str, trained_bits: Sequence[int],
        spec: QuantSpec, image_size: int) -> ViT:
    """ViT with patch size 4, depth 6, 3 heads, MLP ratio 2 and embed dim 192 x width (a multiple of 3).

    ``image_size`` must be a multiple of 4 (32 -> 8x8 patches, 28 -> 7x7). ``bn_mode`` and
    ``trained_bits`` are unused: the model has no BatchNorm.
    """
    return ViT(width, num_classes, in_channels, image_size, spec)
