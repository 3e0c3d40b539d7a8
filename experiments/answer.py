"""Answer SQuAD v1.1 questions with an LLM; cache predictions for the experiments that follow.

    python experiments/answer.py --limit 200

Writes `predictions.jsonl` (append-only; an interrupted run resumes without duplicates) and
`summary.json` under --out, and prints EM/F1, the number answered correctly and examples/s.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from gradsae_nn.cli import ArgumentParser, add_common_args, add_remote_args, remote_options, run  # noqa: E402
from gradsae_nn.models import load_model  # noqa: E402
from gradsae_nn.prompts import PROMPTS, get_template  # noqa: E402
from gradsae_nn.qa import AnswerConfig, default_answer_dir, run_answers  # noqa: E402
from gradsae_nn.remote import run_summary  # noqa: E402
from gradsae_nn.records import atomic_write_json  # noqa: E402
from gradsae_nn.squad import load_squad, select_examples, source_fingerprint, to_examples  # noqa: E402


def parse_args(argv: list[str] | None = None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    add_remote_args(parser)
    parser.add_argument("--prompt", default=None, choices=sorted(PROMPTS),
                        help="prompt template (default: the measured best for the model's style: chat-span-3shot "
                             "for instruct models, fewshot-3shot for base models)")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="greedy tokens per answer (default: 16)")
    parser.add_argument("--correct-f1", type=float, default=None,
                        help="count an answer correct when F1 >= this (the authors' code used 0.9); default EM = 1")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    examples = select_examples(to_examples(load_squad(args.data)), args.limit, args.seed)
    started = time.perf_counter()
    model = load_model(args.model, device=args.device, dtype=args.dtype, remote=remote_options(args))
    load_seconds = time.perf_counter() - started
    template = get_template(args.prompt, model)
    out_dir = Path(args.out) if args.out else default_answer_dir(args.model, template.name)
    config = AnswerConfig(model=args.model, prompt=template.name, max_new_tokens=args.max_new_tokens,
                          data=args.data, data_sha256=source_fingerprint(args.data), seed=args.seed,
                          dtype=args.dtype)
    _, summary = run_answers(model, template, examples, out_dir, config, batch_size=args.batch_size,
                             correct_f1=args.correct_f1)
    atomic_write_json(out_dir / "summary.json",
                      {"config": asdict(config), **asdict(summary), "model_load_s": round(load_seconds, 2),
                       **run_summary(model)})

    table = Table(title=f"SQuAD v1.1 — {args.model}, prompt {template.name}")
    for column in ("examples", "EM", "F1", "correct", "generated now", "examples/s"):
        table.add_column(column, justify="right")
    table.add_row(str(summary.n), f"{summary.em:.2f}", f"{summary.f1:.2f}", str(summary.n_correct),
                  str(summary.n_generated), f"{summary.examples_per_s:.2f}")
    Console().print(table)
    print(f"model loaded in {load_seconds:.1f} s; predictions: {out_dir / 'predictions.jsonl'}")
    return 0


if __name__ == "__main__":
    run(main)
