"""Index groups of the 68 facial landmarks (iBUG 300-W convention, as dlib and FAN number them).

A leaf module that every layer may import: preprocessing aligns and tracks faces with these groups, the sample
corpus draws them, and the training targets read the eyes' pixels inside them.
"""

from __future__ import annotations

JAW = tuple(range(0, 17))
BROW_RIGHT = tuple(range(17, 22))
BROW_LEFT = tuple(range(22, 27))
NOSE = tuple(range(27, 36))
EYE_RIGHT = tuple(range(36, 42))
EYE_LEFT = tuple(range(42, 48))
MOUTH_OUTER = tuple(range(48, 60))
MOUTH_INNER = tuple(range(60, 68))
