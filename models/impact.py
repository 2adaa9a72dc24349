"""Business impact of an outage, from documented parameters.

The formula, evaluated every window while an incident is open, with ``share``
the fraction of users who cannot complete their worst-hit journey:

    users_affected      = share × peak_concurrent × diurnal(t)
    user_base_affected  = share × users_total
    revenue_usd_per_min = share × (premium × subscription_usd_per_premium_user_hour
                           + free × ad_impressions_per_free_user_hour × ad_cpm_usd / 1000) / 60
    revenue_usd_total   = Σ revenue_usd_per_min × minutes
    sla_credits_usd     = Σ share × premium × credit_usd_per_premium_user_hour × hours

Which parameter values reproduce which published figure is in docs/impact.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from models.severity import SeverityPolicy
from models.snapshot import as_float, as_list, as_number, list_of, record_from_state

FORMULA = (
    "revenue/min = share × (premium × sub_usd_per_user_h + free × ad_imp_per_user_h × CPM/1000)"
    " / 60; users = share × peak_concurrent × diurnal(t); credits = Σ share × premium ×"
    " credit_usd_per_user_h × hours"
)


def diurnal(t: ArrayLike, peak_hour_utc: float, trough_ratio: float) -> Any:
    """Share of the daily peak that is active at event time ``t`` (a cosine day);
    ``t`` may be a number or an array of them.

    >>> float(diurnal(19 * 3600, 19.0, 0.5)), float(diurnal(7 * 3600, 19.0, 0.5))
    (1.0, 0.5)
    """
    hour = (np.asarray(t) % 86_400) / 3600
    phase = np.cos(2 * np.pi * (hour - peak_hour_utc) / 24)
    return trough_ratio + (1 - trough_ratio) * (1 + phase) / 2


@dataclass(frozen=True)
class Business:
    users_total: float
    peak_concurrent: float
    premium: float
    free: float
    peak_hour_utc: float
    trough_ratio: float
    subscription_usd_per_premium_user_hour: float
    ad_cpm_usd: float
    ad_impressions_per_free_user_hour: float
    availability_target: float
    credit_usd_per_premium_user_hour: float
    severity: SeverityPolicy

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Business:
        users, traffic, revenue, sla = d["users"], d["traffic"], d["revenue"], d["sla"]
        return cls(
            users_total=users["total"],
            peak_concurrent=users["peak_concurrent"],
            premium=users["premium"],
            free=users["free"],
            peak_hour_utc=traffic["peak_hour_utc"],
            trough_ratio=traffic["trough_ratio"],
            subscription_usd_per_premium_user_hour=revenue[
                "subscription_usd_per_premium_user_hour"
            ],
            ad_cpm_usd=revenue["ad_cpm_usd"],
            ad_impressions_per_free_user_hour=revenue["ad_impressions_per_free_user_hour"],
            availability_target=sla["availability_target"],
            credit_usd_per_premium_user_hour=sla["credit_usd_per_premium_user_hour"],
            severity=SeverityPolicy(**d["severity"]),
        )

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Business:
        """
        >>> b = Business(1e6, 1e5, 0.4, 0.6, 19.0, 0.5, 0.02, 5.0, 20.0, 0.999, 0.01,
        ...              SeverityPolicy())
        >>> Business.from_state(b.to_state()) == b
        True
        """
        d = dict(state)
        severity = record_from_state(SeverityPolicy, d.pop("severity"))
        return cls(**{k: as_number(v) for k, v in d.items()}, severity=severity)

    def concurrent(self, t: float) -> float:
        return self.peak_concurrent * float(diurnal(t, self.peak_hour_utc, self.trough_ratio))

    @property
    def revenue_usd_per_min_at_full_outage(self) -> float:
        subscription = self.premium * self.subscription_usd_per_premium_user_hour
        ads = self.free * self.ad_impressions_per_free_user_hour * self.ad_cpm_usd / 1000
        return (subscription + ads) / 60


@dataclass(frozen=True, slots=True)
class Impact:
    share: float
    users_affected: float
    user_base_affected: float
    revenue_usd_per_min: float
    revenue_usd_total: float
    sla_credits_usd: float
    peak_share: float
    peak_users_affected: float
    formula: str = FORMULA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Impact:
        """
        >>> impact = Impact(0.5, 1200, 5000, 30.0, 60.0, 1.5, 0.5, 1200)
        >>> Impact.from_dict(impact.to_dict()) == impact
        True
        """
        return record_from_state(cls, d)


class ImpactMeter:
    """Integrates the running estimate over event time while an incident is open."""

    def __init__(self, business: Business) -> None:
        self.business = business
        self._revenue = 0.0
        self._credits = 0.0
        self._last: tuple[float, float] | None = None  # (time, share) of the previous window
        self._peak = (0.0, 0.0)  # (share, users) at the worst moment

    def to_state(self) -> dict[str, Any]:
        return {
            "revenue": self._revenue,
            "credits": self._credits,
            "last": None if self._last is None else list(self._last),
            "peak": list(self._peak),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], business: Business) -> ImpactMeter:
        meter = cls(business)
        meter._revenue = as_float(state["revenue"])
        meter._credits = as_float(state["credits"])
        last = state["last"]
        if last is not None:
            then, share = list_of(as_float, last, 2)
            meter._last = (then, share)
        peak, users = list_of(as_float, as_list(state["peak"]), 2)
        meter._peak = (peak, users)
        return meter

    def update(self, at: float, share: float) -> Impact:
        b = self.business
        if self._last is not None:
            then, prev_share = self._last
            minutes = max(0.0, at - then) / 60
            self._revenue += prev_share * b.revenue_usd_per_min_at_full_outage * minutes
            self._credits += (
                prev_share * b.premium * b.credit_usd_per_premium_user_hour * minutes / 60
            )
        self._last = (at, share)
        users = share * b.concurrent(at)
        self._peak = max(self._peak, (share, users))
        return Impact(
            share=round(share, 4),
            users_affected=round(users),
            user_base_affected=round(share * b.users_total),
            revenue_usd_per_min=round(share * b.revenue_usd_per_min_at_full_outage, 2),
            revenue_usd_total=round(self._revenue, 2),
            sla_credits_usd=round(self._credits, 2),
            peak_share=round(self._peak[0], 4),
            peak_users_affected=round(self._peak[1]),
        )
