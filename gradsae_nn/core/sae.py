"""SAELens SAEs: loading by path, hub release or shipped name, pairing checks, and sliced access.

Any architecture SAELens loads works for scoring. The *sliced* edit (only the edited latents' encoder and
decoder rows) is exact for SAEs whose latents are independent functions of the input: `standard` (ReLU)
and `jumprelu`, with no run-time input normalisation. TopK couples the latents (which ones fire depends
on all the others), so it needs the full encode/decode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from ..errors import OptionError, UsageError, literal

if TYPE_CHECKING:
    from ..models import LoadedModel


class SparseAutoencoder(Protocol):
    """What the package uses of an SAE: any SAELens SAE is one.

    W_enc `[d_in, d_sae]`, b_enc `[d_sae]`, W_dec `[d_sae, d_in]`, b_dec `[d_in]`; `encode` maps `[..., d_in]` to
    `[..., d_sae]` latents, `decode` back; `cfg` carries `d_in`, `d_sae`, `architecture()`,
    `apply_b_dec_to_input`, `normalize_activations` and `metadata.hook_name`.
    """

    cfg: Any
    W_enc: torch.Tensor
    b_enc: torch.Tensor
    W_dec: torch.Tensor
    b_dec: torch.Tensor

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def decode(self, h: torch.Tensor) -> torch.Tensor: ...

SLICEABLE_ARCHITECTURES = ("standard", "jumprelu")
_LAYER_IN_HOOK = re.compile(r"(?:blocks|layers|layer)[._](\d+)(?:\.|$)")


def shipped_sae_root() -> Path:
    return Path(str(files("gradsae_nn").joinpath("resources/saes")))


def shipped_sae_names() -> list[str]:
    """`<model>/<folder>` of every SAE shipped inside the package: the current ones are `<model>/L<layer>`;
    an earlier generation keeps loading by its own name (e.g. `smollm2-135m-it/L15-paragraphs`)."""
    root = shipped_sae_root()
    if not root.is_dir():
        return []
    return sorted(f"{cfg.parent.parent.name}/{cfg.parent.name}" for cfg in root.glob("*/L*/cfg.json"))


def shipped_layers(model_name: str) -> dict[int, str]:
    """Layer → name of the current shipped SAEs of `model_name` (folders named exactly `L<layer>`)."""
    out = {}
    for name in shipped_sae_names():
        model, folder = name.split("/")
        if model == model_name and re.fullmatch(r"L\d+", folder):
            out[int(folder[1:])] = name
    return dict(sorted(out.items()))


# The default SAE of each embedded model: the shipped one nearest 50% depth (the paper's middle layer).
DEFAULT_SAE_LAYER = {"smollm2-135m-it": 15, "gemma3-270m": 9, "qwen2.5-coder-0.5b-it": 12}


def resolve_sae_spec(model_name: str, layer: int | None, spec: str | None) -> str:
    """The SAE to load for model / layer / sae as given (either of the last two may be None).

    No `sae`: the shipped SAE of `model_name` at `layer`, or at its default layer if `layer` is None.
    """
    if spec is not None:
        return spec
    if layer is None:
        layer = DEFAULT_SAE_LAYER.get(model_name)
        if layer is None:
            raise OptionError(f"no default SAE for model {literal(model_name)}; pass {{sae}} (a SAELens folder or "
                              f"release:sae_id) and {{layer}}")
    name = f"{model_name}/L{layer}"
    if name not in shipped_sae_names():
        here = [n for n in shipped_sae_names() if n.startswith(f"{model_name}/")]
        raise OptionError(f"no shipped SAE for {model_name} at layer {layer} (shipped: {', '.join(here) or 'none'}); "
                          f"pass {{sae}} or one of those layers")
    return name


def sae_layer_for(spec: str, layer: int | None, sae: SparseAutoencoder) -> int:
    """`layer` if given, else the layer the SAE was trained on (from its hook name)."""
    if layer is not None:
        return layer
    found = hook_layer(sae)
    if found is None:
        raise OptionError(f"cannot tell which layer SAE {literal(spec)} belongs to (hook "
                          f"{literal(sae.cfg.metadata.hook_name)}); pass {{layer}}")
    return found


def sae_architecture(sae: SparseAutoencoder) -> str:
    return sae.cfg.architecture()


def hook_layer(sae: SparseAutoencoder) -> int | None:
    """The layer index named by the SAE's hook (`blocks.9.hook_resid_post`, `model.layers.9`), if any."""
    hook_name = getattr(sae.cfg.metadata, "hook_name", None) or ""
    match = _LAYER_IN_HOOK.search(hook_name)
    return int(match.group(1)) if match else None


def check_pairing(sae: SparseAutoencoder, model: "LoadedModel", layer: int, label: str = "SAE") -> None:
    """Refuse an SAE whose width or hook layer does not match the model and requested layer."""
    if sae.cfg.d_in != model.d_model:
        raise UsageError(f"{label} has d_in {sae.cfg.d_in} but {model.name} has d_model {model.d_model}; pick an "
                         f"SAE trained on this model")
    model.layer(layer)  # range check
    sae_layer = hook_layer(sae)
    if sae_layer is not None and sae_layer != layer:
        raise OptionError(f"{label} was trained on layer {sae_layer} ({sae.cfg.metadata.hook_name}) but {{layer}} is "
                          f"{layer}; pass {{layer}} {sae_layer} or an SAE for layer {layer}")


def is_sliceable(sae: SparseAutoencoder) -> bool:
    return (sae_architecture(sae) in SLICEABLE_ARCHITECTURES and sae.cfg.normalize_activations == "none"
            and sae.cfg.reshape_activations == "none")


def freeze(sae: SparseAutoencoder) -> SparseAutoencoder:
    sae.requires_grad_(False)
    sae.eval()
    return sae


def load_sae(spec: str, model: "LoadedModel", layer: int | None, device: torch.device | str | None = None,
             dtype: str = "float32") -> SparseAutoencoder:
    """Load an SAE and check it fits `model` at `layer`.

    spec: a shipped name (`smollm2-135m-it/L15`), a directory with `cfg.json` + `sae_weights.safetensors`
        (`SAE.load_from_disk`), or `release:sae_id` for SAELens' pretrained registry (needs the hub).
    layer: the layer it is spliced into; None = the layer named by its hook (`hook_layer`).
    dtype: compute dtype; shipped SAEs are stored in fp16 and upcast here.
    """
    from sae_lens import SAE

    device = str(device or model.device)
    shipped = shipped_sae_root() / spec
    path = Path(spec).expanduser()
    if spec in shipped_sae_names():
        sae = SAE.load_from_disk(shipped, device=device, dtype=dtype)
    elif path.is_dir():
        if not (path / "cfg.json").is_file():
            raise UsageError(f"{path} has no cfg.json; pass a SAELens SAE folder (cfg.json + sae_weights.safetensors)")
        sae = SAE.load_from_disk(path, device=device, dtype=dtype)
    elif ":" in spec:
        release, sae_id = spec.split(":", 1)
        try:
            sae = SAE.from_pretrained(release, sae_id, device=device, dtype=dtype)
        except Exception as exc:  # noqa: BLE001 - SAELens raises many types; all mean "cannot fetch this"
            raise UsageError(f"could not load SAE {spec!r} from SAELens' registry ({str(exc).splitlines()[0]}); "
                             f"offline, use one of: {', '.join(shipped_sae_names()) or 'a local SAE folder'}") from None
    else:
        raise UsageError(f"unknown SAE {spec!r}: use a shipped name ({', '.join(shipped_sae_names()) or 'none yet'}), "
                         f"a local SAELens folder, or release:sae_id")
    check_pairing(sae, model, sae_layer_for(spec, layer, sae), label=f"SAE {spec}")
    return freeze(sae)


@dataclass(frozen=True)
class SAESlice:
    """The encoder/decoder rows of a few latents, enough to compute their activations and contributions.

    latents: `[m]` latent ids, in the order of every other field.
    W_enc: `[d_in, m]`; b_enc, threshold: `[m]` (threshold 0 for ReLU); W_dec: `[m, d_in]`;
    b_dec_in: `[d_in]`, the decoder bias subtracted from the input before encoding (zeros if the SAE
    does not do that).
    """

    latents: torch.Tensor
    W_enc: torch.Tensor
    b_enc: torch.Tensor
    threshold: torch.Tensor
    W_dec: torch.Tensor
    b_dec_in: torch.Tensor

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Activations of the sliced latents, `[..., d_in]` → `[..., m]`; equal to `sae.encode(x)[..., latents]`."""
        device = x.device  # a remote server's x may live on another device than these rows
        pre = (x.to(self.W_enc.dtype) - self.b_dec_in.to(device)) @ self.W_enc.to(device) + self.b_enc.to(device)
        return torch.relu(pre) * (pre > self.threshold.to(device)).to(pre.dtype)


def slice_sae(sae: SparseAutoencoder, latents: torch.Tensor | list[int] | range) -> SAESlice:
    """Rows of `latents` only; refuses SAEs whose latents cannot be computed independently. A `range` of step 1
    gives views of the SAE's weights (no copy: `core.chunked` walks a 131k-latent SAE this way)."""
    if not is_sliceable(sae):
        raise OptionError(f"the sliced edit needs a ReLU or JumpReLU SAE without run-time normalisation; this SAE is "
                          f"{literal(sae_architecture(sae))} (normalize_activations="
                          f"{literal(sae.cfg.normalize_activations)}): use {{edit_impl}} full")
    ids = torch.as_tensor(latents, dtype=torch.long, device=sae.W_enc.device)
    contiguous = isinstance(latents, range) and latents.step == 1
    idx = slice(latents.start, latents.stop) if contiguous else ids  # a slice indexes by views, not copies
    threshold = sae.threshold[idx] if sae_architecture(sae) == "jumprelu" else torch.zeros_like(sae.b_enc[idx])
    b_dec_in = sae.b_dec * float(sae.cfg.apply_b_dec_to_input)
    return SAESlice(latents=ids, W_enc=sae.W_enc[:, idx], b_enc=sae.b_enc[idx], threshold=threshold,
                    W_dec=sae.W_dec[idx], b_dec_in=b_dec_in)
