"""A real NDIF on this machine, for tests and demos: `python -m gradsae_nn.ndif_local start|stop|status|run`.

`start` builds (once) a Python 3.12 environment with NDIF 0.1.2 under `$GRADSAE_HOME/ndif/venv`, then
starts NDIF's own stack — Redis, Ray (head + NDIF controller) and the NDIF API, via `ndif start redis ray
api` — plus moto's S3 server in place of RustFS, all inside a private network namespace (see
`netns`), deploys the embedded SmolLM2-135M-Instruct with `ndif deploy`, and prints the host URL.
Clients on the host use that URL directly (`NDIF_HOST=...`, or `run -- CMD`, which sets it).

What NDIF 0.1.2 needs to run on a CPU-only box (each is a fact measured here, not a guess):
1. a CPU model actor (`cpu_actor`): NDIF's actor calls CUDA unconditionally;
2. `RAY_OVERRIDE_RESOURCES` with a fake GPU: the controller ignores nodes without a `GPU` resource;
3. deploy before the first request with an explicit `size_bytes` and model key: sizing a checkpoint
   asks the Hub (offline here), and ndif 0.1.2 / nnsight 0.8.1 disagree on `describe_checkpoint`;
4. clients must skip nnsight's Hub lookup of a local path when minting the model key
   (`bypass_hub_lookup`); transformers is pinned to 5.22.2 (5.23.0 breaks the server's model build).
Stopping never uses `ndif stop` (it runs `ray stop --force`, killing every Ray process on the host):
it signals exactly the processes in our namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..paths import cache_home
from ..remote import bypass_hub_lookup
from . import netns
from .env import ensure_server_env, root
from .env import lock as _lock
from .state import State, load_state, state_file

MODEL_NAME = "smollm2-135m-it"
ACTOR_MODULE = "gradsae_ndif_cpu_actor"
# Host ports (the same numbers are used inside the namespace, so presigned URLs stay valid). Both must
# stay outside 10002-19999, which Ray reserves for its workers inside.
DEFAULT_API_PORT = 8289
_INNER = {"NDIF_REDIS_URL": "redis://127.0.0.1:6379", "NDIF_RAY_HEAD_PORT": "6385",
          "NDIF_RAY_ADDRESS": "ray://127.0.0.1:10001"}
_FAKE_GPU = '{"GPU": 1, "cuda_memory_bytes": 8000000000}'


# ---------------------------------------------------------------- the stack


def _ray_temp_dir() -> Path:
    """Ray's session dir holds Unix sockets (path limit 107 bytes, ~70 used by Ray): keep it short."""
    preferred = root() / "ray"
    return preferred if len(str(preferred)) <= 36 else Path(tempfile.gettempdir()) / f"gradsae-ndif-ray-{os.getuid()}"


def _stack_env(state: State, venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "RAY_ADDRESS")}
    env.update(_INNER)
    env.update({
        netns.STACK_MARKER: state.stack_id,
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "VIRTUAL_ENV": str(venv),
        "PYTHONPATH": str(root() / "actor"),  # the CPU actor only, never the rest of gradsae_nn
        "NDIF_HOME": str(root() / "home"),
        "NDIF_OBJECT_STORE_URL": f"http://127.0.0.1:{state.s3_port}",
        "NDIF_OBJECT_STORE_ACCESS_KEY": "testing",
        "NDIF_OBJECT_STORE_SECRET_KEY": "testing",
        "NDIF_API_PORT": str(state.api_port),
        "NDIF_API_URL": state.host,
        "NDIF_RAY_TEMP_DIR": str(_ray_temp_dir()),
        "NDIF_DEFAULT_DTYPE": "float32",
        "NDIF_INFLUX_ENABLED": "false",
        "NDIF_MODEL_IMPORT_PATH": f"{ACTOR_MODULE}.CPUModelActor",
        "RAY_OVERRIDE_RESOURCES": _FAKE_GPU,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    })
    return env


def _inside(state: State, cmd: list[str]) -> list[str]:
    return ["nsenter", "-t", str(state.holder_pid), "-n", "--", *cmd]


def _http_ok(url: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _wait(what: str, check: Any, timeout_s: float, log: Path, interval_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise UsageError(f"local NDIF: {what} not ready after {timeout_s:.0f} s; see {log}")
        time.sleep(interval_s)


def _preflight(api_port: int, s3_port: int) -> None:
    if os.geteuid() != 0:
        raise UsageError("local NDIF needs root (a private network namespace: unshare/nsenter); run it as root")
    for tool, fix in (("nsenter", "apt-get install -y util-linux"), ("redis-server", "apt-get install -y redis-server")):
        if shutil.which(tool) is None:
            raise UsageError(f"local NDIF needs `{tool}` on PATH; install it: {fix}")
    for port in (api_port, s3_port):
        if not 1024 <= port <= 65535 or 10002 <= port <= 19999:
            raise UsageError(f"port {port} is not usable: pick 1024-65535 outside 10002-19999 (Ray's worker ports)")


def _check_ports(ports: tuple[int, ...]) -> None:
    for port in ports:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the holder: TIME_WAIT is fine
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                raise UsageError(f"port {port} on 127.0.0.1 is busy; free it or pass --port N (uses N and N+1)") from None


def _model_dir() -> Path:
    """= `models.embedded.converted_dir(...)`, without importing torch (keeps a no-op `start` at 0.2 s)."""
    return cache_home() / "models" / MODEL_NAME


def _model() -> tuple[str, str, int]:
    """The embedded model's directory, the model key a client mints for it, and its size in bytes."""
    from nnsight.modeling.transformers import TransformersModel

    from ..models.embedded import EMBEDDED_MODELS, ensure_converted

    path = str(ensure_converted(EMBEDDED_MODELS[MODEL_NAME]))
    bypass_hub_lookup(path)
    key = TransformersModel(path, task="text-generation").to_model_key()
    size = sum(f.stat().st_size for f in Path(path).glob("*.safetensors"))
    return path, key, size


def start(api_port: int = DEFAULT_API_PORT, s3_port: int | None = None, timeout_s: float = 600) -> State:
    """Start (or find running) the local NDIF with the embedded model deployed; idempotent."""
    s3_port = s3_port or api_port + 1
    _preflight(api_port, s3_port)
    with _lock("stack"):
        state = load_state()
        if (state and state.ready and state.holder_alive() and _http_ok(f"{state.host}/connected")
                and state.model_path == str(_model_dir())):
            return state
        if state:  # half-started, crashed, unhealthy or serving another GRADSAE_HOME: clear it first
            _teardown(state)
        _check_ports((api_port, s3_port))
        venv = ensure_server_env()
        home, actor_dir, logs = root() / "home", root() / "actor", root() / "logs"
        for d in (home, actor_dir, logs):
            d.mkdir(parents=True, exist_ok=True)
        for stale in (home / "run").glob("*.pid"):  # `ndif start` skips services whose PID file looks alive
            stale.unlink()
        shutil.rmtree(_ray_temp_dir(), ignore_errors=True)
        shutil.copyfile(Path(__file__).with_name("cpu_actor.py"), actor_dir / f"{ACTOR_MODULE}.py")
        model_path, model_key, size = _model()

        t0 = time.monotonic()
        state = _spawn_holder(api_port, s3_port, logs)
        state.model_path, state.model_key = model_path, model_key
        state.save()
        env = _stack_env(state, venv)
        log = logs / "stack.log"
        try:
            with open(log, "ab") as out:
                subprocess.Popen(_inside(state, ["moto_server", "-H", "127.0.0.1", "-p", str(s3_port)]), env=env,
                                 cwd=home, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
                started = subprocess.run(_inside(state, ["ndif", "start", "redis", "ray", "api"]), env=env, cwd=home,
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if started.returncode != 0:
                raise UsageError(f"local NDIF: `ndif start redis ray api` failed; see {log} and {home / 'logs'}")
            _wait("NDIF API + Ray", lambda: _http_ok(f"{state.host}/connected"), 180, home / "logs")
            _wait("object store", lambda: _http_ok(f"http://127.0.0.1:{s3_port}/"), 30, log)
            # /connected only means the API reached Ray; the controller actor comes up after it, and a
            # deploy before then fails ("Failed to look up actor with name 'Controller'"). /status
            # answers 200 only once the controller does (a failed poll makes the dispatcher recheck
            # its Ray connection, hence the slow poll).
            _wait("NDIF controller", lambda: _http_ok(f"{state.host}/status", timeout=70), 180, home / "logs", 2.0)
            state.timings_s["stack_up"] = round(time.monotonic() - t0, 1)

            t1 = time.monotonic()
            spec = home / "models.yaml"
            spec.write_text(json.dumps({"models": [{
                "checkpoint": model_path, "model_key": model_key, "task": "text-generation",
                "dtype": "float32", "size_bytes": size, "pinned": True}]}))  # JSON is YAML
            with open(log, "ab") as out:
                deployed = subprocess.run(_inside(state, ["ndif", "deploy", "-f", str(spec)]), env=env, cwd=home,
                                          stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          timeout=timeout_s)
            if deployed.returncode != 0:
                raise UsageError(f"local NDIF: deploying {MODEL_NAME} failed; see {log} and {_ray_temp_dir()}")
            state.timings_s["deploy"] = round(time.monotonic() - t1, 1)
        except BaseException:
            _teardown(state)
            raise
        state.ready = True
        state.save()
        return state


def _spawn_holder(api_port: int, s3_port: int, logs: Path) -> State:
    stack_id = uuid.uuid4().hex[:12]
    ready = logs / "holder.ready"
    ready.unlink(missing_ok=True)
    env = {**os.environ, netns.STACK_MARKER: stack_id,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH")]))}
    with open(logs / "holder.log", "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gradsae_nn.ndif_local.netns", "--port", str(api_port),
                                 "--port", str(s3_port), "--ready-file", str(ready)], env=env, cwd=root(),
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + 15
    while not ready.is_file() or not ready.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise UsageError(f"local NDIF: the namespace holder did not start; see {logs / 'holder.log'}")
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    if "error" in info:
        proc.wait()
        raise UsageError(f"local NDIF cannot start: {info['error']}; free the port or pass --port")
    return State(stack_id=stack_id, holder_pid=info["pid"], holder_start=info["start"], netns=info["netns"],
                 api_port=api_port, s3_port=s3_port)


def _teardown(state: State) -> list[int]:
    """Stop every process of the stack (by namespace) and forget it; returns the PIDs signalled."""
    alive = state.holder_alive()
    stopped = netns.terminate(state.netns, state.holder_pid if alive else None, None if alive else state.stack_id)
    left = netns.members(state.netns, None if alive else state.stack_id)
    if left:
        raise UsageError(f"local NDIF: processes {left} survived SIGKILL in {state.netns}; check them by hand")
    state_file().unlink(missing_ok=True)
    return stopped


def stop() -> list[int]:
    """Stop the local NDIF (no-op if none is recorded); returns the PIDs that were stopped."""
    with _lock("stack"):
        state = load_state()
        return _teardown(state) if state else []


def status() -> dict[str, Any]:
    """Whether the stack runs, its host, processes, memory (PSS) and start timings."""
    state = load_state()
    if state is None:
        return {"running": False}
    alive = state.holder_alive()
    pids = netns.members(state.netns, None if alive else state.stack_id)
    return {"running": alive and state.ready, "host": state.host, "holder_pid": state.holder_pid,
            "processes": len(pids) + alive, "pss_mib": round(netns.pss_mib(pids + [state.holder_pid] * alive)),
            "api_connected": alive and _http_ok(f"{state.host}/connected"), "model_key": state.model_key,
            "timings_s": state.timings_s}


def client_env(state: State) -> dict[str, str]:
    """Environment for a client of the local NDIF: nnsight reads NDIF_HOST; no API key is checked."""
    return {**os.environ, "NDIF_HOST": state.host, "GRADSAE_HOME": str(cache_home())}
