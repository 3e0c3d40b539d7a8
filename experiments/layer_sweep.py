"""Layer sweep (paper Table 4 analog): the perturbation at one K (default 50%) for every shipped SAE of a model.

    python experiments/layer_sweep.py                       # SmolLM2-135M-Instruct: L6, L15, L22
    python experiments/layer_sweep.py --layers 6 15 --k 10

Each layer's run is exactly `experiments/perturb.py --layer L --k K` (same folder, so either resumes the
other); the collated table goes to results/layer_sweep/<model>[-<options>]/table.md with summary.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from gradsae_nn.cli import ArgumentParser, remote_options, run  # noqa: E402
from gradsae_nn.errors import UsageError  # noqa: E402
from gradsae_nn.experiment import DEFAULT_KS, method_options, parse_ks, start_run  # noqa: E402
from gradsae_nn.models import load_model  # noqa: E402
from gradsae_nn.perturbation import run_perturbation  # noqa: E402
from gradsae_nn.pipeline import prepare  # noqa: E402
from gradsae_nn.records import atomic_write_json, atomic_write_text  # noqa: E402
from gradsae_nn.remote import run_summary  # noqa: E402
from gradsae_nn.report import ROW_LABELS, ROW_ORDER, markdown_table, summarize, summary_json, write_outputs  # noqa: E402
from gradsae_nn.sae import shipped_sae_names  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perturb import build_parser as perturb_parser  # noqa: E402


def build_parser() -> ArgumentParser:
    parser = perturb_parser()
    parser.description = __doc__.split("\n\n")[0]
    parser.set_defaults(k=["50%"])
    parser.add_argument("--layers", type=int, nargs="+", default=None,
                        help="layers to sweep (default: every layer with a shipped SAE for --model)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.sae is not None or args.out is not None:
        raise UsageError("layer_sweep picks each layer's shipped SAE and folder itself; drop --sae/--out "
                         "(or run experiments/perturb.py per layer)")
    ks = parse_ks(args.k)
    layers = args.layers or sorted(int(n.split("/L")[1]) for n in shipped_sae_names() if n.startswith(f"{args.model}/"))
    if not layers:
        raise UsageError(f"no shipped SAEs for {args.model}; pass --layers with SAEs available, or another --model")
    started = time.perf_counter()
    model = load_model(args.model, device=args.device, dtype=args.dtype, remote=remote_options(args))
    rows, per_layer = {metric: [] for metric in ("em", "f1")}, {}
    for layer in layers:
        args.layer = layer
        prepared = prepare(args, model=model, layer=layer)
        out_dir, manifest = start_run(args, "perturb", prepared, extra_defaults={"k": list(DEFAULT_KS)},
                                      extra_config={"k": ks})
        records = run_perturbation(prepared, method_options(args, layer), ks, out_dir)
        summary = summarize(records, ks)
        write_outputs(out_dir, f"Perturbation — {args.model}, layer {layer}, SAE {prepared.sae_spec}", "perturb",
                      summary, ks, len(records), {"n_answered": prepared.n_answered})
        manifest.finish(n_examples=len(records))
        per_layer[layer] = {"n_examples": len(records), "folder": str(out_dir), "settings": summary_json(summary)}
        depth = f"L{layer} ({100 * layer / model.n_layers:.0f}% depth)"
        for metric in rows:
            rows[metric].append([depth, summary["none"][metric].text()]
                                + [summary[f"{m}/{w}/{k}"][metric].text() for m, w in ROW_ORDER for k in ks])
    header = ["layer", "w/o task"] + [f"{ROW_LABELS[(m, w)]} K={k}" for m, w in ROW_ORDER for k in ks]
    suffix = "" if ks == ["50%"] else "-k_" + ",".join(ks)
    sweep_dir = Path("results") / "layer_sweep" / f"{args.model}{suffix}"
    title = f"Layer sweep — {args.model}, K = {', '.join(ks)}"
    text = f"## {title}\n\nn = {per_layer[layers[0]]['n_examples']} correct examples per layer; mean % [95% CI].\n"
    for metric in rows:
        text += f"\n**{metric.upper()}**\n\n" + markdown_table(header, rows[metric])
    atomic_write_text(sweep_dir / "table.md", text)
    atomic_write_json(sweep_dir / "summary.json", {"layers": per_layer, "seconds": round(time.perf_counter() - started, 1),
                                                   **run_summary(model)})
    console = Console()
    for metric in rows:
        table = Table(title=f"{title} — {metric.upper()}")
        for column in header:
            table.add_column(column, justify="right")
        for row in rows[metric]:
            table.add_row(*row)
        console.print(table)
    console.print(f"table: {sweep_dir / 'table.md'}")
    return 0


if __name__ == "__main__":
    run(main)
