"""An experiment's output folder: named from its config, guarded against mixing configurations, with a manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import ExperimentConfig, changed_result_options, result_options
from ..results.manifest import Manifest, sae_identity
from ..results.records import check_run_config
from .naming import RESULTS_ROOT, folder, safe
from .pipeline import Prepared


def run_dir(experiment: str, model: str, layer: int, changed: dict[str, Any], root: Path | str = RESULTS_ROOT) -> Path:
    """`results/<experiment>/<model>-L<layer>[-<option>_<value>...]` (`naming.folder`)."""
    return folder(experiment, f"{safe(model)}-L{layer}", changed, root)


def output_dir(config: ExperimentConfig, experiment: str, layer: int) -> Path:
    """`--out`, else the default folder named from the config's non-default result options (`sae` first)."""
    if config.out:
        return Path(config.out)
    changed = changed_result_options(config)
    if config.method.sae is not None:
        changed = {"sae": config.method.sae, **changed}
    return run_dir(experiment, config.model.model, layer, changed)


def open_run(config: ExperimentConfig, experiment: str, prepared: Prepared) -> tuple[Path, Manifest]:
    """The output folder (refusing one that holds another configuration's results) and its manifest; nothing is
    written until the caller's checks have passed and it calls `manifest.start()`."""
    out_dir = output_dir(config, experiment, prepared.layer)
    sae = sae_identity(prepared.sae_spec)
    recorded = {"experiment": experiment, "model": config.model.model, "layer": prepared.layer, "sae": sae["spec"],
                "sae_weights_sha256": sae["weights_sha256"], "answers": prepared.answer_key.record(),
                **{name: list(v) if isinstance(v, tuple) else v for name, v in result_options(config).items()}}
    check_run_config(out_dir, recorded, write=False)
    manifest = Manifest(out_dir, experiment, config.flat(), config.model.model, prepared.sae_spec,
                        extra={"layer": prepared.layer, "answer_cache": str(prepared.answer_dir)}, run_config=recorded)
    return out_dir, manifest
