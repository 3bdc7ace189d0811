"""PNG plots of benchmark results (matplotlib, headless Agg backend): what users feel
(latency, frame rate) and what the server spends (CPU, RSS) against attendees."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Curve", "Panel", "plot_audio_room", "plot_churn", "plot_join", "plot_panels",
           "plot_video_meeting"]  # fmt: skip


@dataclass
class Curve:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    style: str = "line"
    """``line`` (with markers) or ``dots`` (a scatter of single measurements)."""


@dataclass
class Panel:
    ylabel: str
    curves: list[Curve]
    limit: tuple[float, str] | None = None
    """A horizontal target line: (value, label)."""
    extra: list[str] = field(default_factory=list)


def plot_panels(title: str, xlabel: str, panels: Sequence[Panel], path: Path) -> Path:
    """Panels sharing the x quantity (three to a row, or two rows of two), as ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = len(panels) if len(panels) <= 3 else 2
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 4 * rows), squeeze=False)
    for axis, panel in zip(axes.flat, panels, strict=False):
        for curve in panel.curves:
            if curve.style == "dots":
                axis.scatter(curve.xs, curve.ys, s=6, alpha=0.5, label=curve.label)
            else:
                axis.plot(curve.xs, curve.ys, marker="o", label=curve.label)
        if panel.limit is not None:
            axis.axhline(panel.limit[0], color="grey", linestyle="--", label=panel.limit[1])
        axis.set_xlabel(xlabel)
        axis.set_ylabel(panel.ylabel)
        axis.set_ylim(bottom=0)
        if any(c.label for c in panel.curves) or panel.limit is not None:
            axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _column(rows: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in rows]


def _server_panels(rows: Sequence[dict[str, Any]], x: str) -> list[Panel]:
    xs = _column(rows, x)
    return [
        Panel("server CPU (cores)", [Curve("", xs, _column(rows, "server_cpu"))]),
        Panel("server RSS (MB)", [Curve("", xs, _column(rows, "server_rss_mb"))]),
    ]


def plot_audio_room(summary: dict[str, Any], path: Path) -> Path:
    """Mouth-to-ear latency, loss, server CPU and RSS against attendees."""
    rows = summary["median"]
    xs = _column(rows, "attendees")
    latency = Panel(
        "mouth-to-ear latency (ms)",
        [Curve("p50", xs, _column(rows, "m2e_p50_ms")),
         Curve("p95", xs, _column(rows, "m2e_p95_ms"))],
        limit=(150.0, "150 ms target"),
    )  # fmt: skip
    loss = Panel("audio loss, p95 of bots (%)", [Curve("", xs, _column(rows, "loss_pct_p95"))],
                 limit=(1.0, "1 % target"))  # fmt: skip
    return plot_panels(summary["command"], "attendees in the meeting",
                       [latency, loss, *_server_panels(rows, "attendees")], path)  # fmt: skip


def plot_join(summary: dict[str, Any], path: Path) -> Path:
    """Each storm join's time to first audio, and the server's CPU and RSS sampled every
    second, against the attendees connected at that moment (every run overlaid)."""
    latency = Panel("join → first audio (ms)", [])
    cpu = Panel("server CPU (cores)", [])
    rss = Panel("server RSS (MB)", [])
    for i, run in enumerate(summary["runs"], 1):
        joins = run["storm_joins"]
        points = run["storm_series"]
        latency.curves.append(Curve(f"run {i}", _column(joins, "connected"),
                                    _column(joins, "first_audio_ms"), style="dots"))  # fmt: skip
        xs = _column(points, "attendees")
        cpu.curves.append(Curve(f"run {i}", xs, _column(points, "server_cpu")))
        rss.curves.append(Curve(f"run {i}", xs, _column(points, "server_rss_mb")))
    return plot_panels(summary["command"], "attendees connected", [latency, cpu, rss], path)


def plot_video_meeting(summary: dict[str, Any], path: Path) -> Path:
    """Received frame rate, freezes, server CPU and RSS against attendees."""
    rows = summary["median"]
    xs = _column(rows, "attendees")
    fps = Panel(
        "received frames/s per stream",
        [Curve("p50", xs, _column(rows, "fps_p50")), Curve("min", xs, _column(rows, "fps_min"))],
        limit=(15.0, "sent"),
    )
    freezes = Panel("freezes (> 500 ms)", [Curve("", xs, _column(rows, "freezes"))])
    return plot_panels(summary["command"], "attendees in the meeting",
                       [fps, freezes, *_server_panels(rows, "attendees")], path)  # fmt: skip


def plot_churn(summary: dict[str, Any], path: Path) -> Path:
    """Join time, server CPU and RSS against the attendees churning in the meeting."""
    rows = summary["median"]
    xs = _column(rows, "attendees")
    latency = Panel(
        "join → first audio (ms)",
        [Curve("p50", xs, _column(rows, "first_audio_p50_ms")),
         Curve("p99", xs, _column(rows, "first_audio_p99_ms"))],
    )  # fmt: skip
    return plot_panels(summary["command"], "attendees joining and leaving",
                       [latency, *_server_panels(rows, "attendees")], path)  # fmt: skip
