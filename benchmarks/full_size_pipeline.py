"""End-to-end check of chapters 10-12's full runs at the papers' model sizes, on the labelled stand-ins.

Not a test and not a result: it runs each experiment's own ``run_one`` (training with
:func:`catlib.train.fit`, evaluation, sampling, and for text diffusion the spell checker) with
the paper profile's models and batches but a few hundred steps, small evaluation sets and the
generated stand-in data, so the code path of a paper run is exercised where no real data can be
downloaded. Run it on a GPU before a multi-day run::

    python benchmarks/full_size_pipeline.py --steps 200 --precision bf16

It prints each run's bound on the stand-in (next to the stand-in's exact entropy where known), its
training time and its peak GPU memory. These numbers say nothing about text8 or Cityscapes.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from catlib.experiments import cityscapes, text8, text_diffusion
from catlib.train import PRECISIONS, fit_defaults, select_device


def text8_config(steps: int) -> text8.TextConfig:
    full = text8.PROFILES["paper"]
    return dataclasses.replace(
        full, corpus="stand-in", stand_in_sizes=(1_000_000, 50_000, 50_000), datasets=("text8",),
        training={k: {**v, "steps": steps, "warmup": min(v["warmup"], steps // 10)} for k, v in full.training.items()},
        eval_chunks=64, iwbo_chunks=8, iwbo_k=4, num_samples=4, reference_timing=(), estimate=True)


def diffusion_config(steps: int) -> text_diffusion.TextDiffusionConfig:
    return dataclasses.replace(
        text_diffusion.PROFILES["paper"], corpus=text_diffusion.STAND_IN, split_sizes=(1_000_000, 50_000, 50_000),
        steps=steps, test_chunks=32, skip_bound_chunks=16, num_samples=4, spell_chunks=16)


def cityscapes_config(steps: int) -> cityscapes.CityscapesConfig:
    full = cityscapes.PROFILES["paper"]
    return dataclasses.replace(
        full, data="stand-in", stand_in_sizes=(512, 32, 32),
        training={**full.training, "steps": steps, "warmup": steps // 10},
        diffusion_training={**full.diffusion_training, "steps": steps, "warmup": steps // 10},
        test_size=32, iwbo_size=4, iwbo_k=16, diffusion_test_size=8, num_samples=4)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument("--device", default=None)
    parser.add_argument("--text8", nargs="*", default=["ar-argmax", "coupling-argmax"], choices=text8.NAMES["text8"])
    parser.add_argument("--cityscapes", nargs="*", default=["argmax-threshold", "multinomial-diffusion"],
                        choices=cityscapes.NAMES)
    parser.add_argument("--no-diffusion", action="store_true", help="skip text diffusion")
    args = parser.parse_args(argv)
    device = select_device(args.device)
    cuda = device.type == "cuda"

    def report(what: str, bound: str, metrics: dict, began: float) -> None:
        peak = f", peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB" if cuda else ""
        print(f"== {what}: {bound}; {metrics['steps']} steps in {metrics['train_seconds']:.0f} s, "
              f"evaluation {metrics['eval_seconds']:.0f} s, all {time.perf_counter() - began:.0f} s{peak}", flush=True)

    with fit_defaults(precision=args.precision):
        config = text8_config(args.steps)
        corpus = text8.load_data(config, "text8")
        for name in args.text8:
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            began = time.perf_counter()
            m = text8.run_one(name, config, corpus, checkpoint=None, device=device, progress=False)
            report(f"text8 {name} (stand-in)", f"ELBO {m['elbo_bits']:.3f} / IWBO({m['iwbo_k']}) "
                   f"{m['iwbo_bits']:.3f} bpc, stand-in entropy {m['entropy_bits']:.3f}", m, began)
            print("   sample:", repr(m["samples"][0][:80]), flush=True)
        if not args.no_diffusion:
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            began = time.perf_counter()
            m = text_diffusion.run_one(diffusion_config(args.steps), checkpoint=None, device=device, progress=False)
            report("text8 diffusion (stand-in)", f"ELBO {m['test_bits']:.3f} bpc, stand-in entropy "
                   f"{m['entropy_bits']:.3f}", m, began)
            for s in m["samples"]:
                print(f"   {s['calls']} sampling calls: {s['seconds']:.1f} s for {len(s['texts'])}: "
                      f"{s['texts'][0][:60]!r}", flush=True)
            print("   spell check:", repr(m["spellcheck"][0]["suggestion"][:80]), flush=True)
        config = cityscapes_config(args.steps)
        maps = cityscapes.load_data(config)
        for name in args.cityscapes:
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            began = time.perf_counter()
            m = cityscapes.run_one(name, config, maps, checkpoint=None, device=device, progress=False)
            iwbo = f" / IWBO({m['iwbo_k']}) {m['iwbo_bpp']:.3f}" if m["iwbo_bpp"] is not None else ""
            report(f"Cityscapes {name} (stand-in maps)", f"ELBO {m['elbo_bpp']:.3f}{iwbo} bpp", m, began)


if __name__ == "__main__":
    main()
