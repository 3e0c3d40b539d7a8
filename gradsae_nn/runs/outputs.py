"""An experiment's output folder: named from its config, guarded against mixing configurations, with a manifest."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..config import ExperimentConfig, changed_result_options, result_options
from ..results.manifest import Manifest, sae_identity
from ..results.records import check_run_config
from .pipeline import Prepared

_UNSAFE = re.compile(r"[^A-Za-z0-9_.%-]+")


def _text(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def run_dir(experiment: str, model: str, layer: int, changed: dict[str, Any], root: Path | str = "results") -> Path:
    """`results/<experiment>/<model>-L<layer>[-<option>_<value>...]`: non-default options that change results
    are in the name, so runs with different options never share (or overwrite) a folder."""
    safe = _UNSAFE.sub("_", model.strip("/"))
    suffix = "".join(f"-{name}_{_UNSAFE.sub('_', _text(value))}" for name, value in changed.items())
    return Path(root) / experiment / f"{safe}-L{layer}{suffix}"


def output_dir(config: ExperimentConfig, experiment: str, layer: int) -> Path:
    """`--out`, else the default folder named from the config's non-default result options (`sae` first)."""
    if config.out:
        return Path(config.out)
    changed = changed_result_options(config)
    if config.method.sae is not None:
        changed = {"sae": config.method.sae, **changed}
    return run_dir(experiment, config.model.model, layer, changed)


def open_run(config: ExperimentConfig, experiment: str, prepared: Prepared) -> tuple[Path, Manifest]:
    """The output folder (refusing one that holds another configuration's results) and its manifest."""
    out_dir = output_dir(config, experiment, prepared.layer)
    sae = sae_identity(prepared.sae_spec)
    recorded = {"experiment": experiment, "model": config.model.model, "layer": prepared.layer, "sae": sae["spec"],
                "sae_weights_sha256": sae["weights_sha256"], "answers": asdict(prepared.answer_key),
                **{name: list(v) if isinstance(v, tuple) else v for name, v in result_options(config).items()}}
    check_run_config(out_dir, recorded)
    manifest = Manifest(out_dir, experiment, config.flat(), config.model.model, prepared.sae_spec,
                        extra={"layer": prepared.layer, "answer_cache": str(prepared.answer_dir)})
    return out_dir, manifest
