"""Serving memory: the development server's resident memory (RSS) per request, for the
largest requests its limits allow and for requests of extreme shapes.

The server runs in a child process (`LocalServer`, its own interpreter and TF runtime);
for each request this script resets the child's peak RSS (`/proc/PID/clear_refs` 5),
sends the request, and reads
    peak   VmHWM during the request, minus the idle baseline
    after  VmRSS 3 s after the answer, minus the idle baseline
Cases (encoded images are flat-colour PNGs or JPEGs: a few KB declaring many pixels):
    tall_wide     a 16000x40 and a 40x16000 PNG in one request
    four_7000     four 7000x7000 PNGs in one request
    worst_png     one PNG of the most pixels the limits allow (the export's max_pixels and
                  the server's max_request_pixels): the worst request for memory
    worst_jpeg    the same as a JPEG
    many_small    max_batch_size images sharing that pixel budget
    rest_pixels   REST `score_pixels`: the largest JSON body max_request_bytes allows
    concurrent    max_concurrent_requests worst_png requests at once
A watchdog kills the child above --rss-cap-gb (the case is then reported as killed).
Target: every peak <= --budget-gb (1 GB) above the idle baseline; every after <= 0.2 GB.

    python bench/serving_memory.py [--preset default|cpu-photos|cpu-demo] [--cases a,b]
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BENCH = "serving_memory"
CASES = ("tall_wide", "four_7000", "worst_png", "worst_jpeg", "many_small", "rest_pixels", "concurrent")


def serve_child(export_dir: str, options: str) -> None:
    """Child process: serve `export_dir`, print its ports and limits, stop when stdin closes."""
    common.quiet_tensorflow()
    from keras_lmiqa.serving.local_server import LocalServer

    wanted = json.loads(options)
    accepted = inspect.signature(LocalServer).parameters
    server = LocalServer(export_dir, port=0, rest_port=0, poll_seconds=0,
                         **{k: v for k, v in wanted.items() if k in accepted}).start()
    limits = {name: getattr(server.predictor, name, None)
              for name in ("max_batch_size", "max_input_bytes", "max_request_pixels", "max_concurrent_requests")}
    print("READY " + json.dumps({"grpc": server.port, "rest": server.rest_port, "pid": os.getpid(), **limits}),
          flush=True)
    sys.stdin.read()
    server.stop()


def _status(pid: int, field: str) -> float:
    """A /proc/PID/status memory field in GB."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2 ** 20
    raise RuntimeError(f"no {field} for process {pid}")


class ServerProcess:
    def __init__(self, export_dir: str, options: dict, cap_gb: float):
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve-child", export_dir, "--options", json.dumps(options)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = ""
        while not line.startswith("READY "):
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None:
                raise RuntimeError("the server child process exited before serving")
        self.info = json.loads(line[len("READY "):])
        self.pid = self.info["pid"]
        self.cap_gb = cap_gb
        self.killed = False
        self._watch = threading.Thread(target=self._watchdog, daemon=True)
        self._watch.start()

    def _watchdog(self):
        while self.process.poll() is None:
            try:
                if _status(self.pid, "VmRSS") > self.cap_gb:
                    self.killed = True
                    self.process.kill()
                    return
            except (OSError, RuntimeError):
                return
            time.sleep(0.02)

    def rss(self) -> float:
        return _status(self.pid, "VmRSS")

    def reset_peak(self) -> None:
        with open(f"/proc/{self.pid}/clear_refs", "w") as handle:
            handle.write("5")

    def peak(self) -> float:
        return _status(self.pid, "VmHWM")

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()


def flat_image(height: int, width: int, fmt: str = "png") -> bytes:
    """A mid-grey image with one gradient row (so it is not constant): compresses to KB."""
    import cv2
    import numpy as np

    pixels = np.full((height, width, 3), 128, np.uint8)
    pixels[0, :, 0] = (np.arange(width) % 256).astype(np.uint8)
    ok, data = cv2.imencode("." + fmt, pixels, [cv2.IMWRITE_JPEG_QUALITY, 90] if fmt == "jpg" else [])
    assert ok
    return data.tobytes()


def grpc_predict(port: int, inputs: dict, signature: str = "serving_default", timeout: float = 1800):
    """(status, seconds) of one Predict with the official stub; status "OK" or the gRPC code."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "lmiqa"
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    with grpc.insecure_channel(f"127.0.0.1:{port}", [("grpc.max_send_message_length", 1 << 30),
                                                     ("grpc.max_receive_message_length", 1 << 30)]) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        start = time.perf_counter()
        try:
            stub.Predict(request, timeout=timeout)
            return "OK", time.perf_counter() - start, ""
        except grpc.RpcError as error:
            return error.code().name, time.perf_counter() - start, error.details()


def rest_predict(port: int, body: bytes, timeout: float = 1800):
    import urllib.error
    import urllib.request

    start = time.perf_counter()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/lmiqa:predict", data=body)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return "OK", time.perf_counter() - start, ""
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}", time.perf_counter() - start, error.read()[:200].decode(errors="replace")
    except OSError as error:
        return type(error).__name__, time.perf_counter() - start, str(error)


def main(argv=None):
    p = common.parser(__doc__.split("\n")[0])
    p.add_argument("--serve-child", default=None, help=_hidden())
    p.add_argument("--options", default="{}", help=_hidden())
    p.add_argument("--preset", default="default", help="model config: default (TrainConfig), cpu-photos, cpu-demo")
    p.add_argument("--cases", default=",".join(CASES), help="cases to run, comma-separated")
    p.add_argument("--server-options", default="{}", help="JSON LocalServer keyword arguments")
    p.add_argument("--budget-gb", type=float, default=1.0, help="target: peak RSS above idle")
    p.add_argument("--rss-cap-gb", type=float, default=8.0, help="kill the server above this RSS")
    p.add_argument("--label", default="", help="tag on every figure (e.g. before/after)")
    args = p.parse_args(argv)
    if args.serve_child:
        return serve_child(args.serve_child, args.options)
    common.quiet_tensorflow()
    report = common.Report(BENCH, args)
    import math

    import numpy as np

    config = common.cpu_demo_config() if args.preset == "cpu-demo" else _config(args.preset)
    if args.quick:
        config = config.replace(max_pixels=4_000_000)
    folder = tempfile.mkdtemp(prefix="lmiqa-bench-memory-")
    version_dir = common.make_export(folder, config)
    server = ServerProcess(os.path.dirname(version_dir), json.loads(args.server_options), args.rss_cap_gb)
    limits = server.info
    server.close()
    budget_pixels = min(config.max_pixels, limits.get("max_request_pixels") or config.max_pixels)
    side = math.isqrt(budget_pixels)
    batch = limits["max_batch_size"]
    print(f"# preset {args.preset}: {config.backbone}, crop {config.crop_size}, max_pixels {config.max_pixels}; "
          f"server limits {limits}", flush=True)

    def images(*pairs, fmt="png"):
        array = np.empty(len(pairs), dtype=object)
        array[:] = [flat_image(h, w, fmt) for h, w in pairs]
        return {"images": array}

    small_side = math.isqrt(budget_pixels // batch)
    rest_side = math.isqrt(int(limits["max_input_bytes"] / 8.05))  # "[0,0,0]," is 8 bytes per pixel in JSON
    sends = {
        "tall_wide": lambda: grpc_predict(server.info["grpc"], images((16000, 40), (40, 16000))),
        "four_7000": lambda: grpc_predict(server.info["grpc"], images(*[(7000, 7000)] * 4)),
        "worst_png": lambda: grpc_predict(server.info["grpc"], images((side, side))),
        "worst_jpeg": lambda: grpc_predict(server.info["grpc"], images((side, side), fmt="jpg")),
        "many_small": lambda: grpc_predict(server.info["grpc"], images(*[(small_side, small_side)] * batch)),
        "rest_pixels": lambda: rest_predict(server.info["rest"], _pixels_body(rest_side)),
        "concurrent": lambda: _together(lambda: grpc_predict(server.info["grpc"], images((side, side))),
                                        limits.get("max_concurrent_requests") or 2),
    }
    def start():
        running = ServerProcess(os.path.dirname(version_dir), json.loads(args.server_options), args.rss_cap_gb)
        status = grpc_predict(running.info["grpc"], images((48, 64)))  # warm-up: tracing, thread pools
        assert status[0] == "OK", status
        time.sleep(3)
        return running, running.rss()

    idle = None
    try:
        server, idle = start()
        report.add("idle_rss", idle, "GB", "server RSS when idle, after one small request", label=args.label)
        for case in args.cases.split(","):
            if server.killed or server.process.poll() is not None:
                server.close()
                server, idle = start()
            server.reset_peak()
            answer, seconds, details = sends[case]()
            if server.killed:
                report.add(f"{case}_peak", args.rss_cap_gb - idle, "GB", f"{case}: killed above the RSS cap",
                           target=f"<= {args.budget_gb}", label=args.label, status="killed")
                continue
            peak = server.peak() - idle
            time.sleep(3)
            after = server.rss() - idle
            reason = details.splitlines()[0][:160] if details else ""
            report.add(f"{case}_peak", peak, "GB", f"{case}: peak RSS above idle ({answer} in {seconds:.1f} s)",
                       target=f"<= {args.budget_gb}", label=args.label, status=answer, details=reason)
            report.add(f"{case}_after", after, "GB", f"{case}: RSS above idle 3 s after the answer",
                       target="<= 0.2", label=args.label, status=answer)
    finally:
        server.close()
    report.table()
    return report.figures


def _config(preset: str):
    from keras_lmiqa import config as config_lib

    changes = {} if preset == "default" else config_lib.preset(preset)
    return config_lib.TrainConfig(**{**changes, "weights": "none"})


def _pixels_body(side: int) -> bytes:
    row = "[" + ",".join(["[0,0,0]"] * side) + "]"
    return ('{"signature_name": "score_pixels", "instances": [[' + ",".join([row] * side) + "]]}").encode()


def _together(call, count: int):
    """Run `call` in `count` threads at once; (worst status, longest seconds, details)."""
    results = [None] * count

    def run(i):
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bad = [r for r in results if r[0] != "OK"]
    return (bad or results)[0][0], max(r[1] for r in results), (bad or results)[0][2]


def _hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
