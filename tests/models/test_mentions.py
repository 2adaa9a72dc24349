"""The outage keyword rule against the simulator's mentions and a few hand cases."""

from __future__ import annotations

import pytest

from models.mentions import is_outage_mention
from producers.sources.simulator import NORMAL_MENTIONS, OUTAGE_MENTIONS


def test_the_simulator_has_both_kinds():
    assert len(OUTAGE_MENTIONS) >= 5
    assert len(NORMAL_MENTIONS) >= 5
    assert not set(OUTAGE_MENTIONS) & set(NORMAL_MENTIONS)


@pytest.mark.parametrize("text", OUTAGE_MENTIONS)
def test_every_simulated_outage_mention_is_an_outage(text):
    assert is_outage_mention(text) is True
    assert is_outage_mention(text.upper()) is True


@pytest.mark.parametrize("text", NORMAL_MENTIONS)
def test_no_simulated_normal_mention_is_an_outage(text):
    assert is_outage_mention(text) is False


@pytest.mark.parametrize(
    ("text", "outage"),
    [
        ("IS IT DOWN?", True),
        ("cant login since this morning", True),
        ("can't connect to anything", True),
        ("isnt working for me", True),
        ("wont load at all", True),
        ("the app is offline", True),
        ("service unavailable", True),
        ("no sound on my speaker", True),
        ("app is broken", True),
        ("downtown vibes tonight", False),  # a word containing "down"
        ("terrorising my neighbours with this bass", False),
        ("turn it up", False),
        ("", False),
    ],
)
def test_hand_cases(text, outage):
    assert is_outage_mention(text) is outage
