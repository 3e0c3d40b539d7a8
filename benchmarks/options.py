"""The suite's command-line options and the shared setup (model, SAE, examples) every row module starts from."""

from __future__ import annotations

import argparse

import torch

from benchmarks.report import REPO

ROW_GROUPS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11")


def build_parser(doc: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(doc or __doc__).split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-it", help="embedded name, local HF directory or hub id")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    p.add_argument("--layer", type=int, default=None, help="layer (default: the SAE's)")
    p.add_argument("--sae", default=None,
                   help="SAE (default: the model's shipped default); 'random' = random ReLU SAE at --layer")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per function after warm-up (default 5)")
    p.add_argument("--gen-tokens", type=int, default=32, help="new tokens in rows 2–3 (default 32; row 5 ≤ 16)")
    p.add_argument("--batch", type=int, default=8, help="batch size of row 5 (default 8)")
    p.add_argument("--ablation-examples", type=int, default=2, help="examples in row 4 (default 2)")
    p.add_argument("--ablation-latents", default="60",
                   help="latents ablated exactly per example in row 4, or 'all' (default 60)")
    p.add_argument("--ablation-batch", type=int, default=1, help="ablation rows per forward call (default 1)")
    p.add_argument("--memory-repeats", type=int, default=3, help="subprocesses per side in row 6 (default 3)")
    p.add_argument("--remote-host", default=None, help="NDIF server URL for row 7's latency (e.g. a local NDIF)")
    p.add_argument("--results-dir", default=str(REPO / "results"),
                   help="where row 8 looks for results/perturb/<model>-L<layer>/manifest.json")
    p.add_argument("--with-default-run", action="store_true",
                   help="row 8: run the default `experiments/perturb.py` here (long) instead of reading a manifest")
    p.add_argument("--rows", default=",".join(ROW_GROUPS), help="row groups to run, e.g. 1,2,4 (default all)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--note", default=None, help="a line shown at the top of the output (e.g. 'provisional')")
    p.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"), help="Markdown output")
    return p


def setup(args: argparse.Namespace, n_examples: int):
    from benchmarks.context import build_context

    if args.threads:
        torch.set_num_threads(args.threads)
    return build_context(args, n_examples)
