"""Conventions shared by every script in `experiments/`: common options and one-line errors."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Callable

from .errors import RemoteFailure, UsageError
from .models import DEFAULT_MODEL, known_model_names
from .squad import HUB_DATASET, PACKAGED_DEV

if TYPE_CHECKING:
    from .remote import RemoteOptions


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad option is one line on stderr (not usage + error) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {value}")
    return value


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """--model --data --limit --seed --out --device --dtype --batch-size: the same meaning in every script."""
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"embedded model ({', '.join(known_model_names())}; offline), a Hugging Face repo id "
                             f"(online) or a local model directory (default: %(default)s)")
    parser.add_argument("--data", default=PACKAGED_DEV,
                        help=f"'{PACKAGED_DEV}' = the SQuAD v1.1 dev set shipped in the package (offline), "
                             f"'{HUB_DATASET}' = the hub's validation split, or a path to any SQuAD-v1.1 JSON "
                             f"(.json or .json.zip) (default: %(default)s)")
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="use this many questions: contexts are shuffled with --seed and their questions kept "
                             "together, so a larger limit extends a smaller one (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the example sample (default: %(default)s)")
    parser.add_argument("--out", default=None, help="output folder (default: under results/, named after the run)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda, cuda:N")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="model weights and activations (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=8,
                        help="prompts per batch (left-padded; predictions do not depend on it) (default: %(default)s)")


def add_remote_args(parser: argparse.ArgumentParser) -> None:
    """--remote --ndif-host -v: run every trace on an NDIF server. The API key is read from NDIF_API_KEY only."""
    parser.add_argument("--remote", action="store_true",
                        help="run the model on an NDIF server (nnsight remote execution); the SAE stays here. "
                             "API key: the NDIF_API_KEY environment variable (there is no option for it)")
    parser.add_argument("--ndif-host", default=None, metavar="URL",
                        help="NDIF API URL, e.g. http://127.0.0.1:8289 for `python -m gradsae_nn.ndif_local start` "
                             "(default: nnsight's configured host: NDIF_HOST, its config file, or https://api.ndif.us)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="remote: every request's payload size and status, and the server's traceback on error")


def remote_options(args: argparse.Namespace) -> "RemoteOptions | None":
    """The `RemoteOptions` of `--remote/--ndif-host/-v`, or None for a local run."""
    from .remote import RemoteOptions

    if getattr(args, "ndif_host", None) and not args.remote:
        raise UsageError("--ndif-host needs --remote (or drop it to run locally)")
    return RemoteOptions(host=args.ndif_host, verbose=args.verbose) if getattr(args, "remote", False) else None


def add_method_args(parser: argparse.ArgumentParser) -> None:
    """--layer --sae --splice --target --include-bos --edit-impl: how latents are scored and edited."""
    from .splice import EDIT_IMPLS, SPLICE_MODES
    from .targets import TARGETS

    parser.add_argument("--layer", type=int, default=None,
                        help="residual-stream layer the SAE is spliced into (default: the model's default SAE layer)")
    parser.add_argument("--sae", default=None,
                        help="shipped SAE name (e.g. smollm2-135m-it/L15), a SAELens SAE folder, or release:sae_id "
                             "(SAELens registry; needs the hub)")
    parser.add_argument("--splice", default="lossless", choices=SPLICE_MODES,
                        help="lossless: model outputs unchanged, gradients reach the latents (default); "
                             "reconstruct: the model runs on the SAE reconstruction (the authors' code)")
    parser.add_argument("--target", default="answer-logprob", choices=TARGETS,
                        help="p(Y|H) whose gradient scores latents: teacher-forced log-prob of the model's own greedy "
                             "answer (default), its probability, or the first answer token's probability")
    parser.add_argument("--include-bos", action="store_true",
                        help="also score the first prompt token (an attention sink with ~100x the residual norm)")
    parser.add_argument("--edit-impl", default="auto", choices=EDIT_IMPLS,
                        help="sliced: only the edited latents' rows (ReLU/JumpReLU); full: whole encode/decode "
                             "(any SAE, needed for TopK); auto picks sliced where exact (default)")


def run(main: Callable[[], int | None]) -> None:
    """Run a script's main: a `UsageError` becomes one line on stderr and exit 2, a `RemoteFailure` one line
    (plus the server's traceback with -v) and exit 3; Ctrl-C exits 130."""
    try:
        code = main()
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except RemoteFailure as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.show_detail and exc.detail:
            print(f"server traceback:\n{exc.detail}", file=sys.stderr)
        sys.exit(3)
    except KeyboardInterrupt:
        print("interrupted: every finished result is saved; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
