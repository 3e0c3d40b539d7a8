"""Each script's configuration: the parts it uses, plus its own options and checks."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from ..core.selection import parse_ks
from ..errors import OptionError
from ..modes import (ALL_METHODS, METHODS, VARIANTS, PartnerPool, Piece, Population, Positions, Protocol, ValueSource, Variant,
                     check_mode)
from .options import DEFAULT_KS, build, leaves, option, part, positive
from .parts import DataConfig, MethodConfig, ModelConfig, RemoteConfig
from .presets import DEFAULT_PIECES, piece_flags, piece_values, preset_text, resolve


@dataclass(frozen=True)
class RunConfig:
    """What every script shares: model, remote server, questions, batch size and output folder."""

    protocol: Protocol = option("project", "the preset every option marked '(from --protocol)' defaults from: the "
                                           "project's principled method, or the authors' code as published "
                                           "(docs/method.md, 'Protocols'); options given explicitly win",
                                result=True)
    model: ModelConfig = part(ModelConfig)
    remote: RemoteConfig = part(RemoteConfig)
    data: DataConfig = part(DataConfig)
    batch_size: int = option(8, "prompts per batch (left-padded; results do not depend on it)")
    out: str | None = option(None, "output folder", default_text="under results/, named after the run")
    answers: str | None = option(None, "answer cache folder: predictions of the unedited model, shared by every run "
                                       "with the same model, prompt, data, dtype and max new tokens",
                                 default_text="results/answer/<model>-<prompt>[-<option>_<value>...]")

    def __post_init__(self) -> None:
        resolve(self, self.protocol)
        positive(self.batch_size, "batch_size")

    def flat(self) -> dict[str, Any]:
        """Every option by name (nested parts flattened), as JSON-able values."""
        return {name: list(value) if isinstance(value, tuple) else value for name, value in leaves(self)}


@dataclass(frozen=True)
class AnswerRunConfig(RunConfig):
    """`experiments/answer.py`: answer questions and cache the predictions."""


@dataclass(frozen=True)
class ExperimentConfig(RunConfig):
    """What every experiment on the correct set shares."""

    DEFAULT_METHODS: ClassVar[tuple[str, ...]] = METHODS   # `--methods` left out: the paper's two

    method: MethodConfig = part(MethodConfig)
    k: tuple[str, ...] = option(DEFAULT_KS, "K values: whole numbers or percentages of the latents active at the last "
                                            "prompt token", result=True)
    n_correct: int = option(50, "stop looking once this many correctly answered examples are found (0 = every "
                                "correct one within --limit)")
    gen_batch_size: int = option(24, "generation rows per generate call; one example's settings share a call")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "k", tuple(parse_ks(self.k)))  # normalised once, at construction
        if self.n_correct < 0:
            raise OptionError(f"{{n_correct}} must be ≥ 0 (0 = every correct example within {{limit}}), got "
                              f"{self.n_correct}")
        positive(self.gen_batch_size, "gen_batch_size")
        if self.method.methods is None:
            object.__setattr__(self, "method", dataclasses.replace(self.method, methods=self.DEFAULT_METHODS))
        if self.remote.remote and self.method.splice == "reconstruct":
            raise OptionError("{splice} reconstruct runs the model on the SAE's reconstruction, which needs the SAE "
                              "in the trace; a remote run never sends it: drop {remote} to run it here")
        if self.method.scoring is None:  # the default depends on where the model runs: no SAE travels remotely
            object.__setattr__(self, "method", dataclasses.replace(
                self.method, scoring="x-grad" if self.remote.remote else "trace"))
        if self.remote.remote and self.method.checkpoint:
            raise OptionError("{checkpoint} changes the model where it runs and a remote server runs its own; drop "
                              "{checkpoint} with {remote}")
        if self.remote.remote and self.method.scoring == "trace":
            raise OptionError("remote scoring sends no SAE: use {scoring} x-grad (x and dT/dx come back, scores are "
                              "computed here; the default with {remote})")

    @property
    def ks(self) -> list[str]:
        return list(self.k)


@dataclass(frozen=True)
class PerturbConfig(ExperimentConfig):
    """`experiments/perturb.py`: zero TopK/BottomK latents and regenerate (paper Table 1 top)."""


@dataclass(frozen=True)
class SteeringConfig:
    """Local steering: whose latents are injected, with which values, where."""

    partner_seed: int = option(42, "seed for choosing partners", result=True)
    partners: PartnerPool | None = option(None, "partner pool: any other question on the context whose answer "
                                                 "differs both ways (scored on its gold answer); other correctly "
                                                 "answered ones; or any answered one (runs/partners.py)", result=True,
                                          default_text=preset_text("partners"))
    value_scale: float = option(1.0, "factor on the injected values", result=True)
    value_source: ValueSource | None = option(None, "values injected for the partner's latents", result=True,
                                              default_text=preset_text("value_source"))
    positions: Positions | None = option(None, "edit every token; only the last prompt token, in the prompt pass; "
                                               "the newest token of every step, earlier ones unedited (current: "
                                               "the authors' no-cache loop, exactly); or every generated token, no "
                                               "prompt token", result=True,
                                         default_text=preset_text("positions"))

    def __post_init__(self) -> None:
        if self.partners is not None:
            check_mode(self.partners, PartnerPool, "partners")
        if self.value_source is not None:
            check_mode(self.value_source, ValueSource, "value_source")
        if self.positions is not None:
            check_mode(self.positions, Positions, "positions")
        if not (self.value_scale > 0 and math.isfinite(self.value_scale)):
            raise OptionError(f"{{value_scale}} must be a positive number, got {self.value_scale}")


@dataclass(frozen=True)
class SteerConfig(ExperimentConfig):
    """`experiments/steer.py`: zero own TopK, inject a same-context partner's TopK (paper Table 1 bottom)."""

    steering: SteeringConfig = part(SteeringConfig)


@dataclass(frozen=True)
class SteerSweepConfig(SteerConfig):
    """`experiments/steer_sweep.py`: steering at several value scales, with controls (dose-response)."""

    k: tuple[str, ...] = option(("10", "50%"), "K values: whole numbers or percentages of the latents active at the "
                                                "last prompt token", result=True)
    value_scales: tuple[float, ...] = option((0.5, 1.0, 2.0, 4.0, 8.0, 16.0), "factors on the injected values",
                                             result=True)
    variants: tuple[Variant, ...] = option(VARIANTS, "edits: swap (zero own TopK, inject the partner's), "
                                                     "inject-only, random (K random latents active in the partner)",
                                           result=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.steering.value_scale != 1:
            raise OptionError("the sweep sets the scale itself: drop {value_scale} and pass {value_scales}")
        for value in self.variants:
            check_mode(value, Variant, "variants")
        if len(set(self.variants)) != len(self.variants) or not self.variants:
            raise OptionError(f"{{variants}} needs each value once, got {' '.join(self.variants) or 'none'}")
        if not self.value_scales or any(not (s > 0 and math.isfinite(s)) for s in self.value_scales) \
                or len(set(self.value_scales)) != len(self.value_scales):
            raise OptionError(f"{{value_scales}} must be distinct positive numbers, got "
                              f"{' '.join(map(str, self.value_scales)) or 'none'}")
        object.__setattr__(self, "value_scales", tuple(sorted(float(s) for s in self.value_scales)))


@dataclass(frozen=True)
class FaithfulnessConfig(ExperimentConfig):
    """`experiments/faithfulness.py`: each method's scores against exact ablation, per example and by layer."""

    DEFAULT_METHODS: ClassVar[tuple[str, ...]] = ALL_METHODS
    layers: tuple[int, ...] | None = option(None, "run at each of these layers (with its shipped SAE) and collate a "
                                                  "by-layer table", default_text="the SAE's layer only")

    def __post_init__(self) -> None:
        super().__post_init__()
        if "exact" not in self.method.methods or len(self.method.methods) < 2:
            raise OptionError("faithfulness compares methods with exact ablation: give {methods} exact and at least "
                              "one other (or leave {methods} out for all five)")
        if self.layers and (self.method.sae is not None or self.out is not None):
            raise OptionError("with {layers} each layer uses its shipped SAE and its own folder; drop {sae}/{out}")


@dataclass(frozen=True)
class StatsConfig(ExperimentConfig):
    """`experiments/stats.py`: selection statistics at one K (paper Table 3)."""

    k: tuple[str, ...] = option(("50%",), "one K: a whole number or a percentage of the latents active at the last "
                                          "prompt token", result=True)
    population: Population = option("correct", "examples to score: the correct set, or every answered question "
                                               "(scored on the model's own answer)", result=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_mode(self.population, Population, "population")
        if len(self.k) != 1:
            raise OptionError(f"stats uses one K, got {{k}} {' '.join(self.k)}; pass e.g. {{k}} 50%")


@dataclass(frozen=True)
class SweepConfig(ExperimentConfig):
    """`experiments/layer_sweep.py`: the perturbation at one K for every shipped SAE of a model (paper Table 4)."""

    k: tuple[str, ...] = option(("50%",), "K values: whole numbers or percentages of the latents active at the last "
                                          "prompt token", result=True)
    layers: tuple[int, ...] | None = option(None, "layers to sweep", default_text="every layer with a shipped SAE for "
                                                                                  "--model")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method.sae is not None or self.out is not None:
            raise OptionError("the layer sweep picks each layer's shipped SAE and folder itself; drop {sae}/{out} (or "
                              "run experiments/perturb.py per layer)")

    def perturbation(self, layer: int) -> PerturbConfig:
        """The perturbation run of one layer: exactly `experiments/perturb.py --layer L --k K...`."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(PerturbConfig)}
        return PerturbConfig(**{**values, "method": dataclasses.replace(self.method, layer=layer)})


@dataclass(frozen=True)
class ProtocolAblationConfig(ExperimentConfig):
    """`experiments/protocol_ablation.py`: the perturbation under the project preset, then with one piece of the
    authors' protocol added at a time, compared on the examples each shares with the project's run."""

    pieces: tuple[Piece, ...] = option(DEFAULT_PIECES, "the authors' pieces to add one at a time (config/presets.py "
                                                       "PIECES; docs/method.md, 'Protocols')")

    def __post_init__(self) -> None:
        super().__post_init__()
        for piece in self.pieces:
            check_mode(piece, Piece, "pieces")
        if not self.pieces or len(set(self.pieces)) != len(self.pieces):
            raise OptionError(f"{{pieces}} must name distinct pieces, got {' '.join(self.pieces) or 'none'}")
        if self.protocol != "project" or self.out is not None:
            raise OptionError("the ablation adds the authors' pieces to the project preset and names each run's folder "
                              "itself; drop {protocol}/{out}")
        base = dict(leaves(self))
        for piece in self.pieces:
            if all(base[name] == value for name, value in piece_values(piece).items()):
                raise OptionError(f"piece {piece} ({piece_flags(piece)}) is already set for the reference run; drop "
                                  f"it from {{pieces}} or the option from the command line")

    def perturbation(self, piece: str | None = None) -> PerturbConfig:
        """The reference run (`piece` None), or it with `piece` added: exactly `experiments/perturb.py` with the
        same options plus `piece_flags(piece)`, so either resumes the other's folder."""
        values = {name: value for name, value in leaves(self) if name != "pieces"}
        return build(PerturbConfig, {**values, **(piece_values(piece) if piece else {})})
