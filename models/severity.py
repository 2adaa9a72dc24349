"""SEV-1..SEV-4 from user-facing impact, breadth and duration, with reasons."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SeverityPolicy:
    sev1_affected: float = 0.30
    sev1_region_share: float = 0.5
    sev2_affected: float = 0.10
    sev3_affected: float = 0.02
    escalate_after_min: float = 30.0


@dataclass(frozen=True)
class UserImpact:
    """Share of users failing each journey, overall and per region."""

    journeys: dict[str, float] = field(default_factory=dict)
    regions: dict[str, float] = field(default_factory=dict)
    region_count: int = 0

    @property
    def share(self) -> float:
        return max(self.journeys.values(), default=0.0)

    @property
    def worst_journey(self) -> str | None:
        return max(self.journeys, key=self.journeys.__getitem__) if self.journeys else None


def classify(
    impact: UserImpact, duration_s: float, policy: SeverityPolicy
) -> tuple[int, list[str]]:
    """The SEV and the reasons for it.

    >>> classify(UserImpact({"login": 0.9}, {"eu": 0.9, "us": 0.9}, 2), 60, SeverityPolicy())
    (1, ['login failing for 90% of users', '2 of 2 regions at ≥10%'])
    """
    share = impact.share
    hit = [r for r, s in impact.regions.items() if s >= policy.sev2_affected]
    reasons = []
    if impact.worst_journey is not None:
        reasons.append(f"{impact.worst_journey} failing for {share:.0%} of users")
    if impact.region_count:
        reasons.append(
            f"{len(hit)} of {impact.region_count} regions at ≥{policy.sev2_affected:.0%}"
        )
    region_share = len(hit) / impact.region_count if impact.region_count else 1.0
    if share >= policy.sev1_affected and region_share >= policy.sev1_region_share:
        sev = 1
    elif share >= policy.sev2_affected or any(
        s >= policy.sev1_affected for s in impact.regions.values()
    ):
        sev = 2
    elif share >= policy.sev3_affected:
        sev = 3
    else:
        sev = 4
    if sev > 2 and duration_s >= policy.escalate_after_min * 60:
        sev -= 1
        reasons.append(f"lasting {duration_s / 60:.0f} min")
    return sev, reasons
