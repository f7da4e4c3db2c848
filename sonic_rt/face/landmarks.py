"""Names for the MediaPipe face-mesh topology (468 surface points + 10 iris points).

"Left" and "right" are the *subject's*: the subject's right eye appears on the image's left.
Contours are ordered from one corner to the other so they can be drawn and paired.
"""

from __future__ import annotations

import numpy as np

N_MESH = 468
N_LANDMARKS = 478  # with the refined iris points

# Lips: upper contours run corner -> corner over the top, lower ones under the bottom.
LIPS_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_OUTER_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LIPS_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
MOUTH_CORNERS = (61, 291)
INNER_CORNERS = (78, 308)
UPPER_LIP_CENTER_INNER = 13
LOWER_LIP_CENTER_INNER = 14

# Eyes: lid margins corner -> corner (outer corner first for the right eye, inner first for the left).
RIGHT_EYE_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
RIGHT_EYE_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
LEFT_EYE_UPPER = (362, 398, 384, 385, 386, 387, 388, 466, 263)
LEFT_EYE_LOWER = (362, 382, 381, 380, 374, 373, 390, 249, 263)
# The ring above each upper lid (the lid crease), which follows a blink part of the way.
RIGHT_LID_CREASE = (130, 247, 30, 29, 27, 28, 56, 190, 243)
LEFT_LID_CREASE = (463, 414, 286, 258, 257, 259, 260, 467, 359)
RIGHT_IRIS_CENTER = 468
LEFT_IRIS_CENTER = 473

RIGHT_BROW = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55)
LEFT_BROW = (300, 293, 334, 296, 336, 276, 283, 282, 295, 285)

FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
FOREHEAD_TOP = 10
CHIN = 152
NOSE_TIP = 1

LIPS_UPPER = tuple(sorted(set(LIPS_OUTER_UPPER + LIPS_INNER_UPPER) - set(MOUTH_CORNERS + INNER_CORNERS)))
LIPS_LOWER = tuple(sorted(set(LIPS_OUTER_LOWER + LIPS_INNER_LOWER) - set(MOUTH_CORNERS + INNER_CORNERS)))


def inner_mouth_polygon(points: np.ndarray) -> np.ndarray:
    """The closed inner-lip contour (20 points) of ``points`` (N, >=2), upper lid first."""
    upper = points[list(LIPS_INNER_UPPER), :2]
    lower = points[list(LIPS_INNER_LOWER[-2:0:-1]), :2]
    return np.concatenate([upper, lower], axis=0)
