"""Training steps per second of every full-size model of chapters 10-12, and the time of sampling.

Not a test: it measures and prints (and with ``--json`` writes) the seconds per training step of
each model of :func:`catlib.full_models.full_models` at the paper's size and batch, the peak GPU memory,
and the projected time to the paper's number of steps on this one device; with ``--sampling``
also the time to sample from the AR text flows (cached sampler), the text diffusion models and
Cityscapes diffusion (a measured number of network calls; the seconds per call give the full
chain). Usage (on a GPU)::

    python benchmarks/speed_full_models.py --json benchmarks/results/speed_full_models.json --sampling
    python benchmarks/speed_full_models.py --only text8/ar-argmax --precisions fp32 bf16
    python benchmarks/speed_full_models.py --device cpu --batch-size 2 --timed 1 --only cityscapes/argmax-threshold

The results file is rewritten after every model, so a run stopped early keeps what it measured.
The models are untrained and the batches random (see :mod:`catlib.full_models`).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import traceback
from pathlib import Path

import torch

from catlib.full_models import full_models, measure
from catlib.text_flows import time_sampling
from catlib.timing import timed
from catlib.train import PRECISIONS, format_estimate, select_device


def environment(device: torch.device) -> dict:
    cuda = device.type == "cuda"
    return {"date": datetime.date.today().isoformat(), "python": platform.python_version(),
            "torch": torch.__version__, "cpu_count": os.cpu_count(), "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if cuda else None,
            "gpu_memory_gib": round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1) if cuda else None,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32}


def record(out: dict, row: dict, path: Path | None, device: torch.device) -> None:
    """Add one measured ``row`` to ``out["results"]``, print it, rewrite ``path`` (so a run stopped
    early keeps what it measured) and free the GPU's cached memory for the next model."""
    out["results"].append(row)
    print(f"{row['key']:42s} {row['steps_per_second']:8.2f} steps/s, peak {row['peak_memory_bytes'] / 2**20:8.1f} MiB, "
          f"{row['paper_steps']:,} steps: {row['total_seconds'] / 3600:.2f} h", flush=True)
    if path is not None:
        Path(path).write_text(json.dumps(out, indent=1) + "\n")
    if device.type == "cuda":
        torch.cuda.empty_cache()


def sampling(models: dict, device: torch.device, diffusion_calls: int, reference: bool = False) -> list[dict]:
    """Seconds to sample from the untrained full-size models: AR text flows (cached sampler, 1 and 64
    sequences; with ``reference`` also the reference sampler, 1 sequence), text and Cityscapes
    diffusion (``diffusion_calls`` network calls, 32 samples)."""
    out = []
    for key in ("text8/ar-argmax", "enwik8/ar-argmax"):
        if key not in models:
            continue
        torch.manual_seed(0)
        net = models[key].build().to(device).eval()
        with torch.no_grad():
            time_sampling(net, 1)  # warm-up
            for n in (1, 64):
                seconds = time_sampling(net, n)
                out.append({"key": key, "chapter": "10", "what": f"sample {n} sequence(s), cached AR sampler",
                            "n": n, "seconds": seconds, "seconds_per_sequence": seconds / n})
                print(f"sampling {key}: {n} sequences in {seconds:.2f} s ({seconds / n:.3f} s each)", flush=True)
            if reference:  # the official code's way: the whole network again for every coordinate
                seconds = time_sampling(net, 1, reference=True)
                out.append({"key": key, "chapter": "10", "what": "sample 1 sequence(s), reference AR sampler",
                            "n": 1, "seconds": seconds, "seconds_per_sequence": seconds})
                print(f"sampling {key}: 1 sequence with the reference sampler in {seconds:.2f} s", flush=True)
        del net
    for key in ("text8/diffusion", "enwik8/diffusion", "cityscapes/multinomial-diffusion"):
        if key not in models:
            continue
        torch.manual_seed(0)
        net = models[key].build().to(device).eval()
        T = net.num_timesteps
        calls = min(T, diffusion_calls)
        with torch.no_grad():
            net.sample(2, steps=2)  # warm-up
            seconds = timed(lambda: net.sample(32, steps=calls), device)[1]
        per_call = seconds / calls
        out.append({"key": key, "chapter": models[key].chapter, "what": f"32 samples, {calls} of T = {T} network calls",
                    "n": 32, "calls": calls, "timesteps": T, "seconds": seconds, "seconds_per_call": per_call,
                    "projected_full_chain_seconds": per_call * T})
        print(f"sampling {key}: 32 samples x {calls} calls in {seconds:.2f} s; all T = {T} calls: "
              f"{per_call * T:.0f} s", flush=True)
        del net
    return out


def _merge(earlier: list[dict], now: list[dict], keys: tuple[str, ...]) -> list[dict]:
    """``earlier`` with each row that ``now`` measured again replaced in place, then ``now``'s new rows."""
    fresh = {tuple(r[k] for k in keys): r for r in now}
    merged = [fresh.pop(tuple(r[k] for k in keys), r) for r in earlier]
    return merged + list(fresh.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="default: CUDA if present")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=PRECISIONS)
    parser.add_argument("--only", nargs="*", default=None, help="model keys (or prefixes: 'text8/', 'cityscapes/')")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    parser.add_argument("--timed", type=int, default=20, help="timed steps")
    parser.add_argument("--batch-size", type=int, default=None, help="override the paper's batch (quick checks)")
    parser.add_argument("--sampling", action="store_true", help="also time sampling")
    parser.add_argument("--reference", action="store_true", help="with --sampling: also time the reference AR sampler")
    parser.add_argument("--diffusion-calls", type=int, default=200, help="network calls timed per diffusion model")
    parser.add_argument("--json", default=None, help="write the results to this file (after every model)")
    parser.add_argument("--update", default=None, metavar="FILE",
                        help="merge into this earlier results file (same GPU): rows of the models measured now "
                             "replace theirs, the others are kept")
    args = parser.parse_args(argv)
    device = select_device(args.device)
    models = {m.key: m for m in full_models()
              if args.only is None or any(m.key == o or (o.endswith("/") and m.key.startswith(o)) for o in args.only)}
    if not models:
        parser.error(f"--only matched no model; keys: {', '.join(m.key for m in full_models())}")
    env = environment(device)
    print(", ".join(f"{k} {v}" for k, v in env.items()), flush=True)
    results, samples, failures = [], [], []

    command = "python benchmarks/speed_full_models.py " + " ".join(argv if argv is not None else sys.argv[1:])
    earlier = json.loads(Path(args.update).read_text(encoding="utf-8")) if args.update else None
    if earlier is not None and earlier["environment"].get("gpu") != env["gpu"]:
        parser.error(f"--update: {args.update} was measured on {earlier['environment'].get('gpu')}, "
                     f"this device is {env['gpu']}; measure everything again instead")

    def save() -> None:
        if not args.json:
            return
        out = {"environment": env, "command": command, "results": results, "sampling": samples, "failures": failures}
        if earlier is not None:   # rows measured now replace the earlier ones in place; the others are kept
            out = {"environment": earlier["environment"], "command": f"{earlier['command']}; then {command}",
                   "results": _merge(earlier["results"], results, ("key", "precision")),
                   "sampling": _merge(earlier["sampling"], samples, ("key", "what")), "failures": failures}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")

    for precision in args.precisions:
        for model in models.values():
            try:
                row = measure(model, device, precision, warmup_steps=args.warmup, timed_steps=args.timed,
                              batch_size=args.batch_size)
            except Exception as err:  # keep going: one model's failure must not hide the others' numbers
                failures.append({"key": model.key, "precision": precision, "error": repr(err)})
                print(f"FAILED {model.key} {precision}: {err!r}\n{traceback.format_exc()}", flush=True)
                continue
            finally:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            results.append(row)
            print(format_estimate(row, model.key), flush=True)
            save()
    if args.sampling:
        samples = sampling(models, device, args.diffusion_calls, args.reference)
    save()
    print(f"\n{'model':40s} {'prec':5s} {'steps/s':>8s} {'GiB':>6s} {'paper steps':>11s} {'projected':>10s}")
    for r in results:
        print(f"{r['key']:40s} {r['precision']:5s} {r['steps_per_second']:8.2f} {r['peak_memory_bytes'] / 2**30:6.1f} "
              f"{r['paper_steps']:11,d} {r['total_seconds'] / 3600:9.1f}h")
    if failures:
        raise SystemExit(f"{len(failures)} measurement(s) failed: {failures}")


if __name__ == "__main__":
    main()
