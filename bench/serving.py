"""Serving: the local gRPC server (`keras_lmiqa.serving.local_server.LocalServer`, client
`keras_lmiqa.serving.client.Client`) against in-process calls of the same signature.

    grpc        Client.predict of encoded images to a LocalServer running in a child
                process (its own interpreter and TF runtime, as a deployment runs it)
    in_process  the same export's `serving_default` loaded with tf.saved_model.load in
                this process, outputs converted to numpy (what the server returns)
Latency: p50 / p99 over interleaved single requests at batch 1 and 8.
Throughput: 1, 4 and 8 concurrent clients (threads, one channel each) sending batch-8
requests, against the same number of threads calling the signature in-process.
Target: gRPC p50 <= 1.10 x in-process p50 at batch 8.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BENCH = "serving"


def serve_child(export_dir: str, concurrent: int = 0) -> None:
    """Child process: serve `export_dir` on a free port, print it, stop when stdin closes."""
    common.quiet_tensorflow()
    from keras_lmiqa.serving.local_server import LocalServer

    options = {"max_concurrent_requests": concurrent} if concurrent else {}
    server = LocalServer(export_dir, port=0, poll_seconds=0, **options).start()
    print(f"PORT {server.port}", flush=True)
    sys.stdin.read()  # the parent closes our stdin when it is done
    server.stop()


class ServerProcess:
    def __init__(self, export_dir: str, concurrent: int = 0):
        self.process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve-child", export_dir,
                                         "--max-concurrent-requests", str(concurrent)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = ""
        while not line.startswith("PORT "):
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None:
                raise RuntimeError("the server child process exited before serving")
        self.port = int(line.split()[1])

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def concurrent_rate(call, clients: int, requests_each: int, images_per_request: int) -> float:
    """Images/s of `clients` threads each making `requests_each` calls of `call(i)`."""
    barrier = threading.Barrier(clients + 1)
    errors = []

    def worker(index):
        barrier.wait()
        try:
            for _ in range(requests_each):
                call(index)
        except Exception as error:  # surfaced after the join
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return clients * requests_each * images_per_request / elapsed


def main(argv=None):
    p = common.parser(__doc__.split("\n")[0])
    p.add_argument("--serve-child", default=None, help=argparse_hidden())
    p.add_argument("--requests", type=int, default=40, help="requests per latency series (per variant)")
    p.add_argument("--concurrency", default="1,4,8", help="concurrent clients for the throughput figures")
    p.add_argument("--throughput-requests", type=int, default=4, help="batch-8 requests per client per round")
    p.add_argument("--side", type=int, default=0, help="0: the demo's 256 px PNGs; N: generated N px JPEGs")
    p.add_argument("--max-concurrent-requests", type=int, default=0,
                   help="the server's max_concurrent_requests (0: its default)")
    args = p.parse_args(argv)
    if args.serve_child:
        return serve_child(args.serve_child, args.max_concurrent_requests)
    common.quiet_tensorflow()
    if args.quick:
        args.requests, args.concurrency, args.throughput_requests = 10, "1,4", 2
    rounds = common.repeats(args, full=2, quick=1)
    report = common.Report(BENCH, args)

    import numpy as np
    import tensorflow as tf

    from keras_lmiqa.serving.client import Client

    config = common.cpu_demo_config()
    folder = tempfile.mkdtemp(prefix="lmiqa-bench-serving-")
    version_dir = common.make_export(folder, config)
    signature = tf.saved_model.load(version_dir).signatures["serving_default"]
    data = common.image_bytes(args.side, 64)
    server = ServerProcess(os.path.dirname(version_dir), args.max_concurrent_requests)
    clients: list[Client] = []
    try:
        def make_client():
            client = Client(f"127.0.0.1:{server.port}", timeout=120)
            clients.append(client)
            return client

        main_client = make_client()
        main_client.wait_until_available(60)

        def batch_of(b, i):
            array = np.empty(b, dtype=object)
            array[:] = [data[(i * b + j) % len(data)] for j in range(b)]
            return array

        def grpc_call(client, array):
            return client.predict({"images": array})

        def local_call(array):
            return {k: v.numpy() for k, v in signature(images=tf.constant(array)).items()}

        # Latency: the two variants alternate request by request.
        for b in (1, 8):
            arrays = [batch_of(b, i) for i in range(args.requests)]
            for a in arrays[:3]:  # warm-up: tracing, channel, caches
                grpc_call(main_client, a), local_call(a)
            lat = {"grpc": [], "in_process": []}
            for i, array in enumerate(arrays):
                order = ("grpc", "in_process") if i % 2 == 0 else ("in_process", "grpc")
                for name in order:
                    start = time.perf_counter()
                    grpc_call(main_client, array) if name == "grpc" else local_call(array)
                    lat[name].append(time.perf_counter() - start)
            for name, values in lat.items():
                for q in (50, 99):
                    report.add(f"b{b}_{name}_p{q}_ms", 1e3 * common.percentile(values, q), "ms",
                               f"{name} request latency p{q}, batch {b}, {len(values)} requests", batch=b)
            ratio = common.percentile(lat["grpc"], 50) / common.percentile(lat["in_process"], 50)
            report.add(f"b{b}_grpc_overhead_p50", 100 * (ratio - 1), "%",
                       f"gRPC p50 latency over in-process p50, batch {b}", baseline=f"b{b}_in_process_p50_ms",
                       target="<= 10" if b == 8 else None, batch=b)

        # Throughput with concurrent clients, batch 8.
        for c in [int(x) for x in args.concurrency.split(",")]:
            while len(clients) < c:
                make_client()
            pool = clients[:c]
            arrays = [batch_of(8, i) for i in range(c)]
            variants = {
                "grpc": lambda pool=pool, arrays=arrays, c=c: concurrent_rate(
                    lambda k: grpc_call(pool[k], arrays[k]), c, args.throughput_requests, 8),
                "in_process": lambda arrays=arrays, c=c: concurrent_rate(
                    lambda k: local_call(arrays[k]), c, args.throughput_requests, 8),
            }
            rates = {name: [] for name in variants}
            for r in range(rounds + 1):
                for name in (list(variants) if r % 2 else list(variants)[::-1]):
                    rate = variants[name]()
                    if r:  # round 0 warms up new channels and threads
                        rates[name].append(rate)
            for name, values in rates.items():
                report.add(f"c{c}_{name}_images_per_s", common.median(values), "images/s",
                           f"{name} throughput, {c} concurrent clients, batch 8", clients=c, rounds=rounds)
            report.add(f"c{c}_grpc_vs_in_process", common.median(rates["grpc"]) / common.median(rates["in_process"]),
                       "x", f"gRPC throughput over in-process, {c} concurrent clients",
                       baseline=f"c{c}_in_process_images_per_s", clients=c)
    finally:
        for client in clients:
            client.close()
        server.close()
    report.table()
    return report.figures


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
