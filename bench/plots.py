"""PNG plots of benchmark results (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_audio_room"]


def plot_audio_room(summary: dict[str, Any], path: Path) -> Path:
    """Mouth-to-ear latency and server CPU against attendees, as ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["median"]
    sizes = [r["attendees"] for r in rows]
    figure, (latency, cpu) = plt.subplots(1, 2, figsize=(10, 4))
    latency.plot(sizes, [r["m2e_p50_ms"] for r in rows], marker="o", label="p50")
    latency.plot(sizes, [r["m2e_p95_ms"] for r in rows], marker="o", label="p95")
    latency.axhline(150, color="grey", linestyle="--", label="150 ms target")
    latency.set_xlabel("attendees in the meeting")
    latency.set_ylabel("mouth-to-ear latency (ms)")
    latency.set_ylim(bottom=0)
    latency.legend()
    cpu.plot(sizes, [r["server_cpu"] for r in rows], marker="o", color="tab:red")
    cpu.set_xlabel("attendees in the meeting")
    cpu.set_ylabel("server CPU (cores)")
    cpu.set_ylim(bottom=0)
    figure.suptitle(summary["command"], fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
