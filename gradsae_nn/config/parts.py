"""The parts of a run's configuration, by concern: model, remote server, data, method."""

from __future__ import annotations

from dataclasses import dataclass

from ..data.prompts import PROMPTS
from ..data.squad import HUB_DATASET, PACKAGED_DEV
from ..errors import OptionError, literal
from ..models import DEFAULT_MODEL, known_model_names
from ..models.registry import check_model_name
from ..modes import (AnswerFormat, AnswerSplice, Dtype, EditImpl, Method, ScoredPositions, Scoring,
                     SpliceMode, Target, check_mode)
from .options import option, positive
from .presets import preset_text


@dataclass(frozen=True)
class ModelConfig:
    """Which model, where and in which dtype."""

    model: str = option(DEFAULT_MODEL, f"embedded model ({', '.join(known_model_names())}; offline), a Hugging Face "
                                       f"repo id (online) or a local model directory")
    device: str = option("auto", "auto (cuda if available, else cpu), cpu, cuda, cuda:N")
    dtype: Dtype = option("float32", "model weights and activations", result=True)

    def __post_init__(self) -> None:
        check_mode(self.dtype, Dtype, "dtype")
        check_model_name(self.model)  # before the SAE is resolved: an unknown model is named as such


@dataclass(frozen=True)
class RemoteConfig:
    """Run the model on an NDIF server. The API key is read from NDIF_API_KEY only; there is no option for it."""

    remote: bool = option(False, "run the model on an NDIF server (nnsight remote execution); the SAE stays here. "
                                 "API key: the NDIF_API_KEY environment variable (there is no option for it)")
    ndif_host: str | None = option(None, "NDIF API URL, e.g. http://127.0.0.1:8289 for `python -m gradsae_nn.ndif_local "
                                         "start`", metavar="URL",
                                   default_text="nnsight's configured host: NDIF_HOST, its config file, or "
                                                "https://api.ndif.us")
    verbose: bool = option(False, "remote: every request's payload size and status, and the server's traceback on "
                                  "error", flags=("-v", "--verbose"))
    ndif_timeout: float = option(30.0, "remote: seconds a server may take to accept the connection or answer one "
                                       "request before it counts as a transient failure (a running job may take "
                                       "longer)", metavar="SECONDS")
    ndif_retries: int = option(4, "remote: retries of a transient failure (backoff 1, 2, 4, ... s) before giving up "
                                  "with exit 3")

    def __post_init__(self) -> None:
        if not self.ndif_timeout > 0:
            raise OptionError(f"{{ndif_timeout}} must be a positive number of seconds, got {literal(self.ndif_timeout)}")
        if self.ndif_retries < 0:
            raise OptionError(f"{{ndif_retries}} must be 0 or more, got {literal(self.ndif_retries)}")
        if self.ndif_host is not None and not self.remote:
            raise OptionError("{ndif_host} needs {remote} (or drop it to run locally)")
        if self.ndif_host is not None and not self.ndif_host.startswith(("http://", "https://")):
            raise OptionError(f"{{ndif_host}} {literal(self.ndif_host)} is not a URL; use e.g. https://api.ndif.us or "
                              f"http://127.0.0.1:8289")


@dataclass(frozen=True)
class DataConfig:
    """Which questions, how they are prompted and answered, and what counts as correct."""

    data: str = option(PACKAGED_DEV, f"'{PACKAGED_DEV}' = the SQuAD v1.1 dev set shipped in the package (offline), "
                                     f"'{HUB_DATASET}' = the hub's validation split, or a path to any SQuAD-v1.1 JSON "
                                     f"(.json or .json.zip)", result=True)
    limit: int | None = option(None, "use this many questions: contexts are shuffled with --seed and their questions "
                                     "kept together, so a larger limit extends a smaller one", default_text="all")
    seed: int = option(0, "seed for the example sample", result=True)
    prompt: str | None = option(None, "prompt template", result=True, choices=tuple(sorted(PROMPTS)),
                                default_text="project: the measured best for the model's style (chat-span-3shot "
                                             "for instruct models, fewshot-3shot for base models); authors: "
                                             "authors-open-turn (from --protocol)")
    max_new_tokens: int | None = option(None, "greedy tokens per answer, edited or not", result=True,
                                        default_text=preset_text("max_new_tokens"))
    answer_format: AnswerFormat | None = option(None, "line: the first line of the completion is the answer, "
                                                      "generation stops at a newline; brackets: the authors' "
                                                      "'Result = [[ label ]]', generation stops at end-of-sequence",
                                                result=True, default_text=preset_text("answer_format"))
    correct_f1: float | None = option(None, "count an answer correct when F1 >= this (the authors' code used 0.9)",
                                      result=True, default_text="project: EM = 1; authors: 0.9 (from --protocol)")

    def __post_init__(self) -> None:
        positive(self.limit, "limit")
        positive(self.max_new_tokens, "max_new_tokens")
        if self.answer_format is not None:
            check_mode(self.answer_format, AnswerFormat, "answer_format")
        if self.prompt is not None and self.prompt not in PROMPTS:
            raise OptionError(f"unknown {{prompt}} {literal(self.prompt)}; known prompts: {', '.join(PROMPTS)}")
        if self.correct_f1 is not None and not 0.0 <= self.correct_f1 <= 1.0:
            raise OptionError(f"{{correct_f1}} is an F1 threshold in [0, 1], got {literal(self.correct_f1)}; the "
                              f"authors' code used 0.9")


@dataclass(frozen=True)
class MethodConfig:
    """How latents are scored and edited: the SAE, its layer, the splice, the target, the edit."""

    layer: int | None = option(None, "residual-stream layer the SAE is spliced into",
                               default_text="the SAE's own layer, else the model's default SAE layer")
    sae: str | None = option(None, "shipped SAE name (e.g. smollm2-135m-it/L15), a SAELens SAE folder, or "
                                   "release:sae_id (SAELens registry; needs the hub)",
                             default_text="the model's shipped SAE at --layer")
    splice: SpliceMode | None = option(None, "lossless: model outputs unchanged, gradients reach the latents; "
                                             "reconstruct: the model runs on the SAE reconstruction (the authors' "
                                             "code)", result=True, default_text=preset_text("splice"))
    answer_splice: AnswerSplice | None = option(None, "find the correct set on the original model (none) or with the "
                                                      "SAE reconstruction spliced in (reconstruct, the authors' code)",
                                                result=True, default_text=preset_text("answer_splice"))
    target: Target | None = option(None, "p(Y|H) whose gradient scores latents: teacher-forced log-prob of the "
                                         "model's own greedy answer, its probability, the first answer token's "
                                         "probability, or the probability of the format token '[' at its step "
                                         "(the authors' code)", result=True, default_text=preset_text("target"))
    scored_positions: ScoredPositions | None = option(None, "positions averaged into a score: the prompt, or every "
                                                            "position of the sequence at the target's step (BOS, "
                                                            "prompt, generated prefix)", result=True,
                                                      default_text=preset_text("scored_positions"))
    pad_topk: bool | None = option(None, "TopK over all latents, zero-score ones filling it up when fewer than K "
                                         "are positive (the authors' code); else only positive scores",
                                   result=True, default_text=preset_text("pad_topk"))
    include_bos: bool = option(False, "also score the first prompt token (an attention sink with ~100x the residual "
                                      "norm)", result=True)
    edit_impl: EditImpl = option("auto", "sliced: only the edited latents' rows (ReLU/JumpReLU); full: whole "
                                         "encode/decode (any SAE, needed for TopK); auto picks sliced where exact",
                                 result=True)
    scoring: Scoring | None = option(None, "trace: SAE spliced in the trace; x-grad: save x and dT/dx only and score "
                                           "here (the remote path); equal up to float rounding", result=True,
                                     default_text="trace, x-grad with --remote")
    methods: tuple[Method, ...] | None = option(None, "ranking methods, each a block of the table: gradsae, baseline "
                                                      "(mean activation), attribution (Σ dT/dh·h, unclamped), "
                                                      "integrated-gradients, exact (measured ablation of the "
                                                      "candidates)", result=True,
                                                default_text="gradsae baseline; faithfulness: all five")
    ig_steps: int = option(8, "Gauss-Legendre nodes of integrated-gradients (m forward + backward passes)", result=True)
    exact_candidates: int = option(50, "exact ablates the union of every other method's top N latents", result=True)
    checkpoint: bool = option(False, "scoring recomputes the activations of the layers above the SAE's in the "
                                     "backward instead of keeping them: less memory, one more forward of those "
                                     "layers (local runs)")

    def __post_init__(self) -> None:
        for value, mode, name in ((self.splice, SpliceMode, "splice"), (self.target, Target, "target"),
                                  (self.answer_splice, AnswerSplice, "answer_splice"),
                                  (self.scored_positions, ScoredPositions, "scored_positions")):
            if value is not None:
                check_mode(value, mode, name)
        check_mode(self.edit_impl, EditImpl, "edit_impl")
        if self.scoring is not None:
            check_mode(self.scoring, Scoring, "scoring")
        methods = self.methods or ()
        for method in methods:
            check_mode(method, Method, "methods")
        if len(set(methods)) != len(methods) or self.methods == ():
            raise OptionError(f"{{methods}} needs each method once, got {' '.join(methods) or 'none'}")
        positive(self.ig_steps, "ig_steps")
        positive(self.exact_candidates, "exact_candidates")
        if self.splice == "reconstruct" and {"integrated-gradients", "exact"} & set(methods):
            raise OptionError("{methods} integrated-gradients and exact move the residual along the lossless splice; "
                              "use {splice} lossless with them")
        if self.scoring == "x-grad" and self.splice not in (None, "lossless"):
            raise OptionError("{scoring} x-grad is exact only for {splice} lossless; use {scoring} trace with "
                              "{splice} reconstruct")

