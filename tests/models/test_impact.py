"""Business impact: the diurnal curve and the integrated revenue and credits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.impact import FORMULA, Business, ImpactMeter, diurnal
from models.severity import SeverityPolicy

DAY = 1_664_841_600.0  # 2022-10-04T00:00:00Z
HOUR = 3600.0


def small_business(**override):
    params = {
        "users_total": 1000.0,
        "peak_concurrent": 400.0,
        "premium": 600.0,
        "free": 400.0,
        "peak_hour_utc": 18.0,
        "trough_ratio": 0.5,
        "subscription_usd_per_premium_user_hour": 0.6,
        "ad_cpm_usd": 3.0,
        "ad_impressions_per_free_user_hour": 10.0,
        "availability_target": 0.999,
        "credit_usd_per_premium_user_hour": 0.12,
        "severity": SeverityPolicy(),
    }
    params.update(override)
    return Business(**params)


# ---------------------------------------------------------------------------
# diurnal


def test_diurnal_peak_and_trough():
    assert float(diurnal(DAY + 19 * HOUR, 19.0, 0.55)) == pytest.approx(1.0)
    assert float(diurnal(DAY + 7 * HOUR, 19.0, 0.55)) == pytest.approx(0.55)
    # a quarter day away from the peak, half way between
    assert float(diurnal(DAY + 13 * HOUR, 19.0, 0.55)) == pytest.approx((1 + 0.55) / 2)
    assert float(diurnal(DAY + 1 * HOUR, 19.0, 0.55)) == pytest.approx((1 + 0.55) / 2)


def test_diurnal_formula_by_hand():
    t = DAY + 3 * HOUR + 1800  # 03:30 UTC
    phase = math.cos(2 * math.pi * (3.5 - 19.0) / 24)
    assert float(diurnal(t, 19.0, 0.4)) == pytest.approx(0.4 + 0.6 * (1 + phase) / 2)


def test_diurnal_repeats_every_day_and_takes_arrays():
    hours = np.arange(0, 48, 0.5)
    values = diurnal(DAY + hours * HOUR, 19.0, 0.55)
    assert values.shape == hours.shape
    np.testing.assert_allclose(values[:48], values[48:])
    assert hours[int(np.argmax(values))] == 19.0
    assert hours[int(np.argmin(values))] == 7.0
    assert values.max() == pytest.approx(1.0)
    assert values.min() == pytest.approx(0.55)


@settings(max_examples=300, database=None, deadline=None)
@given(st.floats(0, 4e9), st.floats(0, 24), st.floats(0, 1))
def test_diurnal_stays_between_trough_and_peak(t, peak, trough):
    v = float(diurnal(t, peak, trough))
    assert trough - 1e-12 <= v <= 1.0 + 1e-12


# ---------------------------------------------------------------------------
# Business


def test_business_from_the_shipped_file(business):
    b = business
    assert (b.users_total, b.peak_concurrent) == (456_000_000, 25_000_000)
    assert (b.premium, b.free) == (210_000_000, 246_000_000)
    assert b.severity == SeverityPolicy(0.30, 0.5, 0.10, 0.02, 30)
    # (210e6 × 0.08 + 246e6 × 4.07 × 2.50 / 1000) / 60 = (16 800 000 + 2 503 050) / 60
    assert b.revenue_usd_per_min_at_full_outage == pytest.approx(321_717.5)
    assert b.concurrent(DAY + 19 * HOUR) == pytest.approx(25_000_000)
    assert b.concurrent(DAY + 7 * HOUR) == pytest.approx(25_000_000 * 0.55)


def test_small_business_revenue_rate():
    # (600 × 0.6 + 400 × 10 × 3 / 1000) / 60 = (360 + 12) / 60
    assert small_business().revenue_usd_per_min_at_full_outage == pytest.approx(6.2)


# ---------------------------------------------------------------------------
# ImpactMeter


def test_first_window_has_a_rate_but_nothing_accumulated():
    meter = ImpactMeter(small_business())
    impact = meter.update(DAY + 18 * HOUR, 0.5)
    assert impact.share == 0.5
    assert impact.users_affected == 200  # 0.5 × 400 at the peak
    assert impact.user_base_affected == 500
    assert impact.revenue_usd_per_min == pytest.approx(3.1)
    assert impact.revenue_usd_total == 0.0
    assert impact.sla_credits_usd == 0.0
    assert impact.formula == FORMULA


def test_revenue_and_credits_integrate_the_previous_share_over_elapsed_time():
    b = small_business()
    meter = ImpactMeter(b)
    t = DAY + 18 * HOUR
    meter.update(t, 0.5)
    meter.update(t + 600, 1.0)  # 10 min at 0.5
    impact = meter.update(t + 1800, 0.25)  # 20 min at 1.0
    # revenue: 0.5 × 6.2 × 10 + 1.0 × 6.2 × 20 = 31 + 124
    assert impact.revenue_usd_total == pytest.approx(155.0)
    # credits: 0.5 × 600 × 0.12 × 10/60 + 1.0 × 600 × 0.12 × 20/60 = 6 + 24
    assert impact.sla_credits_usd == pytest.approx(30.0)
    assert impact.share == 0.25
    assert impact.revenue_usd_per_min == pytest.approx(0.25 * 6.2)
    # peak: share 1.0 at 18:10 UTC; 400 × diurnal(18:10)
    expected_peak_users = 400 * (0.5 + 0.5 * (1 + math.cos(2 * math.pi * (10 / 60) / 24)) / 2)
    assert impact.peak_share == 1.0
    assert impact.peak_users_affected == round(expected_peak_users)
    # users now: 0.25 × 400 × diurnal(18:30)
    now = 400 * (0.5 + 0.5 * (1 + math.cos(2 * math.pi * 0.5 / 24)) / 2)
    assert impact.users_affected == round(0.25 * now)


def test_reference_day_numbers(business):
    """Two hours at 80% then one at 20%, from 16:00 UTC, by the documented formula."""
    meter = ImpactMeter(business)
    t0 = DAY + 16 * HOUR
    meter.update(t0, 0.8)
    meter.update(t0 + 2 * HOUR, 0.2)
    impact = meter.update(t0 + 3 * HOUR, 0.0)
    per_min = (210e6 * 0.08 + 246e6 * 4.07 * 2.50 / 1000) / 60
    revenue = 0.8 * per_min * 120 + 0.2 * per_min * 60
    credits = 0.8 * 210e6 * 0.00372 * 2 + 0.2 * 210e6 * 0.00372 * 1
    assert impact.revenue_usd_total == pytest.approx(round(revenue, 2))
    assert impact.sla_credits_usd == pytest.approx(round(credits, 2))
    assert impact.revenue_usd_total == pytest.approx(321_717.5 * 108)
    assert impact.sla_credits_usd == pytest.approx(1_406_160.0)
    assert impact.share == 0.0
    assert impact.users_affected == 0
    # worst moment: 80% at 16:00 UTC
    concurrent = 25e6 * (0.55 + 0.45 * (1 + math.cos(2 * math.pi * (16 - 19) / 24)) / 2)
    assert impact.peak_share == 0.8
    assert impact.peak_users_affected == round(0.8 * concurrent)


def test_integration_matches_a_riemann_sum_for_any_sequence():
    b = small_business()
    meter = ImpactMeter(b)
    steps = [(0, 0.1), (10, 0.4), (25, 0.4), (40, 0.9), (100, 0.3), (101, 0.0), (500, 0.6)]
    revenue = credits = 0.0
    previous = None
    for dt, share in steps:
        at = DAY + dt
        impact = meter.update(at, share)
        if previous is not None:
            minutes = (at - previous[0]) / 60
            revenue += previous[1] * 6.2 * minutes
            credits += previous[1] * 600 * 0.12 * minutes / 60
        previous = (at, share)
        assert impact.revenue_usd_total == pytest.approx(round(revenue, 2))
        assert impact.sla_credits_usd == pytest.approx(round(credits, 2))


def test_time_going_back_adds_nothing():
    meter = ImpactMeter(small_business())
    meter.update(DAY + 600, 1.0)
    impact = meter.update(DAY + 300, 1.0)
    assert impact.revenue_usd_total == 0.0
    assert impact.sla_credits_usd == 0.0
    impact = meter.update(DAY + 360, 0.0)  # one minute at 1.0 from the last update
    assert impact.revenue_usd_total == pytest.approx(6.2)


def test_peak_keeps_the_worst_share():
    meter = ImpactMeter(small_business())
    shares = [0.1, 0.7, 0.3, 0.69, 0.0]
    for i, s in enumerate(shares):
        impact = meter.update(DAY + 18 * HOUR + i, s)
    assert impact.peak_share == 0.7
    assert impact.peak_users_affected == round(
        0.7 * small_business().concurrent(DAY + 18 * HOUR + 1)
    )


def test_to_dict_has_every_field():
    d = ImpactMeter(small_business()).update(DAY, 0.123456).to_dict()
    assert d["share"] == 0.1235
    assert set(d) == {
        "share",
        "users_affected",
        "user_base_affected",
        "revenue_usd_per_min",
        "revenue_usd_total",
        "sla_credits_usd",
        "peak_share",
        "peak_users_affected",
        "formula",
    }
