"""An NDIF model actor that serves a model from CPU memory, for the local NDIF (`ndif_local`).

Server side only: it imports `ndif` and `ray`, which exist only in the NDIF server environment that
`ndif_local` builds (Python 3.12). `ndif_local` copies this file into that environment as the
top-level module `gradsae_ndif_cpu_actor` and selects it with `NDIF_MODEL_IMPORT_PATH`, so the server
never sees the rest of `gradsae_nn` (a real NDIF does not have it either).

NDIF 0.1.2's actor (`BaseModelDeployment`) assumes CUDA throughout: it pins a default GPU, loads onto
`device=<gpu id>`, calls `torch.cuda.synchronize()`, refuses to start unless every weight sits on an
assigned card, and empties the CUDA cache after every request. On a CPU-only host each of those raises
("no NVIDIA driver"), so this subclass loads on CPU and does the same bookkeeping without CUDA. The
request path (`run`/`execute`: deserialize the block, run it on the model, save, respond) is NDIF's,
unchanged — that is what we want to test against.
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Dict

import ray
from ndif.services.ray.deployments.modeling.base import BaseModelDeployment
from nnsight.modeling.huggingface import HuggingFaceModel

logger = logging.getLogger("ndif.modeling")


class CPUModelDeployment(BaseModelDeployment):
    """`BaseModelDeployment` with the weights on CPU and no CUDA calls."""

    # Parking (HOT->WARM) moves weights GPU->CPU; on CPU there is nothing to park, so the controller
    # must evict instead of caching.
    CACHEABLE = False

    def load_from_disk(self) -> HuggingFaceModel:
        """Load the checkpoint named by the model key onto CPU, inference-only (no param grads).

        The controller still assigns a (fake, see RAY_OVERRIDE_RESOURCES) GPU in
        `gpu_mem_bytes_by_id`; it is bookkeeping only and ignored here.
        """
        model = HuggingFaceModel.from_model_key(
            self.model_key, dispatch=True, dtype=self.dtype_name, device="cpu", **self.kwargs)
        model._module.requires_grad_(False)
        # Ray sets OMP_NUM_THREADS=1 in a num_cpus=1 actor, so torch would compute on one thread while a local
        # run uses every core: measured remote/local 1.8x on 2 cores. The client only waits during a request.
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        logger.info(f"Loaded {self.model_key} on CPU ({torch.get_num_threads()} threads)")
        return model

    async def to_cache(self) -> None:
        """Never called (CACHEABLE is False); cancel any running request so eviction stays safe."""
        await self.cancel()
        self.cached = True

    def from_cache(self, gpu_mem_bytes_by_id: Dict[int, int]) -> None:
        self.gpu_mem_bytes_by_id = gpu_mem_bytes_by_id
        self.cached = False

    def cleanup(self) -> None:
        """The base class's per-request reset, minus `torch.cuda.synchronize()/empty_cache()`."""
        self.kill_switch.clear()
        self.kill_reason = None
        self.execution_ident = None
        self.model.interleaver.cancel()
        gc.collect()


@ray.remote(num_cpus=1, max_restarts=-1)
class CPUModelActor(CPUModelDeployment):
    """The Ray actor class `NDIF_MODEL_IMPORT_PATH` names."""
