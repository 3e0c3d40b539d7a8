"""Building blocks shared by the experiments: batched scoring, latent selections, batched edited generation.

A *setting* is one (method, which, K) cell of a table, keyed `"gradsae/top/10"`; `"none"` is the unedited
run. Each example runs every setting, and the generations of several settings (and examples) share one
`generate` call: they are independent rows of one left-padded batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from .editing import plan_generation, run_generations
from .errors import UsageError
from .generation import extract_answer
from .metrics import score
from .pipeline import Item
from .progress import make_progress
from .records import JsonlAppender, read_jsonl
from .scoring import METHODS, LatentScores, score_batches
from .selection import Selection, parse_k, select
from .splice import LatentEdit
from .targets import ScoringInput

if TYPE_CHECKING:
    from .models import LoadedModel

WHICH = ("top", "bottom")
DEFAULT_KS = ("1", "10", "20", "30", "50%")


@dataclass(frozen=True)
class MethodOptions:
    """How latents are scored and edited (the `add_method_args` options), plus generation sizes."""

    layer: int
    target: str = "answer-logprob"
    splice: str = "lossless"
    include_bos: bool = False
    edit_impl: str = "auto"
    scoring: str = "trace"
    max_new_tokens: int = 16
    batch_size: int = 8
    gen_batch_size: int = 24


def parse_ks(values: Sequence[str]) -> list[str]:
    """Normalised K labels (`"10"`, `"50%"`), in the order given, duplicates refused."""
    ks = [str(parse_k(v)) for v in values]
    if len(set(ks)) != len(ks):
        raise UsageError(f"duplicate K in --k {' '.join(values)}; give each K once")
    return ks


def setting_key(method: str, which: str, k: str) -> str:
    return f"{method}/{which}/{k}"


def settings(ks: Sequence[str], methods: Sequence[str] = METHODS) -> list[tuple[str, str, str]]:
    """Every (method, which, k) in table order: methods, then top before bottom, then K."""
    return [(m, w, k) for m in methods for w in WHICH for k in ks]


def score_items(model: "LoadedModel", sae: Any, items: Sequence[Item], options: MethodOptions
                ) -> dict[str, LatentScores]:
    """GradSAE and activation scores of each item (one forward + backward per `batch_size` items), by id.

    Remotely every batch goes in one request."""
    ordered = sorted(items, key=lambda it: len(it.prompt_ids) + len(it.answer_ids))  # less padding per batch
    chunks = [ordered[start:start + options.batch_size] for start in range(0, len(ordered), options.batch_size)]
    scores = score_batches(model, sae, options.layer,
                           [[ScoringInput(it.prompt_ids, it.answer_ids) for it in chunk] for chunk in chunks],
                           target=options.target, splice_mode=options.splice, method=options.scoring,
                           include_first=options.include_bos)
    return {it.id: s for chunk, chunk_scores in zip(chunks, scores) for it, s in zip(chunk, chunk_scores)}


def select_all(scores: LatentScores, ks: Sequence[str], methods: Sequence[str] = METHODS
               ) -> dict[str, Selection]:
    """The selection of every setting of one example, by setting key."""
    return {setting_key(m, w, k): select(scores.by_method(m), k, w, scores.n_active_last)
            for m, w, k in settings(ks, methods)}


def selection_record(selection: Selection) -> dict:
    return {"latents": list(selection.latents), "scores": [round(s, 6) for s in selection.scores],
            "k_wanted": selection.k_wanted, "truncated": selection.truncated}


@dataclass(frozen=True)
class GenerationJob:
    """One greedy generation: `prompt_ids` with `edit` applied; `golds` are what its answer is scored against."""

    item_id: str
    setting: str
    prompt_ids: tuple[int, ...]
    edit: LatentEdit
    golds: tuple[str, ...]


def run_jobs(model: "LoadedModel", sae: Any, jobs: Sequence[GenerationJob], options: MethodOptions,
             positions: str = "all") -> list[dict]:
    """Generate every job (in batches of `gen_batch_size` rows) → `{"prediction", "em", "f1"}` per job, in order.

    Remotely every batch goes in one request.
    """
    return _run_groups(model, sae, [jobs], options, positions)[0]


def run_job_groups(model: "LoadedModel", sae: Any, groups: Sequence[Sequence[GenerationJob]], options: MethodOptions,
                   positions: str = "all") -> Iterator[list[dict]]:
    """`run_jobs` of each group, yielded group by group (the same generate batches either way).

    Locally each group is yielded as soon as it is generated (an interrupt loses one group). Remotely all
    groups go in one request (one round trip per chunk of examples) and are yielded when it returns.
    """
    if model.remote is None:
        for group in groups:
            yield run_jobs(model, sae, group, options, positions)
    else:
        yield from _run_groups(model, sae, groups, options, positions)


def _run_groups(model: "LoadedModel", sae: Any, groups: Sequence[Sequence[GenerationJob]], options: MethodOptions,
                positions: str) -> list[list[dict]]:
    """Each group's results; every group's generate batches run through one `run_generations` call."""
    chunks = [(g, group[start:start + options.gen_batch_size]) for g, group in enumerate(groups)
              for start in range(0, len(group), options.gen_batch_size)]
    plans = [plan_generation(model, sae, [j.prompt_ids for j in chunk], [j.edit for j in chunk], options.max_new_tokens,
                             splice_mode=options.splice, positions=positions, impl=options.edit_impl)
             for _, chunk in chunks]
    n_jobs = sum(len(group) for group in groups)
    results: list[list[dict]] = [[] for _ in groups]
    for (g, chunk), completions in zip(chunks, run_generations(model, options.layer, plans, f"{n_jobs} generations")):
        for job, ids in zip(chunk, completions):
            prediction = extract_answer(model.tokenizer.decode(ids, skip_special_tokens=True))
            em, f1 = score(prediction, job.golds)
            results[g].append({"prediction": prediction, "em": em, "f1": f1})
    return results


def run_resumable(path: Path, items: Sequence[Item], chunk_size: int, description: str,
                  process: Callable[[list[Item]], Iterable[list[dict]]]) -> dict[str, dict]:
    """Records by id for `items`, computing only those missing from the JSONL file `path` (resume).

    Pending items go to `process` `chunk_size` at a time, in `items` order (so an interrupted run has
    finished a prefix, plus part of one chunk), shortest prompt first within a chunk (less padding); it
    yields lists of finished records (each with an "id"), which are appended and fsync'd at once, so an
    interrupt loses only the work in flight.
    """
    done = {r["id"]: r for r in read_jsonl(path)}
    pending = [it for it in items if it.id not in done]
    if pending:
        with JsonlAppender(path) as sink, make_progress() as progress:
            task = progress.add_task(description, total=len(pending))
            for start in range(0, len(pending), chunk_size):
                chunk = sorted(pending[start:start + chunk_size], key=lambda it: len(it.prompt_ids))
                for records in process(chunk):
                    sink.write(records)
                    done.update((r["id"], r) for r in records)
                    progress.advance(task, len(records))
    return done


def job_groups(items: Iterable[Item], jobs_of: Any, rows: int) -> Iterator[list[tuple[Item, list[GenerationJob]]]]:
    """Items with their jobs, grouped so that one group fills about `rows` generation rows.

    A group holds whole items, so after a group every one of its items is finished and can be written.
    """
    group: list[tuple[Item, list[GenerationJob]]] = []
    n = 0
    for item in items:
        jobs = jobs_of(item)
        if group and n + len(jobs) > rows:
            yield group
            group, n = [], 0
        group.append((item, jobs))
        n += len(jobs)
    if group:
        yield group


def experiment_parser(doc: str, default_n_correct: int = 50, default_ks: Sequence[str] = DEFAULT_KS) -> Any:
    """The parser every experiment script starts from: common, method, correct-set and experiment options."""
    from .cli import ArgumentParser, add_common_args, add_method_args, add_remote_args
    from .pipeline import add_correct_set_args
    from .prompts import PROMPTS

    parser = ArgumentParser(description=doc.split("\n\n")[0])
    add_common_args(parser)
    add_remote_args(parser)
    add_method_args(parser)
    add_correct_set_args(parser, default_n_correct)
    add_experiment_args(parser, default_ks)
    parser.add_argument("--prompt", default=None, choices=sorted(PROMPTS),
                        help="prompt template (default: the model's measured best, as in the answer step)")
    return parser


def add_experiment_args(parser: Any, default_ks: Sequence[str] = DEFAULT_KS) -> None:
    """--k --gen-batch-size --scoring: shared by perturb, steer and stats."""
    from .scoring import SCORING_METHODS

    parser.add_argument("--k", nargs="+", default=list(default_ks),
                        help="K values: whole numbers or percentages of the latents active at the last prompt token "
                             "(default: %(default)s)")
    parser.add_argument("--gen-batch-size", type=int, default=24,
                        help="generation rows per generate call; one example's settings share a call "
                             "(default: %(default)s)")
    parser.add_argument("--scoring", default=None, choices=SCORING_METHODS,
                        help="trace: SAE spliced in the trace; x-grad: save x and dT/dx only and score client-side "
                             "(the remote path); equal up to float rounding (default: trace, x-grad with --remote)")


def resolve_scoring(args: Any) -> str:
    """`--scoring` as given, else `trace` locally and `x-grad` with `--remote` (no SAE travels); sets `args.scoring`."""
    if getattr(args, "scoring", "trace") is None:
        args.scoring = "x-grad" if getattr(args, "remote", False) else "trace"
    return args.scoring


def method_options(args: Any, layer: int) -> MethodOptions:
    if args.gen_batch_size <= 0:
        raise UsageError(f"--gen-batch-size must be positive, got {args.gen_batch_size}")
    return MethodOptions(layer=layer, target=args.target, splice=args.splice, include_bos=args.include_bos,
                         edit_impl=args.edit_impl, scoring=args.scoring, max_new_tokens=args.max_new_tokens,
                         batch_size=args.batch_size, gen_batch_size=args.gen_batch_size)


def run_dir(experiment: str, model: str, layer: int, changed: dict[str, Any], root: Path | str = "results") -> Path:
    """`results/<experiment>/<model>-L<layer>[-<option>_<value>...]`: non-default options that change results
    are in the name, so runs with different options never share (or overwrite) a folder."""
    import re

    safe = re.sub(r"[^A-Za-z0-9_.%-]+", "_", model.strip("/"))
    suffix = "".join(f"-{name}_{re.sub(r'[^A-Za-z0-9_.%-]+', '_', str(value))}" for name, value in changed.items())
    return Path(root) / experiment / f"{safe}-L{layer}{suffix}"


def changed_options(args: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """The options in `defaults` whose value in `args` differs, short names first-come."""
    out = {}
    for name, default in defaults.items():
        value = getattr(args, name)
        if isinstance(value, list):
            if value != list(default):
                out[name] = ",".join(str(v) for v in value)
        elif value != default:
            out[name] = value
    return out


# Options that change results; a non-default value goes into the default output folder's name.
RESULT_DEFAULTS = {"data": "squad-dev", "seed": 0, "prompt": None, "splice": "lossless", "target": "answer-logprob",
                   "include_bos": False, "edit_impl": "auto", "scoring": "trace", "correct_f1": None,
                   "max_new_tokens": 16, "dtype": "float32"}


def start_run(args: Any, experiment: str, prepared: Any, extra_defaults: dict[str, Any] | None = None,
              extra_config: dict[str, Any] | None = None) -> tuple[Path, Any]:
    """Output folder (refusing one that holds another configuration) and its manifest, for a prepared run."""
    from dataclasses import asdict

    from .manifest import Manifest, sae_identity
    from .records import check_run_config

    defaults = {**RESULT_DEFAULTS, **(extra_defaults or {})}
    changed = changed_options(args, {k: v for k, v in defaults.items() if hasattr(args, k)})
    if args.sae is not None:
        changed = {"sae": args.sae, **changed}
    out_dir = Path(args.out) if args.out else run_dir(experiment, args.model, prepared.layer, changed)
    sae = sae_identity(prepared.sae_spec)
    config = {"experiment": experiment, "model": args.model, "layer": prepared.layer, "sae": sae["spec"],
              "sae_weights_sha256": sae["weights_sha256"], "answers": asdict(prepared.answer_config),
              **{k: getattr(args, k) for k in defaults if hasattr(args, k)}, **(extra_config or {})}
    check_run_config(out_dir, config)
    manifest = Manifest(out_dir, experiment, vars(args), args.model, prepared.sae_spec,
                        extra={"layer": prepared.layer, "answer_cache": str(prepared.answer_dir)})
    return out_dir, manifest


def begin(args: Any, experiment: str, extra_defaults: dict[str, Any] | None = None) -> tuple[list[str], Any, Path, Any]:
    """Parse K, prepare data/model/SAE/correct set, and open the output folder: (ks, prepared, out_dir, manifest)."""
    from .pipeline import prepare

    ks = parse_ks(args.k)
    prepared = prepare(args)
    out_dir, manifest = start_run(args, experiment, prepared, extra_defaults={"k": list(DEFAULT_KS), **(extra_defaults or {})},
                                  extra_config={"k": ks})
    return ks, prepared, out_dir, manifest
