"""`report.html`: one self-contained page per run folder (no network: inline CSS, JS and data, plots embedded as
data URIs) that opens from disk. Built from what the folder holds — `run_config.json`, `manifest.json`,
`table.md`, the PNG plots, `examples.jsonl` and `tokens.jsonl` — so `python -m gradsae_nn.explore RUN_DIR`
rebuilds it at any time, and a run without token data still gets its overview and outputs.

Overview: configuration, the summary tables, the plots. Examples: an index (search; filter by changed or
unchanged output), and per example its top latents (GradSAE score, mean activation, activation at the last
token, rank under GradSAE, the baseline and attribution), the prompt's tokens shaded by the selected latent's
per-token contribution `relu(∂T/∂h·h)` or activation, its top-activating training contexts (shipped SAEs) or
its Neuronpedia page (hub SAEs with a Neuronpedia id), and the answer under every setting with EM/F1 and a word
diff against the unedited answer.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from .records import atomic_write_text, read_jsonl
from .tokens import read_tokens

REPORT_FILE = "report.html"
EXAMPLE_FIELDS = ("id", "question", "golds", "partner_golds", "answer", "partner_question", "outputs")
TOKEN_FIELDS = ("tokens", "offset", "latents", "gradsae", "mean_activation", "last_activation", "ranks",
                "contribution", "activation")


def markdown_html(text: str) -> str:
    """The subset of Markdown the run's `table.md` uses: headings, paragraphs, **bold**, pipe tables."""
    out, rows = [], []

    def inline(s: str) -> str:
        return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(s))

    def flush() -> None:
        if rows:
            cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows if not re.match(r"^\|[-|\s]+\|$", r)]
            head, body = cells[0], cells[1:]
            out.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in body)
                       + "</table>")
            rows.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            rows.append(line)
            continue
        flush()
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 1, 4)
            out.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush()
    return "\n".join(out)


def _json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else {}


def neuronpedia_template(sae_spec: str) -> str | None:
    """`https://www.neuronpedia.org/<id>/{latent}` for a hub SAE (`release:sae_id`) that SAELens's registry gives a
    Neuronpedia id; None otherwise (shipped and local SAEs, or no id)."""
    if ":" not in sae_spec or Path(sae_spec).exists():
        return None
    release, sae_id = sae_spec.split(":", 1)
    try:
        from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

        entry = get_pretrained_saes_directory().get(release)
        neuronpedia = (entry.neuronpedia_id or {}).get(sae_id) if entry is not None else None
    except Exception:  # noqa: BLE001 - a registry that cannot be read means no links, never a failed report
        return None
    return f"https://www.neuronpedia.org/{neuronpedia}/{{latent}}" if neuronpedia else None


def top_contexts(sae_spec: str, latents: set[int]) -> dict[str, list]:
    """A shipped SAE's top-activating training contexts of `latents` (`top_contexts.json.gz` beside its weights,
    written by experiments/sae_contexts.py)."""
    from ..core.sae import shipped_sae_root

    path = shipped_sae_root() / sae_spec / "top_contexts.json.gz"
    if not path.is_file():
        return {}
    table = json.loads(gzip.decompress(path.read_bytes()))["latents"]
    return {str(c): table[str(c)] for c in latents if str(c) in table}


def commit_text(git: Any) -> str:
    if isinstance(git, dict) and git.get("commit"):
        return f"commit {str(git['commit'])[:12]}" + (" (uncommitted changes)" if git.get("dirty") else "")
    return "commit unknown"


def report_data(run_dir: Path) -> dict:
    manifest, config = _json(run_dir / "manifest.json"), _json(run_dir / "run_config.json")
    tokens = read_tokens(run_dir)
    examples = []
    for record in read_jsonl(run_dir / "examples.jsonl"):
        entry = {k: record[k] for k in EXAMPLE_FIELDS if k in record}
        entry.setdefault("outputs", {})
        entry.setdefault("answer", "")
        if record.get("id") in tokens:
            entry.update({k: tokens[record["id"]][k] for k in TOKEN_FIELDS})
        examples.append(entry)
    plots = [{"name": p.name, "uri": "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii")}
             for p in sorted(run_dir.glob("*.png"))]
    sae = str(config.get("sae") or manifest.get("sae") or "")
    shown = {c for e in examples for c in e.get("latents", [])}
    table = run_dir / "table.md"
    return {"title": f"{config.get('experiment', manifest.get('experiment', 'run'))} — {config.get('model', '')}, "
                     f"layer {config.get('layer', '?')}, SAE {sae}",
            "subtitle": f"{run_dir} · {len(examples)} examples · {commit_text(manifest.get('git'))}",
            "config": config, "summary_html": markdown_html(table.read_text()) if table.is_file() else "",
            "plots": plots, "examples": examples, "neuronpedia": neuronpedia_template(sae),
            "top_contexts": top_contexts(sae, shown) if sae and ":" not in sae and "/" in sae else {}}


def render_report(data: dict) -> str:
    assets = resources.files("gradsae_nn") / "resources" / "explore"
    css, js = (assets / "report.css").read_text(), (assets / "report.js").read_text()
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(data["title"])}</title><style>{css}</style></head>
<body><header><h1></h1><div class="sub"></div></header>
<nav><button data-section="overview">Overview</button><button data-section="examples">Examples</button></nav>
<main><section id="overview"></section>
<section id="examples"><div class="layout"><div><div class="controls"><input id="search" placeholder="search questions">
<select id="filter"><option value="all">all</option><option value="changed">changed</option>
<option value="unchanged">unchanged</option><option value="correct">unedited answer correct</option>
<option value="wrong">unedited answer wrong</option></select></div><div id="index-count"></div>
<div class="index" id="index-list"></div></div><div class="detail" id="detail">Pick an example.</div></div></section>
</main><script id="data" type="application/json">{payload}</script><script>{js}</script></body></html>
"""


def build_report(run_dir: Path | str) -> Path:
    """Write `run_dir/report.html` (atomically) and return its path."""
    run_dir = Path(run_dir)
    path = run_dir / REPORT_FILE
    atomic_write_text(path, render_report(report_data(run_dir)))
    return path
