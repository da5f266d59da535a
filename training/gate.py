"""The promotion gate: a challenger replaces the champion only when it is measurably better.

Both were evaluated on the same held-out codes of the same release. The challenger must beat the
champion's acc@1 by `margin` and must not be worse calibrated (ECE no higher than the champion's
plus `ece_tolerance`, 0 by default: "without worse calibration").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class GatePolicy:
    metric: str = "acc@1"
    margin: float = 0.01
    ece_tolerance: float = 0.0


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: tuple[str, ...]


def decide(
    challenger: Mapping[str, float], champion: Mapping[str, float], policy: GatePolicy = GatePolicy()
) -> GateDecision:
    key = policy.metric
    gain = challenger[key] - champion[key]
    ece_change = challenger["ece"] - champion["ece"]
    reasons = []
    better = gain >= policy.margin - 1e-12
    reasons.append(
        f"{key} {challenger[key]:.4f} vs champion {champion[key]:.4f}: {gain:+.4f} "
        f"({'meets' if better else 'below'} the margin {policy.margin:+.4f})"
    )
    calibrated = ece_change <= policy.ece_tolerance + 1e-12
    reasons.append(
        f"ECE {challenger['ece']:.4f} vs champion {champion['ece']:.4f}: {ece_change:+.4f} "
        f"({'not worse' if calibrated else 'worse'} than the tolerance {policy.ece_tolerance:+.4f})"
    )
    return GateDecision(better and calibrated, tuple(reasons))
