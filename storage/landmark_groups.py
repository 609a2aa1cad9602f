"""Index groups of the 68 facial landmarks (iBUG 300-W convention, as dlib and FAN number them).

They live in ``storage`` because both sides use them: ``pipelines.media`` aligns faces and the sample corpus
draws them with these groups, and ``storage.eye_closure`` reads the eyes' pixels inside them.
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
