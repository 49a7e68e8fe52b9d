"""Public check for notebook 11 (making CNNs fast): space-to-depth against ``F.pixel_unshuffle``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_utils.checks import Mismatch, call, exercise
from course_utils.checks.compare import expect_array, float64_tensor

#: (input shape, block): one tile, several channels, a block of 3, a block of 1, wide maps.
CASES = [((1, 1, 4, 4), 2), ((2, 3, 8, 12), 4), ((1, 2, 6, 9), 3), ((2, 1, 5, 5), 1)]
CASES += [((1, 3, 4, 8), 2)]


def space_to_depth_slips(x, block: int) -> dict[str, torch.Tensor]:
    """What the common mistakes in ``space_to_depth`` give for x (N, C, H, W): explanation ->
    (N, C * block**2, H // block, W // block)."""
    x = float64_tensor(x)
    n, c, h, w = x.shape
    tiles = x.unflatten(3, (w // block, block)).unflatten(
        2, (h // block, block)
    )  # (N, C, H/b, b, W/b, b)
    shape = (n, c * block * block, h // block, w // block)
    return {
        "the channels are ordered tile position first, then input channel; F.pixel_unshuffle puts "
        "the input channel first: channel c * block**2 + i * block + j": tiles.permute(
            0, 3, 5, 1, 2, 4
        ).reshape(shape),
        "each tile's pixels are taken column by column; take them row by row (i * block + j for "
        "row i, column j of the tile)": tiles.permute(0, 1, 5, 3, 2, 4).reshape(shape),
        "a plain reshape keeps the pixels in their old order, so a channel mixes pixels of "
        "different tiles: view x as (N, C, H/b, b, W/b, b) and permute both b axes next to C": (
            x.reshape(shape)
        ),
    }


@exercise("space-to-depth", "space_to_depth", rules_out=("pixel-shuffle", "unfold", "convolution"))
def check_space_to_depth(space_to_depth) -> str:
    for seed, (shape, block) in enumerate(CASES):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(*shape, generator=g, dtype=torch.float64)
        expected = F.pixel_unshuffle(x, block)
        what = f"space_to_depth(x {shape}, block={block})"
        got = call(space_to_depth, "space_to_depth", x, block)
        if hasattr(got, "shape") and tuple(got.shape) != tuple(expected.shape):
            raise Mismatch(
                f"{what}: expected (N, C * block**2, H / block, W / block) = "
                f"{tuple(expected.shape)}; got {tuple(got.shape)}"
            )
        slips = space_to_depth_slips(x, block)
        expect_array(got, expected, what=what, atol=0, rtol=0, slips=slips)
    return f"matches F.pixel_unshuffle on {len(CASES)} cases"
