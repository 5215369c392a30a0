"""68 face-landmark vertices (Multi-PIE layout) on FLAME's topology, and on the demo stand-in's.

FLAME 2020's are the ones published in the SAiD repository (github.com/yunik1004/SAiD,
`data/FLAME_landmarks.txt`, Apache-2.0; Copyright the SAiD authors). They are vertex ids, not
FLAME data. The stand-in's head is not FLAME's, so it has its own (backend/standins/flame.demo_landmarks68
places them; a test keeps the two equal).
"""

from __future__ import annotations

import numpy as np

from .model import FlameModel

FLAME_2020 = (
    2210, 1963, 3056, 3424, 3423, 3421, 3419, 3416, 3414, 3635, 3643, 3646, 3650, 3652, 2004, 568, 728, 2567, 337,
    338, 3154, 3712, 3868, 2135, 27, 18, 1430, 3560, 3561, 3501, 3564, 2751, 2793, 3556, 1676, 1623, 2428, 2453,
    2494, 3631, 2278, 2359, 3832, 1343, 1218, 1154, 995, 829, 2820, 2864, 2774, 3543, 1657, 1749, 1703, 1774, 1802,
    3503, 2905, 2881, 2845, 2787, 3531, 1670, 1730, 1804, 3504, 2907,
)
DEMO_STANDIN = (
    1967, 2327, 2568, 2808, 3110, 3412, 3535, 3538, 3540, 3482, 3485, 3368, 3070, 2772, 2532, 2293, 1933, 1852, 1734,
    1736, 1737, 1799, 1741, 1683, 1684, 1686, 1808, 2040, 2220, 2400, 2520, 2818, 2819, 2820, 2761, 2762, 2154, 2035,
    2036, 2157, 2216, 2215, 2103, 1984, 1985, 2106, 2165, 2164, 3056, 2938, 2939, 2880, 2881, 2882, 3004, 3062, 3061,
    3120, 3119, 3118, 3057, 3059, 3000, 3001, 3003, 3001, 3000, 3059,
)


def landmarks68(model: FlameModel) -> np.ndarray:
    """The 68 landmark vertex ids for this model: the stand-in's own, or FLAME 2020's."""
    return np.array(DEMO_STANDIN if model.is_demo else FLAME_2020, dtype=np.int64)
