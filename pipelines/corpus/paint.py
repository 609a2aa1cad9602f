"""What a warp alone cannot show, painted onto the locally warped identity image.

A warp only moves the pixels that are there: an opening mouth needs a dark gap that the closed mouth
never had, and a closing eye needs an eyelid over the iris, which a warp of the portrait can only squeeze
(the iris stays visible at a full blink). Both are painted between the resting and the moved landmarks,
so what is painted ends where the written landmarks say it does.
"""

from __future__ import annotations

import cv2
import numpy as np

from thpad import landmarks as G

# Per eye (dlib's 68-point order): the corners and the upper lid from one corner to the other, and the lower
# lid point under each upper-lid point.
EYES = ((36, (37, 38), 39, (41, 40)), (42, (43, 44), 45, (47, 46)))
LID_SAMPLE = 0.4  # where the lid's colour is read: this far from the upper lid toward the brow
LASH = (0.45, 0.45, 0.45)  # the lash line's colour, as a share of the lid's colour
SUBPIXEL = 16  # cv2's shift=4 subpixel drawing


def lid_colours(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The skin colour of each upper eyelid (2, 3): the median of the image between the upper lid and the brow.

    Args:
        image: (S, S, 3) uint8 identity image; landmarks: (68, 2) its landmarks.
    """
    colours = []
    for (_, upper, _, _), brow in zip(EYES, (G.BROW_RIGHT, G.BROW_LEFT), strict=True):
        lid = landmarks[list(upper)]  # (2, 2)
        above = landmarks[list(brow)].mean(0)  # (2,)
        points = np.round(lid + LID_SAMPLE * (above - lid)).astype(int)  # (2, 2)
        points = np.clip(points, 1, np.array(image.shape[1::-1]) - 2)  # (2, 2): each 3 x 3 patch inside the image
        patch = [image[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3) for x, y in points]
        colours.append(np.median(np.concatenate(patch), axis=0))
    return np.asarray(colours, np.float32)


def paint_lids(img: np.ndarray, base: np.ndarray, moved: np.ndarray, closure: float, colours: np.ndarray) -> None:
    """Paint each upper eyelid down to its moved position, in place, with a dark lash line along its edge.

    The lid covers the eye from the resting upper lid (lifted by a tenth of the eye's height, so the resting
    lash line is covered too) down to the moved upper-lid points, which the blink pulls toward the lower lid.
    Args:
        img: (S, S, 3) uint8 locally warped image; base, moved: (68, 2) resting and moved landmarks;
        closure: the blink's eyelid closure in [0, 1]; colours: (2, 3) from ``lid_colours``.
    """
    if closure < 0.05:
        return
    for (left, upper, right, lower), colour in zip(EYES, colours, strict=True):
        lift = 0.1 * (base[list(lower)] - base[list(upper)])  # (2, 2)
        top = base[list(upper)] - lift  # (2, 2)
        edge = moved[list(upper)]  # (2, 2)
        polygon = np.concatenate([base[[left]], top, base[[right]], edge[::-1]])  # (6, 2)
        cv2.fillPoly(img, [_fixed(polygon)], colour.tolist(), cv2.LINE_AA, shift=4)
        lash = np.concatenate([base[[left]], edge, base[[right]]])  # (4, 2)
        cv2.polylines(img, [_fixed(lash)], False, (colour * np.array(LASH)).tolist(), 1, cv2.LINE_AA, shift=4)


def paint_mouth(img: np.ndarray, base: np.ndarray, moved: np.ndarray, opening: float) -> None:
    """Paint the gap the opening made, between the resting and the lowered inner lower lip, dark, in place.

    Only the new gap is painted, so teeth or lips that show at rest are kept.
    """
    if opening < 0.05:
        return
    lower = [64, 65, 66, 67, 60]  # inner lower lip from the left corner to the right
    polygon = np.concatenate([base[lower], moved[lower[::-1]]])  # (10, 2)
    colour = np.array([45, 14, 18], np.float32) * (1.2 - 0.4 * opening)
    cv2.fillPoly(img, [_fixed(polygon)], colour.tolist(), cv2.LINE_AA, shift=4)


def _fixed(points: np.ndarray) -> np.ndarray:
    """Points (P, 2) in cv2's fixed-point subpixel form."""
    return np.round(points * SUBPIXEL).astype(np.int32)
