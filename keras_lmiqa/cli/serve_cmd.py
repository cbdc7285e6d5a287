"""`lmiqa serve`: the development server (TF Serving's gRPC + REST APIs) over an export.

    lmiqa serve --export-dir EXPORTS/lmiqa [--port 8500] [--rest-port 8501] [--host 127.0.0.1]
    lmiqa serve --export-dir EXPORTS/lmiqa --rest-port 8501 --ui   # + a photo page at http://127.0.0.1:8501/

For development and tests only; production runs TF Serving (deploy/README.md). Prints
`serving lmiqa versions [..] on HOST:PORT` once ready; SIGINT/SIGTERM stop it cleanly.
Port 0 picks a free port (printed on the ready line).
"""

from __future__ import annotations

import argparse
import math
import sys

from keras_lmiqa.constants import MAX_MESSAGE_BYTES, MIB, MODEL_NAME
from keras_lmiqa.errors import ConfigError
from keras_lmiqa.serving.limits import (
    DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_MAX_REQUEST_PIXELS,
    DEFAULT_READ_TIMEOUT,
    GRPC_MESSAGE_LIMIT_BYTES,
    check_server_settings,
)

MAX_REQUEST_MB = GRPC_MESSAGE_LIMIT_BYTES // MIB  # 2047


def check_arguments(args: argparse.Namespace) -> None:
    """ConfigError (one line, exit 2) for a flag out of range, before anything starts."""
    if args.ui and args.rest_port is None:
        raise ConfigError("--ui needs --rest-port: the page is served on the REST port")
    if not (math.isfinite(args.max_request_mb) and 0 < args.max_request_mb <= MAX_REQUEST_MB):
        raise ConfigError(f"--max-request-mb must be in (0, {MAX_REQUEST_MB}] (gRPC's message size limit), "
                          f"got {args.max_request_mb:g}")
    check_server_settings(lambda name: "--" + name.replace("_", "-"), port=args.port, rest_port=args.rest_port,
                          max_batch_size=args.max_batch_size, poll_seconds=args.poll_seconds,
                          max_request_pixels=args.max_request_pixels,
                          max_concurrent_requests=args.max_concurrent_requests, read_timeout=args.read_timeout)


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    from keras_lmiqa.serving.local_server import LocalServer, serve_until_signalled

    server = LocalServer(args.export_dir, port=args.port, rest_port=args.rest_port, host=args.host,
                         model_name=args.model_name, poll_seconds=args.poll_seconds,
                         max_batch_size=args.max_batch_size, max_request_bytes=int(args.max_request_mb * MIB),
                         max_request_pixels=args.max_request_pixels,
                         max_concurrent_requests=args.max_concurrent_requests, read_timeout=args.read_timeout,
                         ui=args.ui)
    serve_until_signalled(server, ready=lambda line: print(line, flush=True, file=sys.stdout))
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("serve", help="development server with TF Serving's gRPC/REST APIs",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export-dir", required=True, metavar="DIR",
                        help="export base folder holding numeric version folders (DIR/1, DIR/2, ...)")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port, 0 = any free port (default 8500)")
    parser.add_argument("--rest-port", type=int, default=None, metavar="PORT",
                        help="also serve the REST API on PORT (0 = any free port); off by default")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; 0.0.0.0 exposes it on the network)")
    parser.add_argument("--model-name", default=MODEL_NAME, help=f"model name clients ask for (default {MODEL_NAME})")
    parser.add_argument("--poll-seconds", type=float, default=2.0,
                        help="how often to look for new version folders; 0 disables (default 2)")
    parser.add_argument("--max-batch-size", type=int, default=64, help="largest batch per request (default 64)")
    parser.add_argument("--max-request-mb", type=float, default=MAX_MESSAGE_BYTES / MIB,
                        help=f"largest request message in MiB (default {MAX_MESSAGE_BYTES // MIB})")
    # The memory budget: decoded pixels in flight are at most these two multiplied.
    parser.add_argument("--max-request-pixels", type=int, default=DEFAULT_MAX_REQUEST_PIXELS,
                        help="decoded pixels a request's images may declare in all (default "
                             f"{DEFAULT_MAX_REQUEST_PIXELS:,}); above it: RESOURCE_EXHAUSTED")
    parser.add_argument("--max-concurrent-requests", type=int, default=DEFAULT_MAX_CONCURRENT_REQUESTS,
                        help="requests scored at once; the others wait (default "
                             f"{DEFAULT_MAX_CONCURRENT_REQUESTS})")
    parser.add_argument("--read-timeout", type=float, default=DEFAULT_READ_TIMEOUT,
                        help=f"seconds a REST client may take to send its request (default {DEFAULT_READ_TIMEOUT:g})")
    parser.add_argument("--ui", action="store_true",
                        help="serve a page at / of the REST port where photos dropped in a browser are scored "
                             "(same-origin, under the request limits); off by default")
    parser.set_defaults(func=run)
    return parser
