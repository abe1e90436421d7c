"""Render what the Grafana dashboard shows, without Grafana: a real run, every panel drawn with matplotlib.

    python monitoring/snapshot.py [--out docs/images/dashboard-snapshot.png] [--phase-seconds 40]

Trains a small model (``harness.predictor.train_small_model``), starts two predictors (two workers each, the
pods ``credit-risk-predictor-a``/``-b``) and a Prometheus scraping them every second with the rule file
(short windows: ``monitoring.stack.TEST_RANGES``), and scores three phases of traffic: reference-like rows,
a shifted (riskier) population, reference-like again — with 15% malformed requests throughout. Then every
panel's queries (variables substituted) are read over the run with ``/api/v1/query_range`` (instant
panels with ``/api/v1/query``) and drawn on a grid that follows the dashboard's ``gridPos`` layout. The run
has no transformer: the row "Transformer & feature store" is left out.

Needs ``prometheus`` (Debian package, ``.ci/tools.sh``) and the dev dependencies (matplotlib, the
training stack). Takes about 2–3 minutes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402

from monitoring import stack  # noqa: E402

NAMESPACE = "credit-risk-test"
VARIABLES = {"namespace": NAMESPACE, "model": stack.MODEL, "version": ".*", "__rate_interval": stack.TEST_RATE_INTERVAL,
             "__interval": "2s", "datasource": "prometheus"}  # fmt: skip
BACKGROUND, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a", "#37872d",
           "#c4162a"]  # fmt: skip
COLORS = {"green": "#73bf69", "yellow": "#fade2a", "red": "#f2495c", "blue": "#5794f2", "orange": "#ff9830",
          "transparent": None}  # fmt: skip
UNIT_PX = 0.36  # inches per grid row


# ------------------------------------------------------------------------------------------------ the run


@contextmanager
def recorded_run(workdir: Path, phase_seconds: float) -> Iterator[tuple[stack.Prometheus, list]]:
    """Start everything and drive the traffic; yields the live Prometheus and the phases
    ``(name, start, end)``; stops Prometheus and the predictors (by their PIDs) on exit."""
    from harness.predictor import running_server, train_small_model
    from ml.schema import FEATURE_NAMES

    print("training a small model …", flush=True)
    trained = train_small_model(workdir / "model")
    args = ("--model-uri", str(trained.path), "--workers", "2", "--drift-window-seconds", "24",
            "--grace-period-seconds", "2")  # fmt: skip
    with ExitStack() as exits:
        pods = {pod: exits.enter_context(running_server(*args, workdir=workdir)) for pod in ("a", "b")}
        targets = [stack.Target(s.url.removeprefix("http://"), {"namespace": NAMESPACE, "pod": f"credit-risk-predictor-{p}"})
                   for p, s in pods.items()]  # fmt: skip
        rules = stack.rules_with_windows(stack.RULES.read_text(), stack.TEST_RANGES, stack.TEST_FOR)
        prom = exits.enter_context(stack.Prometheus(workdir / "prometheus", targets, rules))
        traffic = stack.Traffic([s.url for s in pods.values()])
        shifted = stack.shifted_population(trained.X_train, trained.y_train, list(FEATURE_NAMES), 5_000)
        phases = []
        for name, rows in (
            ("reference-like", trained.X_fresh),
            ("shifted", shifted),
            ("reference-like", trained.X_fresh),
        ):
            print(f"traffic: {name} for {phase_seconds:.0f} s …", flush=True)
            start = time.time()
            traffic.run(rows, phase_seconds)
            phases.append((name, start, time.time()))
        time.sleep(2)
        print(f"requests by status: {traffic.statuses}, rows scored: {traffic.rows}", flush=True)
        yield prom, phases


# ------------------------------------------------------------------------------------------------ drawing


def legend_of(template: str, metric: dict, ref: str) -> str:
    if template and template != "__auto":
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), template)
    labels = {k: v for k, v in metric.items() if k != "__name__"}
    return ", ".join(f"{k}={v}" for k, v in labels.items()) or ref


def formatter(unit: str) -> FuncFormatter:
    def fmt(value: float, _pos: object = None) -> str:
        if unit == "percentunit":
            return f"{value * 100:.0f}%" if abs(value) >= 0.1 or value == 0 else f"{value * 100:.1f}%"
        if unit == "s":
            return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.3g} s"
        if unit == "reqps":
            return f"{value:.3g} req/s"
        return f"{value:.3g}"

    return FuncFormatter(fmt)


def threshold_steps(panel: dict) -> list[tuple[float | None, str | None]]:
    steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
    return [(s.get("value"), COLORS.get(s.get("color"), s.get("color"))) for s in steps]


def color_for(value: float, steps: list) -> str:
    color = TEXT
    for threshold, c in steps:
        if (threshold is None or value >= threshold) and c:
            color = c
    return color


def style(ax: plt.Axes, title: str) -> None:
    ax.set_facecolor(PANEL)
    ax.set_title(title, loc="left", color=TEXT, fontsize=9, fontweight="bold")
    ax.tick_params(colors=TEXT, labelsize=7)
    for spine in ax.spines.values():
        spine.set_color(GRID)
    ax.grid(color=GRID, linewidth=0.5)


def draw_timeseries(ax: plt.Axes, panel: dict, series: list, t0: float, phases: list) -> None:
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    custom = defaults.get("custom", {})
    unit = defaults.get("unit", "")
    stacked = custom.get("stacking", {}).get("mode") == "normal"
    bottom = None
    for i, (label, ts, values) in enumerate(series):
        x = ts - t0
        color = PALETTE[i % len(PALETTE)]
        for regex, c in overrides_colors(panel):
            if re.fullmatch(regex, label):
                color = c
        dashed = "reference" in label or "in-process" in label
        if stacked and not dashed:
            base = np.zeros_like(values) if bottom is None or len(bottom) != len(values) else bottom
            ax.fill_between(x, base, base + values, color=color, alpha=0.5, linewidth=0, label=label)
            bottom = base + values
        else:
            ax.plot(x, values, color=color, linewidth=1.2, linestyle=":" if dashed else "-", label=label)
    mode = custom.get("thresholdsStyle", {}).get("mode", "off")
    if mode != "off":
        steps = threshold_steps(panel)
        top = max(
            [v for _, _, vals in series for v in vals if np.isfinite(v)] + [s for s, _ in steps if s] + [0]
        )
        for j, (value, color) in enumerate(steps):
            if value is None or color is None:
                continue
            ax.axhline(value, color=color, linewidth=1, linestyle="--")
            if "area" in mode:
                upper = steps[j + 1][0] if j + 1 < len(steps) else top * 1.1
                ax.axhspan(value, upper, color=color, alpha=0.08)
    if custom.get("scaleDistribution", {}).get("type") == "log":
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda *_: ""))
    ax.yaxis.set_major_formatter(formatter(unit))
    if defaults.get("max") is not None:
        ax.set_ylim(top=defaults["max"])
    if defaults.get("min") is not None:
        ax.set_ylim(bottom=defaults["min"])
    shade_phases(ax, phases, t0)
    if series:
        ax.legend(fontsize=6, loc="upper left", facecolor=PANEL, edgecolor=GRID, labelcolor=TEXT, ncol=2)


def overrides_colors(panel: dict) -> list[tuple[str, str]]:
    out = []
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        matcher = override.get("matcher", {})
        for prop in override.get("properties", []):
            if prop.get("id") == "color" and matcher.get("id") == "byRegexp":
                out.append((matcher["options"], COLORS.get(prop["value"].get("fixedColor"), TEXT)))
    return out


def shade_phases(ax: plt.Axes, phases: list, t0: float) -> None:
    for name, start, end in phases:
        if name == "shifted":
            ax.axvspan(start - t0, end - t0, color="#f2495c", alpha=0.07)
    ax.set_xlim(0, phases[-1][2] - t0 + 2)
    ax.set_xlabel("seconds since the first request (shaded: shifted population)", color=TEXT, fontsize=6)


def draw_stat(ax: plt.Axes, panel: dict, series: list, t0: float) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
    steps = threshold_steps(panel)
    text_mode = panel.get("options", {}).get("textMode")
    if not series:
        ax.text(0.5, 0.5, "No data", ha="center", va="center", color=TEXT, transform=ax.transAxes)
        return
    for i, (label, ts, values) in enumerate(series):
        last = values[np.isfinite(values)][-1] if np.isfinite(values).any() else float("nan")
        text = formatter(unit)(last) if unit not in ("", "none", "short") else f"{last:.3g}"
        color = color_for(last, steps) if steps else TEXT
        if panel["title"] == "Instances up" and label == "down":
            color = COLORS["red"] if last > 0 else COLORS["green"]
        y = 0.5 if len(series) == 1 else 0.75 - i * 0.45 / max(1, len(series) - 1)
        size = 20 if len(series) == 1 else 12
        name = f"{label}: " if (text_mode == "value_and_name" or len(series) > 1) else ""
        ax.text(
            0.5,
            y,
            f"{name}{text}",
            ha="center",
            va="center",
            color=color,
            fontsize=size,
            transform=ax.transAxes,
        )
        if len(series) == 1 and len(ts) > 1:
            inset = ax.inset_axes([0, 0, 1, 0.3])
            inset.fill_between(ts - t0, values, color=color, alpha=0.2)
            inset.axis("off")


def draw_heatmap(ax: plt.Axes, series: list, t0: float, phases: list) -> None:
    """Cumulative ``le`` buckets per step → rows per score bin per step."""
    bounds = sorted(series, key=lambda s: float(s[0]))
    ts = max((s[1] for s in bounds), key=len)
    cumulative = np.vstack([np.interp(ts, s[1], np.nan_to_num(s[2])) for s in bounds])
    counts = np.diff(np.vstack([np.zeros(len(ts)), cumulative]), axis=0).clip(min=0)
    x = ts - t0
    x_edges = np.append(x, x[-1] + (x[1] - x[0] if len(x) > 1 else 1))
    y_edges = [0.0] + [min(float(b[0]), 1.0) for b in bounds]
    mesh = ax.pcolormesh(x_edges, y_edges, counts, cmap="Oranges", shading="flat")
    plt.colorbar(mesh, ax=ax, pad=0.01).ax.tick_params(colors=TEXT, labelsize=6)
    ax.set_ylabel("score", color=TEXT, fontsize=7)
    for band in (0.3, 0.6):
        ax.axhline(band, color="#8ab8ff", linewidth=0.8, linestyle=":")
    shade_phases(ax, phases, t0)


def draw_bargauge(ax: plt.Axes, panel: dict, result: list) -> None:
    steps = threshold_steps(panel)
    rows = sorted(
        ((r["metric"].get("feature", "?"), float(r["value"][1])) for r in result), key=lambda kv: kv[1]
    )
    names = [n for n, _ in rows]
    values = np.array([v for _, v in rows])
    shown = np.minimum(values, panel["fieldConfig"]["defaults"].get("max", values.max() or 1))
    ax.barh(names, shown, color=[color_for(v, steps) for v in values], height=0.7)
    for i, v in enumerate(values):
        ax.text(shown[i], i, f" {v:.3f}", va="center", color=TEXT, fontsize=6)
    ax.tick_params(axis="y", labelsize=6)
    ax.set_xlim(0, panel["fieldConfig"]["defaults"].get("max", 1) * 1.15)


def without_transformer(panels: list[dict]) -> list[dict]:
    """The run has predictors only: leave out the transformer's panels, and a row they leave empty."""
    kept = [
        p
        for p in panels
        if not any(stack.reads_transformer(t.get("expr", "")) for t in p.get("targets") or [])
    ]
    return [p for i, p in enumerate(kept)
            if p["type"] != "row" or (i + 1 < len(kept) and kept[i + 1]["type"] != "row")]  # fmt: skip


def render(
    prom: stack.Prometheus, dashboard: dict, start: float, end: float, phases: list, out: Path
) -> None:
    queries = stack.dashboard_queries(dashboard)
    panels = without_transformer(dashboard["panels"])
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(24 * 0.9, height * UNIT_PX + 0.6), facecolor=BACKGROUND)
    fig.suptitle(f"{dashboard['title']} — snapshot of a {end - start:.0f} s run (namespace {NAMESPACE}, 2 pods)",
                 color=TEXT, fontsize=13, x=0.01, ha="left")  # fmt: skip
    top_margin = 0.6 / (height * UNIT_PX + 0.6)
    for panel in panels:
        g = panel["gridPos"]
        left, width = g["x"] / 24 + 0.004, g["w"] / 24 - 0.008
        bottom = 1 - top_margin - (g["y"] + g["h"]) / height * (1 - top_margin)
        h = g["h"] / height * (1 - top_margin)
        if panel["type"] == "row":
            fig.text(left, bottom + h * 0.3, panel["title"], color=TEXT, fontsize=11, fontweight="bold")
            continue
        pad = 0.55 / (height * UNIT_PX)  # room for the title and the x label
        ax = fig.add_axes([left + 0.025 * (panel["type"] in ("timeseries", "heatmap", "bargauge")), bottom + pad,
                           width - 0.03 * (panel["type"] in ("timeseries", "heatmap", "bargauge")), h - 1.7 * pad])  # fmt: skip
        style(ax, panel["title"])
        mine = [q for q in queries if q.panel == panel["title"]]
        if panel["type"] == "bargauge":  # at the end of the shifted phase: the interesting moment
            peak = next(e for n, _, e in phases if n == "shifted")
            ax.set_title(f"{panel['title']} — at {peak - start:.0f} s, end of the shifted phase", loc="left",
                         color=TEXT, fontsize=9, fontweight="bold")  # fmt: skip
            draw_bargauge(ax, panel, prom.query(stack.substitute(mine[0].expr, VARIABLES), peak))
            continue
        series = []
        for q in mine:
            expr = stack.substitute(q.expr, VARIABLES)
            if q.instant:
                result = [{"metric": r["metric"], "values": [r["value"]]} for r in prom.query(expr, end)]
            else:
                result = prom.query_range(expr, start, end, 1)
            for r in result:
                ts = np.array([float(t) for t, _ in r["values"]])
                values = np.array([float(v) for _, v in r["values"]])
                label = (
                    r["metric"].get("le")
                    if panel["type"] == "heatmap"
                    else legend_of(q.legend, r["metric"], q.ref)
                )
                series.append((label, ts, values))
        if panel["type"] == "heatmap":
            draw_heatmap(ax, series, start, phases)
        elif panel["type"] == "stat":
            draw_stat(ax, panel, series, start)
        else:
            draw_timeseries(ax, panel, series, start, phases)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80, facecolor=BACKGROUND)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "dashboard-snapshot.png")
    parser.add_argument("--dashboard", type=Path, default=stack.DASHBOARDS / "credit-risk.json")
    parser.add_argument("--phase-seconds", type=float, default=40)
    args = parser.parse_args(argv)
    dashboard = json.loads(args.dashboard.read_text())
    with (
        tempfile.TemporaryDirectory(prefix="credit-risk-snapshot-") as tmp,
        recorded_run(Path(tmp), args.phase_seconds) as (prom, phases),
    ):
        render(prom, dashboard, phases[0][1], phases[-1][2] + 2, phases, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
