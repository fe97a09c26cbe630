"""A small Vision Transformer (timm, random init) as a plain torch model; :func:`emqlib.qat.prepare` quantizes it.

Prepare quantizes every Linear inside the transformer blocks (attention qkv and proj, MLP fc1
and fc2); the patch-embedding conv and the classifier stay full precision
(``FULL_PRECISION_LAYERS``), as the stem and FC do in the CNNs (docs/method.md §2.3, §2.4).

Only weights are quantized. The activation quantizer of docs/method.md §2.2 clamps to [0, 1], which fits
post-ReLU CNN activations but not transformer activations, which are signed and unbounded (the
blocks use GELU, which prepare leaves alone). There is no BatchNorm: LayerNorm normalises each
token by its own statistics, so it does not depend on the bit-width.
"""
from __future__ import annotations

from torch import Tensor, nn

PATCH_SIZE = 4
DEPTH = 6
NUM_HEADS = 3
MLP_RATIO = 2.0
FULL_PRECISION_LAYERS = ("vit.patch_embed", "classifier")  # names prepare leaves as they are


class ViT(nn.Module):
    """timm VisionTransformer with its classifier as a separate ``classifier`` Linear."""

    full_precision_layers = FULL_PRECISION_LAYERS

    def __init__(self, width: float, num_classes: int, in_channels: int, image_size: int) -> None:
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer  # imported here: timm takes seconds to load

        embed_dim = max(NUM_HEADS, int(round(192 * width / NUM_HEADS)) * NUM_HEADS)
        self.vit = VisionTransformer(img_size=image_size, patch_size=PATCH_SIZE, in_chans=in_channels,
                                     num_classes=num_classes, embed_dim=embed_dim, depth=DEPTH,
                                     num_heads=NUM_HEADS, mlp_ratio=MLP_RATIO)
        self.classifier = self.vit.head
        self.vit.head = nn.Identity()
        self.feature_dim = embed_dim

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled (class-token) features [N, feature_dim] (input of the classifier)."""
        return self.vit.forward_head(self.vit.forward_features(x), pre_logits=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.forward_features(x))


def vit(width: float = 1.0, *, num_classes: int, in_channels: int, image_size: int) -> ViT:
    """ViT with patch size 4, depth 6, 3 heads, MLP ratio 2 and embed dim 192 x width (a multiple of 3).

    ``image_size`` must be a multiple of 4 (32 -> 8x8 patches, 28 -> 7x7).
    """
    return ViT(width, num_classes, in_channels, image_size)
