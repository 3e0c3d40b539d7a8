"""`python -m gradsae_nn.ndif_local start|stop|status|run`: a real NDIF on this machine (see `stack`)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..errors import UsageError
from ..paths import cache_home
from .stack import DEFAULT_API_PORT, MODEL_NAME, _inside, client_env, load_state, start, status, stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradsae_nn.ndif_local", description=__doc__.split("\n")[0].strip("`"))
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start", help="start the local NDIF (idempotent) and print its host URL")
    p_start.add_argument("--port", type=int, default=DEFAULT_API_PORT, help="API port on 127.0.0.1 (S3: port+1)")
    sub.add_parser("stop", help="stop every process of the local NDIF")
    sub.add_parser("status", help="print the local NDIF's state as JSON (exit 3 if not running)")
    p_run = sub.add_parser("run", help="run CMD with NDIF_HOST set to the local NDIF: run [--netns] -- CMD...")
    p_run.add_argument("--netns", action="store_true", help="run CMD inside the stack's network namespace")
    p_run.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            state = start(api_port=args.port)
            print(f"local NDIF ready: {state.host}  (model {MODEL_NAME} at {state.model_path})\n"
                  f"  timings: {state.timings_s}\n"
                  f"  clients: NDIF_HOST={state.host} (any NDIF_API_KEY), GRADSAE_HOME={cache_home()}, or\n"
                  f"           python -m gradsae_nn.ndif_local run -- CMD...\n"
                  f"  stop:    python -m gradsae_nn.ndif_local stop")
        elif args.command == "stop":
            stopped = stop()
            print(f"local NDIF stopped: {len(stopped)} processes ({' '.join(map(str, stopped))})" if stopped
                  else "local NDIF: nothing running")
        elif args.command == "status":
            info = status()
            print(json.dumps(info, indent=1))
            return 0 if info["running"] else 3
        else:
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            state = load_state()
            if not cmd:
                raise UsageError("run needs a command: python -m gradsae_nn.ndif_local run -- CMD...")
            if not (state and state.ready and state.holder_alive()):
                raise UsageError("the local NDIF is not running; start it: python -m gradsae_nn.ndif_local start")
            cmd = _inside(state, cmd) if args.netns else cmd
            os.execvpe(cmd[0], cmd, client_env(state))
    except UsageError as exc:
        print(f"ndif_local: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
