"""`lmiqa serve`: the development server (TF Serving's gRPC + REST APIs) over an export.

    lmiqa serve --export-dir EXPORTS/lmiqa [--port 8500] [--rest-port 8501] [--host 127.0.0.1]

For development and tests only; production runs TF Serving (serving/README.md). Prints
`serving lmiqa versions [..] on HOST:PORT` once ready; SIGINT/SIGTERM stop it cleanly.
Port 0 picks a free port (printed on the ready line).
"""

from __future__ import annotations

import argparse
import math
import sys

from keras_lmiqa.constants import MAX_MESSAGE_BYTES, MODEL_NAME

# gRPC keeps message sizes in a signed 32-bit int: 2 GiB - 1 byte.
MAX_REQUEST_MB = 2047


def check_arguments(args: argparse.Namespace) -> None:
    """ConfigError (one line, exit 2) for a flag out of range, before anything starts."""
    from keras_lmiqa.errors import ConfigError

    for flag, port in (("--port", args.port), ("--rest-port", args.rest_port)):
        if port is not None and not 0 <= port <= 65535:
            raise ConfigError(f"{flag} must be a TCP port in 0..65535 (0: any free port), got {port}")
    if args.rest_port is not None and args.rest_port and args.rest_port == args.port:
        raise ConfigError(f"--port and --rest-port are both {args.port}; give two ports")
    if args.max_batch_size < 1:
        raise ConfigError(f"--max-batch-size must be >= 1, got {args.max_batch_size}")
    if not (math.isfinite(args.max_request_mb) and 0 < args.max_request_mb <= MAX_REQUEST_MB):
        raise ConfigError(f"--max-request-mb must be in (0, {MAX_REQUEST_MB}] (gRPC's message size limit), "
                          f"got {args.max_request_mb:g}")
    if not (math.isfinite(args.poll_seconds) and args.poll_seconds >= 0):
        raise ConfigError(f"--poll-seconds must be >= 0 (0 disables polling), got {args.poll_seconds:g}")


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    from keras_lmiqa.serving.local_server import LocalServer, serve_until_signalled

    server = LocalServer(args.export_dir, port=args.port, rest_port=args.rest_port, host=args.host,
                         model_name=args.model_name, poll_seconds=args.poll_seconds,
                         max_batch_size=args.max_batch_size, max_request_bytes=int(args.max_request_mb * 2 ** 20))
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
    parser.add_argument("--max-request-mb", type=float, default=MAX_MESSAGE_BYTES / 2 ** 20,
                        help=f"largest request message in MiB (default {MAX_MESSAGE_BYTES // 2 ** 20})")
    parser.set_defaults(func=run)
    return parser
