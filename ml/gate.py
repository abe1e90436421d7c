"""The champion gate: whether a newly trained model may take the serving alias. Pure decisions, no I/O.

The rules, in order (the first that applies decides):

1. A ``same-window`` model is a diagnostic of the circular label: it is never promoted, ``--force`` or not.
2. A model that does not beat the best no-model baseline on out-of-time per-customer ROC-AUC is not
   promoted, ``--force`` or not: a rule with nothing fitted would serve better.
3. With no current champion, the model becomes the first.
4. A champion of another target mode or observation design cannot be compared on the same footing (its
   numbers answer another question), and one that cannot be scored on this run's out-of-time rows cannot be
   compared at all: the alias stays unless ``--force``.
5. Otherwise both are scored on this run's out-of-time rows and the per-customer AUC difference (new − old)
   is bootstrapped over customers: the alias moves only when the interval's lower bound is above zero, or
   with ``--force``.

:class:`Decision` carries the reason and the tags (decision, interval, both scores) that go to MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ml.evaluate import Interval


@dataclass(frozen=True)
class Challenger:
    """The newly trained model's evidence."""

    version: str
    mode: str
    design: str
    oot_customer_auc: Interval
    best_baseline: str
    best_baseline_auc: Interval


@dataclass(frozen=True)
class Champion:
    """The current alias holder, as the registry describes it and as scored on this run's OOT rows."""

    version: str
    mode: str | None  # its target_mode tag (None: not recorded)
    design: str | None  # its observation_design tag (None: trained before designs were recorded)
    oot_customer_auc: float | None = None  # None: could not be scored
    difference: Interval | None = None  # new − old, paired bootstrap
    error: str | None = None


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    rule: str
    tags: dict[str, str] = field(default_factory=dict)


def decide(
    new: Challenger, champion: Champion | None, force: bool = False, alias: str = "champion"
) -> Decision:
    """Apply the rules of the module docstring."""
    tags = {
        "gate.challenger_version": new.version,
        "gate.challenger_oot_customer_auc": f"{new.oot_customer_auc.estimate:.6f}",
        "gate.challenger_oot_customer_auc_interval": f"[{new.oot_customer_auc.low:.6f}, {new.oot_customer_auc.high:.6f}]",
        "gate.best_baseline": new.best_baseline,
        "gate.best_baseline_oot_customer_auc": f"{new.best_baseline_auc.estimate:.6f}",
    }
    if champion is not None:
        tags["gate.champion_version"] = champion.version
        if champion.oot_customer_auc is not None:
            tags["gate.champion_oot_customer_auc"] = f"{champion.oot_customer_auc:.6f}"
        if champion.difference is not None:
            d = champion.difference
            tags["gate.difference"] = f"{d.estimate:.6f}"
            tags["gate.difference_interval"] = f"[{d.low:.6f}, {d.high:.6f}]"

    def result(promote: bool, rule: str, reason: str) -> Decision:
        return Decision(
            promote, reason, rule, {**tags, "gate.decision": "promoted" if promote else "kept", "gate.rule": rule,
                                    "gate.reason": reason[:5000]},
        )  # fmt: skip

    if new.mode != "forward":
        return result(
            False,
            "diagnostic",
            f"a {new.mode} model is a diagnostic of the circular label and never becomes '{alias}'",
        )
    auc, base = new.oot_customer_auc.estimate, new.best_baseline_auc.estimate
    if not auc > base:
        return result(
            False,
            "baseline",
            f"out-of-time per-customer ROC-AUC {auc:.4f} does not beat the best no-model baseline "
            f"'{new.best_baseline}' ({base:.4f}); a rule with nothing fitted would serve better",
        )
    if champion is None:
        return result(
            True, "first", f"first '{alias}' (out-of-time per-customer ROC-AUC {new.oot_customer_auc})"
        )

    forced = (
        "; forced with --force" if force else f"; alias left on v{champion.version} (use --force to move it)"
    )
    if champion.mode != new.mode or champion.design != new.design:
        return result(
            force,
            "not comparable",
            f"the current '{alias}' v{champion.version} was trained with target mode {champion.mode or 'unrecorded'}"
            f" and observation design {champion.design or 'unrecorded'}, this model with {new.mode} and "
            f"{new.design}: their scores answer different questions{forced}",
        )
    if champion.difference is None or champion.oot_customer_auc is None:
        return result(
            force,
            "champion unscorable",
            f"the current '{alias}' v{champion.version} could not be scored on this run's out-of-time rows "
            f"({champion.error}){forced}",
        )
    d = champion.difference
    comparison = (
        f"out-of-time per-customer ROC-AUC {auc:.4f} vs the current '{alias}' v{champion.version} "
        f"{champion.oot_customer_auc:.4f}: difference {d.estimate:+.4f}, {d.level:.0%} interval [{d.low:+.4f}, {d.high:+.4f}]"
    )
    if d.low > 0:
        return result(True, "better", f"{comparison}; the improvement is significant")
    return result(force, "not better", f"{comparison}; the interval reaches zero{forced}")
