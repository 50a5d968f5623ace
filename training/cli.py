"""The ``scalelink`` command line.

``scalelink train CONFIG.yaml [--data ...] [--species ...] [--cutoff X] [--epochs N] [--out DIR]``
``scalelink train --resume RUN_DIR [--epochs N]``
``scalelink deploy RUN_DIR [RUN_DIR ...] -o model.pt [--dtype float64]`` (several runs: a committee)
``scalelink evaluate model.pt DATA [DATA ...] [-o metrics.json]``
``scalelink make-data OUT.extxyz [--n 400] [--species Cu Ni]``
``scalelink demo [--out DIR]``
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from collections.abc import Sequence

from scalelink.bridge.errors import ScaleLinkError

__all__ = ["main"]


def _train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .trainer import train

    config_file = args.config
    if args.resume:
        config_file = config_file or os.path.join(args.resume, "config.yaml")
        args.out = args.resume
    config = load_config(
        config_file,
        data=args.data,
        species=args.species,
        cutoff=args.cutoff,
        epochs=args.epochs,
        out=args.out,
        seed=args.seed,
        dtype=args.dtype,
        time_limit=args.time_limit,
    )
    if not config.data:
        raise ScaleLinkError("no training data: give `data:` in the config file or --data FILE")
    result = train(config, progress=not args.quiet, resume=bool(args.resume))
    print(f"run folder: {result.run_dir}")
    print(f"validation: {result.validation.summary()}")
    if result.test is not None:
        print(f"held-out test: {result.test.summary()}")
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from .export import export_committee, export_potential
    from .model_card import write_model_card
    from .trainer import load_checkpoint

    loaded = [load_checkpoint(run_dir, args.checkpoint) for run_dir in args.run_dirs]
    species = loaded[0][1]
    for run_dir, (_, other) in zip(args.run_dirs, loaded):
        if other != species:
            raise ScaleLinkError(
                f"the runs of a committee must share one species list: {args.run_dirs[0]} has "
                f"{species}, {run_dir} has {other}; train every member on the same species"
            )
    models = [model for model, _ in loaded]
    if len(models) == 1:
        metadata = export_potential(models[0], species, args.output, dtype=args.dtype)
    else:
        metadata = export_committee(models, species, args.output, dtype=args.dtype)
    card = write_model_card(args.output, args.run_dirs, metadata)
    committee = f", committee of {metadata.committee_size}" if metadata.committee_size > 1 else ""
    print(
        f"wrote {args.output}: species {' '.join(metadata.species)}, cutoff {metadata.cutoff} Å, "
        f"{metadata.num_layers} layers, {metadata.dtype}{committee}; model card {card}"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_model_file
    from .metrics import parity_plot, write_json

    metrics, collected = evaluate_model_file(args.model, args.data, device=args.device)
    print(metrics.summary())
    output = args.output or os.path.splitext(args.model)[0] + "_metrics.json"
    report: dict[str, object] = {"model": args.model, "data": list(args.data), **metrics.as_dict()}
    if collected.force_deviation:
        from .calibration import calibration, calibration_plot

        deviation = np.concatenate(collected.force_deviation)
        f_pred, f_ref = collected.arrays("forces")
        error = np.linalg.norm(f_pred - f_ref, axis=1)
        result = calibration(deviation, error)
        report["uncertainty"] = result.as_dict()
        print(f"committee: Spearman correlation of force deviation and force error {result.spearman:.3f} "
              f"({result.n_atoms} atoms)")
        if args.plot:
            calibration_plot(result, deviation, error, os.path.splitext(args.plot)[0] + "_calibration.png")
    write_json(report, output)
    if args.plot:
        parity_plot(collected, args.plot, os.path.basename(args.model))
    print(f"wrote {output}")
    return 0


def _make_data(args: argparse.Namespace) -> int:
    from .reference import write_fcc_alloy_dataset

    frames = write_fcc_alloy_dataset(args.output, args.n, species=tuple(args.species), seed=args.seed)
    print(f"wrote {len(frames)} EMT-labelled structures to {args.output}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.out, train_seconds=args.train_seconds, md_steps=args.md_steps)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scalelink", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a GNN potential")
    p.add_argument("config", nargs="?", help="YAML configuration (optional if --data is given)")
    p.add_argument("--data", nargs="+", help="ASE-readable files with energies and forces")
    p.add_argument("--species", nargs="+", help="chemical symbols in model order")
    p.add_argument("--cutoff", type=float, help="radial cutoff in Å")
    p.add_argument("--epochs", type=int, help="maximum epochs")
    p.add_argument("--out", help="run folder")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--dtype", choices=["float32", "float64"], help="training precision")
    p.add_argument("--time-limit", type=float, help="stop training after this many seconds")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = sub.add_parser("deploy", help="write a trained run, or several as a committee, as one model file")
    p.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR",
        help="folder written by `scalelink train`; several make a committee evaluated in one call",
    )
    p.add_argument("-o", "--output", required=True, help="model file to write (e.g. model.pt)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64", help="deployed precision")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.set_defaults(func=_deploy)

    p = sub.add_parser("evaluate", help="errors of a model file on labelled data")
    p.add_argument("model", help="model file written by `scalelink deploy`")
    p.add_argument("data", nargs="+", help="ASE-readable files with energies and forces")
    p.add_argument("-o", "--output", help="metrics JSON (default: MODEL_metrics.json)")
    p.add_argument("--plot", help="also write a parity plot PNG here")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("make-data", help="EMT-labelled fcc alloy structures (extxyz)")
    p.add_argument("output")
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--species", nargs="+", default=["Cu", "Ni"])
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_make_data)

    p = sub.add_parser("demo", help="data -> training -> deployment -> LAMMPS MD, on built-in defaults")
    p.add_argument("--out", default="demo_out", help="folder for everything the demo writes")
    p.add_argument("--train-seconds", type=float, default=240.0, help="training time budget")
    p.add_argument("--md-steps", type=int, default=1000, help="NVE steps in LAMMPS")
    p.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scalelink`` console script."""
    import warnings

    # torch deprecates TorchScript, which the model file format still uses; users cannot act on it
    warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=FutureWarning)
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ScaleLinkError as exc:
        print(f"scalelink {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
