"""Is a social mention about an outage? A small, explainable keyword rule.

Happy noise ("this album is fire") must not count; "is it down?" must.
"""

from __future__ import annotations

import re
from functools import lru_cache

_OUTAGE = re.compile(
    r"\b(down|outage|not working|isn'?t working|won'?t (load|play|log ?in)|"
    r"can'?t (log ?in|login|play|connect|stream)|keeps? crashing|"
    r"error|broken|offline|no sound|stopped working|unavailable)\b",
    re.IGNORECASE,
)


@lru_cache(maxsize=4096)  # mentions repeat: retweets, the same complaint
def is_outage_mention(text: str) -> bool:
    """
    >>> is_outage_mention("is it down for anyone else??")
    True
    >>> is_outage_mention("this new album is everything")
    False
    """
    return _OUTAGE.search(text) is not None
