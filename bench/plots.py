"""One PNG per run, drawn from the `panels` a scenario puts in its result.

A panel is `{"title", "xlabel", "ylabel", "kind": "line"|"cdf", "logx", "series":
{label: [[x, y], ...] or [values...]}}`; a `cdf` series is a list of values.
"""
from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot(scenario: str, result: dict[str, Any], path: str) -> bool:
    panels = result.get("panels") or []
    if not panels:
        return False
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.4 * len(panels)), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels):
        for label, data in panel["series"].items():
            if not data:
                continue
            if panel.get("kind") == "cdf":
                values = sorted(data)
                n = len(values)
                ax.plot(values, [(i + 1) / n for i in range(n)], label=f"{label} (n={n})")
            else:
                ax.plot([p[0] for p in data], [p[1] for p in data], label=label)
        if panel.get("logx"):
            ax.set_xscale("log")
        ax.set_title(panel.get("title", ""))
        ax.set_xlabel(panel.get("xlabel", ""))
        ax.set_ylabel(panel.get("ylabel", ""))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"imboy bench: {scenario}  ({result.get('finished_at', '')})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
