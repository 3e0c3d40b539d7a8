"""Rows of the benchmark table, the machine description, and `docs/benchmarks.md`."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from gradsae_nn.results.manifest import git_commit, package_versions

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    """One line of the table. `a`, `b`, `ratio` are formatted strings; `met` is yes / no / report / not measured.

    A row that could not be measured says why in `ratio` (starting "not measured:") and has `met` "not measured".
    """

    number: str
    what: str
    vs: str
    a: str
    b: str
    ratio: str
    goal: str
    met: str
    notes: list[str] = field(default_factory=list)

    @classmethod
    def not_measured(cls, number: str, what: str, vs: str, goal: str, reason: str) -> "Row":
        return cls(number, what, vs, "—", "—", f"not measured: {reason}", goal, "not measured")


def met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def total_ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return None


def git_state() -> str:
    """`<commit>` of this checkout, `+ uncommitted changes` when the tracked files differ from it."""
    git = git_commit()
    if git["commit"] is None:
        return "unknown (not a git checkout)"
    return git["commit"][:12] + (" + uncommitted changes" if git["dirty"] else "")


def machine(device: torch.device) -> dict[str, str]:
    """What the numbers were measured on."""
    ram = total_ram_gib()
    info = {
        "date (UTC)": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "git commit": git_state(),
        "CPU": f"{cpu_model()}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}",
        "RAM": f"{ram:.1f} GiB" if ram else "unknown",
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "Python": platform.python_version(),
        "platform": platform.platform(),
        **{name: v or "not installed" for name, v in package_versions().items()},
    }
    if hasattr(os, "getloadavg"):
        info["load average at start (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return info


def escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def render(rows: list[Row], machine_info: dict[str, str], config: dict[str, str], title_note: str | None,
           command: str) -> str:
    lines = ["# Benchmarks", ""]
    if title_note:
        lines += [f"> **{title_note}**", ""]
    lines += [f"Produced by `{command}` (see `benchmarks/`). Every ratio is measured side by side in one "
              "process: a warm-up call, then repeats interleaved A, B, A, B, ..., and the median of each; "
              "`[q1–q3]` is the interquartile range of the repeats. Ratios are the claims; absolute times are "
              "context.", "", "## Machine", ""]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {escape(v)} |" for k, v in machine_info.items()]
    lines += ["", "## Configuration", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {escape(v)} |" for k, v in config.items()]
    lines += ["", "## Results", "", "| row | what | vs | A (median [IQR]) | B (median [IQR]) | ratio | goal | met? |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join(escape(c) for c in (r.number, r.what, r.vs, r.a, r.b, r.ratio, r.goal, r.met))
                     + " |")
    lines += ["", "## Notes per row", ""]
    for r in rows:
        for note in r.notes:
            lines.append(f"- **{r.number}** {note}")
    lines += ["", "## Against the goals", ""]
    for r in rows:
        lines.append(f"- {r.number} {r.what}: {r.ratio} (goal {r.goal}) — {r.met.replace('**', '')}")
    return "\n".join(lines) + "\n"
