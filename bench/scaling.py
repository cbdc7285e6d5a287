"""Scaling: pipeline time per image as K, crop side and image size grow.

    grid       K x crop side on 512 px JPEGs, cached steady state (decode out of the
               way; the first batch of each pass, tracing and iterator start, untimed):
               expected linear in K x side^2 (crop_and_resize work), fitted and R^2 reported
    image size 256 .. 2048 px JPEGs at the cpu-demo K and side: the full pipeline
               (cache=none), decode only, their difference ("beyond decode", expected
               flat) and the cached steady state
Saves one plot to bench/results/scaling.png (matplotlib, Agg).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from input_pipeline import decode_dataset, train_pipeline  # noqa: E402

BENCH = "scaling"


def linear_fit(xs, ys):
    """Least-squares y = a + b x; returns (a, b, r^2)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    b = sxy / sxx if sxx else 0.0
    a = my - b * mx
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return a, b, 1 - ss_res / ss_tot if ss_tot else 1.0


def main(argv=None):
    p = common.parser(__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=64, help="images per pass (the first batch is set-up)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--ks", default="2,4,8,16")
    p.add_argument("--crop-sides", default="32,64,128")
    p.add_argument("--grid-image-side", type=int, default=512)
    p.add_argument("--image-sides", default="256,512,1024,2048")
    p.add_argument("--plot", default=os.path.join(common.RESULTS, "scaling.png"))
    args = p.parse_args(argv)
    common.quiet_tensorflow()
    if args.quick:
        args.images, args.ks, args.crop_sides, args.image_sides = 48, "2,8", "32,64", "256,1024"
    rounds = common.repeats(args, full=2)
    report = common.Report(BENCH, args)

    base = common.cpu_demo_config()
    B = args.batch_size
    n = args.images // B * B
    measured = n - B  # the first batch of each pass is set-up (tracing, iterator start)
    U, primed, rest = common.Untimed, common.primed, common.drain_rest
    epochs = iter(range(1, 10**6))

    # K x side grid, cached steady state.
    files = common.generated_images(common.scratch_dir("jpg"), n, args.grid_image_side)
    variants, work = {}, {}
    for k in [int(x) for x in args.ks.split(",")]:
        for side in [int(x) for x in args.crop_sides.split(",")]:
            cfg = base.replace(num_crops=k, crop_size=side)
            pipe = train_pipeline(files, cfg)
            name = f"K={k} side={side}"
            variants[name] = U(primed(lambda pipe=pipe: pipe.epoch_dataset(next(epochs), B, n // B)), rest)
            work[name] = (k, side, cfg.crops_per_image * side * side)
    times = common.interleave(variants, rounds)  # the warm-up round fills the caches
    xs, ys = [], []
    for name, t in times.items():
        k, side, pixels = work[name]
        ms = 1e3 * common.median(t) / measured
        xs.append(pixels / 1e6)
        ys.append(ms)
        report.add(f"grid_K{k}_side{side}_ms_per_image", ms, "ms/image",
                   f"cached steady-state pipeline time per image, K={k} (+P), crop side {side}, "
                   f"{args.grid_image_side} px images", k=k, crop_side=side, crop_megapixels=pixels / 1e6)
    a, b, r2 = linear_fit(xs, ys)
    report.add("grid_linear_fit_r2", r2, "R^2", "fit of ms/image = a + b * (K+P) * side^2 over the grid",
               intercept_ms=a, ms_per_crop_megapixel=b)

    # Image size.
    variants, sizes = {}, [int(x) for x in args.image_sides.split(",")]
    for s in sizes:
        f = common.generated_images(common.scratch_dir("jpg"), n, s)
        nocache, cached = train_pipeline(f, base.replace(cache="none")), train_pipeline(f, base)
        variants[f"{s} full"] = U(primed(lambda p=nocache: p.epoch_dataset(next(epochs), B, n // B)), rest)
        variants[f"{s} decode"] = U(primed(lambda f=f: decode_dataset(f, B, base)), rest)
        variants[f"{s} cached"] = U(primed(lambda p=cached: p.epoch_dataset(next(epochs), B, n // B)), rest)
    times = common.interleave(variants, rounds)
    per = {name: 1e3 * common.median(t) / measured for name, t in times.items()}
    for s in sizes:
        beyond = per[f"{s} full"] - per[f"{s} decode"]
        for kind, what in (("full", "full pipeline, cache=none"), ("decode", "decode only"),
                           ("cached", "full pipeline, cached steady state")):
            report.add(f"size{s}_{kind}_ms_per_image", per[f"{s} {kind}"], "ms/image", f"{what}, {s} px JPEGs",
                       image_side=s)
        report.add(f"size{s}_beyond_decode_ms_per_image", beyond, "ms/image",
                   f"full (cache=none) minus decode-only, {s} px JPEGs: saliency, windows, batching, cutting",
                   baseline=f"size{s}_decode_ms_per_image", image_side=s)
    first = per[f"{sizes[0]} full"] - per[f"{sizes[0]} decode"]
    last = per[f"{sizes[-1]} full"] - per[f"{sizes[-1]} decode"]
    report.add("beyond_decode_growth", last / first if first > 0 else float("nan"), "x",
               f"beyond-decode time per image at {sizes[-1]} px over {sizes[0]} px "
               f"({(sizes[-1] / sizes[0]) ** 2:.0f}x the pixels; 1 = flat)", baseline=f"size{sizes[0]}")

    plot(args.plot, xs, ys, (a, b, r2), times, per, sizes, work)
    report.table()
    return report.figures


def plot(path, xs, ys, fit, grid_times, per, sizes, work):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.scatter(xs, ys, color="tab:blue")
    a, b, r2 = fit
    line = [min(xs), max(xs)]
    left.plot(line, [a + b * x for x in line], color="tab:gray", linestyle="--", label=f"linear fit, R²={r2:.3f}")
    left.set_xlabel("(K+P) × crop side² (megapixels of crops per image)")
    left.set_ylabel("ms per image (cached steady state)")
    left.set_title("Crop work")
    left.legend()
    for kind, style in (("full", "o-"), ("decode", "s-"), ("cached", "^-")):
        right.plot(sizes, [per[f"{s} {kind}"] for s in sizes], style, label=kind)
    right.plot(sizes, [per[f"{s} full"] - per[f"{s} decode"] for s in sizes], "x--", label="full − decode")
    right.set_xscale("log", base=2)
    right.set_xlabel("image side (px)")
    right.set_ylabel("ms per image")
    right.set_title("Image size")
    right.legend()
    fig.tight_layout()
    temporary = path + ".tmp.png"
    fig.savefig(temporary, dpi=110)
    os.replace(temporary, path)
    plt.close(fig)


if __name__ == "__main__":
    main()
