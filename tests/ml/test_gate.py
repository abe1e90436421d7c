from __future__ import annotations

import pytest

from ml.evaluate import Interval
from ml.gate import Challenger, Champion, decide

DESIGN = "application-point-v2/horizon-30d/oot-14d/k3"


def _new(
    mode: str = "forward", auc: float = 0.80, baseline: float = 0.70, design: str = DESIGN
) -> Challenger:
    return Challenger("2", mode, design, Interval(auc, auc - 0.03, auc + 0.03), "transaction count",
                      Interval(baseline, baseline - 0.03, baseline + 0.03))  # fmt: skip


def _champion(difference: tuple[float, float, float] | None = (0.02, 0.005, 0.035), **kw) -> Champion:
    fields = {"version": "1", "mode": "forward", "design": DESIGN, "oot_customer_auc": 0.78}
    fields.update(kw)
    d = None if difference is None else Interval(*difference)
    return Champion(difference=d, **fields)


@pytest.mark.parametrize("force", [False, True])
def test_a_same_window_model_never_becomes_champion(force: bool) -> None:
    decision = decide(_new(mode="same-window", auc=0.999), None, force=force)
    assert not decision.promote and decision.rule == "diagnostic"
    assert decision.tags["gate.decision"] == "kept"


@pytest.mark.parametrize("force", [False, True])
def test_a_model_that_does_not_beat_the_best_rule_is_not_promoted(force: bool) -> None:
    decision = decide(_new(auc=0.70, baseline=0.71), None, force=force)
    assert not decision.promote and decision.rule == "baseline"
    assert "does not beat the best no-model baseline 'transaction count' (0.7100)" in decision.reason


def test_the_first_model_is_promoted() -> None:
    decision = decide(_new(), None)
    assert decision.promote and decision.rule == "first"


def test_promotion_needs_the_lower_bound_of_the_improvement_above_zero() -> None:
    better = decide(_new(), _champion((0.02, 0.005, 0.035)))
    assert better.promote and better.rule == "better"
    assert better.tags["gate.difference_interval"] == "[0.005000, 0.035000]"
    assert better.tags["gate.champion_oot_customer_auc"] == "0.780000"
    assert better.tags["gate.challenger_oot_customer_auc"] == "0.800000"

    unsure = decide(_new(), _champion((0.02, -0.001, 0.04)))
    assert not unsure.promote and unsure.rule == "not better"
    assert "95% interval [-0.0010, +0.0400]" in unsure.reason and "--force" in unsure.reason
    assert decide(_new(), _champion((0.02, -0.001, 0.04)), force=True).promote


@pytest.mark.parametrize(
    "champion",
    [
        _champion(None, mode="same-window", design="same-window-v2/k3", oot_customer_auc=None),
        _champion(None, design=None, oot_customer_auc=None),  # trained before designs were recorded
        _champion(None, design="application-point-v2/horizon-45d/oot-14d/k3", oot_customer_auc=None),
    ],
)
def test_a_champion_of_another_mode_or_design_is_not_compared(champion: Champion) -> None:
    kept = decide(_new(), champion)
    assert not kept.promote and kept.rule == "not comparable"
    assert "answer different questions" in kept.reason
    forced = decide(_new(), champion, force=True)
    assert forced.promote and "forced with --force" in forced.reason


def test_an_unscorable_champion_is_kept_unless_forced() -> None:
    champion = _champion(None, oot_customer_auc=None, error="InvalidArgument: wrong input shape")
    kept = decide(_new(), champion)
    assert not kept.promote and kept.rule == "champion unscorable" and "wrong input shape" in kept.reason
    assert decide(_new(), champion, force=True).promote
