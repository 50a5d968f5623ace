"""The ``scalelink`` command line.

``scalelink train CONFIG.yaml [--data ...] [--species ...] [--cutoff X] [--epochs N] [--out DIR]
[--architecture NAME]`` (a registered architecture: gnn, behler_parrinello, ...)
``scalelink train --resume RUN_DIR [--epochs N]`` (``--overwrite`` instead replaces a run in ``--out``)
``scalelink deploy RUN_DIR [RUN_DIR ...] -o model.pt [--dtype float64]`` (several runs: a committee)
``scalelink evaluate model.pt DATA [DATA ...] [-o metrics.json]``
``scalelink make-data OUT.extxyz [--n 400] [--species Cu Ni]``
``scalelink demo [--out DIR]``
``scalelink train-committee [CONFIG.yaml] -o RUN_DIR --members N [--bootstrap FRACTION] [--data ...]``
``scalelink learn [LEARN.yaml] -o DIR [--quick] [--iterations K] [--labeller emt|eam|module:factory] [--control]``
``scalelink sample-micro OUT.npz [--spec SPEC.yaml] [--model linear_elastic --young E --poisson NU | --model atomistic --structure CELL --potential model.pt | --module pkg.mod:factory] [--num-samples N] [--strain-range A]``
``scalelink train-surrogate DATA.npz -o RUN_DIR [--epochs N] [--time-limit S] [--width W] [--depth D] [--tangent-weight X]``
``scalelink deploy-surrogate RUN_DIR -o model.pt [--dtype float32|float64] [--tangent-dtype float32]``
``scalelink design CONFIG.yaml [--budget N] [--batch-size Q] [--state FILE] [--plot PNG]`` (under ``mpirun -n K``: K designs at once)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from collections.abc import Sequence

import numpy as np

from scalelink.bridge.errors import ScaleLinkError

from .design import add_design_parser

__all__ = ["main"]


def _train(args: argparse.Namespace) -> int:
    from scalelink.training.config import load_config
    from scalelink.training.trainer import train

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
        architecture=args.architecture,
        validation_fraction=args.validation_fraction,
        test_fraction=args.test_fraction,
        batch_size=args.batch_size,
    )
    if args.stress_weight is not None:
        config = dataclasses.replace(config, loss=dataclasses.replace(config.loss, stress=args.stress_weight))
    if not config.data:
        raise ScaleLinkError("no training data: give `data:` in the config file or --data FILE")
    result = train(config, progress=not args.quiet, resume=bool(args.resume), overwrite=args.overwrite)
    print(f"run folder: {result.run_dir}")
    print(f"validation: {result.validation.summary()}")
    if result.test is not None:
        print(f"held-out test: {result.test.summary()}")
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from scalelink.training.export import export_committee, export_potential
    from scalelink.training.model_card import architecture_of, write_model_card
    from scalelink.training.trainer import load_checkpoint

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
        f"{metadata.num_layers} layers, {metadata.dtype}{committee}, {architecture_of(args.run_dirs[0])}; "
        f"model card {card}"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from scalelink.training.evaluate import evaluate_model_file
    from scalelink.training.metrics import parity_plot, write_json

    metrics, collected = evaluate_model_file(args.model, args.data, device=args.device)
    print(metrics.summary())
    output = args.output or os.path.splitext(args.model)[0] + "_metrics.json"
    report: dict[str, object] = {"model": args.model, "data": list(args.data), **metrics.as_dict()}
    if collected.force_deviation:
        from scalelink.training.calibration import calibration, calibration_plot

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
    from scalelink.training.reference import write_fcc_alloy_dataset

    frames = write_fcc_alloy_dataset(args.output, args.n, species=tuple(args.species), seed=args.seed)
    print(f"wrote {len(frames)} EMT-labelled structures to {args.output}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.out, train_seconds=args.train_seconds, md_steps=args.md_steps)


def _sample_micro(args: argparse.Namespace) -> int:
    # scalelink.fenicsx is imported here only: the training package must import without it
    import yaml

    from scalelink.bridge.errors import ConfigError
    from scalelink.fe2.sampling import SamplingSpec

    raw: dict[str, object] = {}
    if args.spec:
        try:
            with open(args.spec) as handle:
                loaded = yaml.safe_load(handle)
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the sampling spec {args.spec!r} ({exc})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{args.spec}: a sampling spec must be a mapping, got {type(loaded).__name__}")
        raw.update(loaded)
    for name in ("model", "young", "poisson", "strain_size", "stress_unit", "structure", "potential",
                 "relax", "reference_relax", "module", "num_samples", "strain_range", "method", "seed"):
        if getattr(args, name) is not None:
            raw[name] = getattr(args, name)
    if args.pair_coeff and args.pair_style is None:
        raise ConfigError(f"--pair-coeff {args.pair_coeff} needs --pair-style too (e.g. --pair-style eam/alloy)")
    if args.pair_style is not None:
        raw["pair_commands"] = [f"pair_style {args.pair_style}"] + [f"pair_coeff {c}" for c in args.pair_coeff or ()]
    samples = SamplingSpec.from_mapping(raw, where=args.spec or "sample-micro flags").sample()
    samples.save(args.output)
    print(f"wrote {args.output}: {samples.strain.shape[0]} samples, strain size {samples.strain_size}, "
          f"stress in {samples.stress_unit}")
    return 0


def _train_surrogate(args: argparse.Namespace) -> int:
    from scalelink.surrogates.surrogate_trainer import SurrogateConfig, train_surrogate

    settings = {k: getattr(args, k) for k in ("epochs", "time_limit", "width", "depth", "activation", "variant",
                                              "tangent_weight", "optimizer", "held_out_fraction", "seed",
                                              "dtype", "num_threads") if getattr(args, k) is not None}
    result = train_surrogate(args.data, args.output, SurrogateConfig(**settings))
    held_out = result.metrics["held_out"]
    print(f"run folder: {result.run_dir}")
    print(f"held-out ({held_out['num_samples']} samples): stress relative RMSE "
          f"{held_out['stress_relative_rmse']:.3e}, tangent relative RMSE {held_out['tangent_relative_rmse']:.3e}")
    return 0


def _deploy_surrogate(args: argparse.Namespace) -> int:
    from scalelink.surrogates.constitutive import export_constitutive
    from scalelink.surrogates.surrogate_trainer import load_surrogate

    mlp = load_surrogate(args.run_dir)
    metadata = export_constitutive(mlp, args.output, dtype=args.dtype, tangent_dtype=args.tangent_dtype)
    tangent = "" if args.tangent_dtype in (None, args.dtype) else f", tangent in {args.tangent_dtype}"
    print(f"wrote {args.output}: constitutive, strain size {mlp.strain_size}, stress in {mlp.stress_unit}, "
          f"{mlp.architecture()}, {metadata.dtype}{tangent}")
    return 0


def _train_committee(args: argparse.Namespace) -> int:
    from scalelink.campaigns.committee import train_committee
    from scalelink.training.config import load_config

    config = load_config(
        args.config, data=args.data, species=args.species, epochs=args.epochs, seed=args.seed,
        time_limit=args.time_limit, out=args.output,
    )
    if not config.data:
        raise ScaleLinkError("no training data: give `data:` in the config file or --data FILE")
    result = train_committee(
        config, args.output, args.members, bootstrap=args.bootstrap, dtype=args.dtype, progress=not args.quiet
    )
    print(f"wrote {result.model_path} (committee of {args.members}); model card {result.card_path}")
    if result.heldout is not None and result.calibration is not None:
        print(f"held-out: {result.heldout.summary()}")
        print(f"Spearman correlation of force deviation and force error {result.calibration.spearman:.3f} "
              f"({result.calibration.n_atoms} atoms); report in {os.path.join(args.output, 'committee.json')}")
    return 0


def _learn(args: argparse.Namespace) -> int:
    from scalelink.campaigns.active_learning import load_learn_config, run_active_learning

    config = load_learn_config(
        args.config, quick=args.quick, iterations=args.iterations, labeller=args.labeller,
        target_temperature=args.temperature, members=args.members, train_seconds=args.train_seconds,
        md_steps=args.md_steps, threshold=args.threshold, seed=args.seed, control=args.control or None,
    )
    records = run_active_learning(config, args.output)
    errors = ", ".join(f"{r['target_force_rmse_meV_per_A']:.0f}" for r in records)
    if config.control:
        errors += "; control arm (initial data only): " + ", ".join(
            f"{r['control_force_rmse_meV_per_A']:.0f}" for r in records)
    print(f"{len(records)} iterations; target-regime force RMSE per iteration (meV/Å): {errors}; "
          f"see {os.path.join(args.output, 'learning.json')} and learning.png")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    """The `scalelink train` subcommand and its flags."""
    from scalelink.potentials import registry

    p = sub.add_parser("train", help="train a potential of a registered architecture")
    p.add_argument("config", nargs="?", help="YAML configuration (optional if --data is given)")
    p.add_argument("--data", nargs="+", help="ASE-readable files with energies and forces")
    p.add_argument("--species", nargs="+", help="chemical symbols in model order")
    p.add_argument("--cutoff", type=float, help="radial cutoff in Å")
    p.add_argument("--epochs", type=int, help="maximum epochs")
    p.add_argument("--out", help="run folder")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--dtype", choices=["float32", "float64"], help="training precision")
    p.add_argument("--time-limit", type=float, help="stop training after this many seconds")
    p.add_argument("--validation-fraction", type=float, help="share of the structures held out for validation (default 0.1)")
    p.add_argument("--test-fraction", type=float, help="share held out as a test set (default 0.1; 0 with a separate test file)")
    p.add_argument("--batch-size", type=int, help="structures per optimisation step")
    p.add_argument("--stress-weight", type=float, help="weight of the stress loss (0: train on energies and forces only)")
    p.add_argument(
        "--architecture", choices=registry.names(),
        help=f"model to train (default {registry.DEFAULT}; hyperparameters in the config's section of that "
        f"architecture: {', '.join(f'{a.section}: for {a.name}' for a in registry.architectures())})",
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its last checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (without it, a folder holding a run is refused)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)


def _add_deploy(sub: argparse._SubParsersAction) -> None:
    """The `scalelink deploy` subcommand and its flags."""
    p = sub.add_parser("deploy", help="write a trained run, or several as a committee, as one model file")
    p.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR",
        help="folder written by `scalelink train`; several make a committee evaluated in one call",
    )
    p.add_argument("-o", "--output", required=True, help="model file to write (e.g. model.pt)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64", help="deployed precision")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.set_defaults(func=_deploy)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    """The `scalelink evaluate` subcommand and its flags."""
    p = sub.add_parser("evaluate", help="errors of a model file on labelled data")
    p.add_argument("model", help="model file written by `scalelink deploy`")
    p.add_argument("data", nargs="+", help="ASE-readable files with energies and forces")
    p.add_argument("-o", "--output", help="metrics JSON (default: MODEL_metrics.json)")
    p.add_argument("--plot", help="also write a parity plot PNG here")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_evaluate)


def _add_make_data(sub: argparse._SubParsersAction) -> None:
    """The `scalelink make-data` subcommand and its flags."""
    p = sub.add_parser("make-data", help="EMT-labelled fcc alloy structures (extxyz)")
    p.add_argument("output")
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--species", nargs="+", default=["Cu", "Ni"])
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_make_data)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    """The `scalelink demo` subcommand and its flags."""
    p = sub.add_parser("demo", help="data -> training -> deployment -> LAMMPS MD, on built-in defaults")
    p.add_argument("--out", default="demo_out", help="folder for everything the demo writes")
    p.add_argument("--train-seconds", type=float, default=240.0, help="training time budget")
    p.add_argument("--md-steps", type=int, default=1000, help="NVE steps in LAMMPS")
    p.set_defaults(func=_demo)


def _add_sample_micro(sub: argparse._SubParsersAction) -> None:
    """The `scalelink sample-micro` subcommand and its flags."""
    p = sub.add_parser("sample-micro", help="strain/stress/tangent samples of a micro model (.npz)")
    p.add_argument("output", help="sample file to write (e.g. samples.npz)")
    p.add_argument("--spec", help="YAML mapping with the keys below (flags override it)")
    p.add_argument("--model", choices=["linear_elastic", "atomistic"], help="built-in micro model")
    p.add_argument("--young", type=float, help="Young's modulus (linear_elastic), in the stress unit")
    p.add_argument("--poisson", type=float, help="Poisson's ratio (linear_elastic)")
    p.add_argument("--strain-size", type=int, choices=[3, 6], help="3: 2D plane strain, 6: 3D (built-in models)")
    p.add_argument("--stress-unit", help="stress unit of the moduli (default GPa)")
    p.add_argument("--structure", help="ASE-readable periodic cell of the atomistic RVE")
    p.add_argument("--potential", help="ScaleLink model file of the atomistic RVE (pair_style scalelink)")
    p.add_argument("--pair-style", help="LAMMPS pair_style arguments instead of --potential, e.g. 'eam/alloy'")
    p.add_argument("--pair-coeff", action="append", help="pair_coeff arguments (repeatable), e.g. '* * CuNi.eam.alloy Cu Ni'")
    p.add_argument("--no-relax", dest="relax", action="store_const", const=False,
                   help="atomistic: affine atoms, no relaxation (exact for monatomic Bravais lattices)")
    p.add_argument("--reference-relax", action="store_const", const=True,
                   help="atomistic: relax the reference cell to zero stress first")
    p.add_argument("--module", help="'package.module:factory' returning a MicroModel")
    p.add_argument("--num-samples", type=int, help="number of strains (default 1000)")
    p.add_argument("--strain-range", type=float, help="amplitude: every Mandel component in [-A, A] (default 0.01)")
    p.add_argument("--method", choices=["lhs", "uniform"], help="Latin hypercube (default) or uniform draws")
    p.add_argument("--seed", type=int)
    p.set_defaults(func=_sample_micro)


def _add_train_surrogate(sub: argparse._SubParsersAction) -> None:
    """The `scalelink train-surrogate` subcommand and its flags."""
    p = sub.add_parser("train-surrogate", help="fit a constitutive network to micro-model samples")
    p.add_argument("data", help="sample file written by `scalelink sample-micro`")
    p.add_argument("-o", "--output", required=True, metavar="RUN_DIR", help="run folder to write")
    p.add_argument("--epochs", type=int, help="L-BFGS steps or Adam epochs (upper bound)")
    p.add_argument("--time-limit", type=float, help="stop training after this many seconds")
    p.add_argument("--width", type=int, help="neurons per hidden layer (default 64)")
    p.add_argument("--depth", type=int, help="hidden layers (default 3)")
    p.add_argument("--activation", choices=["silu", "softplus", "tanh"])
    p.add_argument("--variant", choices=["stress", "energy"],
                   help="network gives the stress (default) or an energy whose gradient is the stress")
    p.add_argument("--tangent-weight", type=float, help="weight of the tangent in the loss (default 1)")
    p.add_argument("--optimizer", choices=["lbfgs", "adam"])
    p.add_argument("--held-out-fraction", type=float, help="share of samples kept for testing (default 0.2)")
    p.add_argument("--seed", type=int)
    p.add_argument("--dtype", choices=["float32", "float64"], help="training precision (default float64)")
    p.add_argument("--num-threads", type=int, help="torch CPU threads while training (default 1)")
    p.set_defaults(func=_train_surrogate)


def _add_deploy_surrogate(sub: argparse._SubParsersAction) -> None:
    """The `scalelink deploy-surrogate` subcommand and its flags."""
    p = sub.add_parser("deploy-surrogate", help="write a trained surrogate as a constitutive model file")
    p.add_argument("run_dir", metavar="RUN_DIR", help="folder written by `scalelink train-surrogate`")
    p.add_argument("-o", "--output", required=True, help="model file to write (e.g. surrogate.pt)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64", help="deployed precision")
    p.add_argument("--tangent-dtype", choices=["float32", "float64"], default=None,
                   help="precision of the tangent alone (float32 with --dtype float64: float64 stress for tight "
                        "Newton tolerances, tangent about twice as fast; default: --dtype)")
    p.set_defaults(func=_deploy_surrogate)


def _add_train_committee(sub: argparse._SubParsersAction) -> None:
    """The `scalelink train-committee` subcommand and its flags."""
    p = sub.add_parser("train-committee", help="train N potentials and deploy them as one committee file")
    p.add_argument("config", nargs="?", help="YAML configuration of each member (optional if --data is given)")
    p.add_argument("-o", "--output", required=True, metavar="RUN_DIR", help="committee run folder")
    p.add_argument("--members", type=int, default=4, help="committee size (default 4)")
    p.add_argument("--bootstrap", type=float, help="each member trains on this random fraction of the data")
    p.add_argument("--data", nargs="+", help="ASE-readable files with energies and forces")
    p.add_argument("--species", nargs="+", help="chemical symbols in model order")
    p.add_argument("--epochs", type=int, help="maximum epochs per member")
    p.add_argument("--time-limit", type=float, help="training seconds per member")
    p.add_argument("--seed", type=int, help="seed of member 0 (member k: seed + k)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64", help="deployed precision")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_train_committee)


def _add_learn(sub: argparse._SubParsersAction) -> None:
    """The `scalelink learn` subcommand and its flags."""
    p = sub.add_parser("learn", help="active learning: committee, LAMMPS exploration, reference labels, retrain")
    p.add_argument("config", nargs="?", help="YAML of scalelink.campaigns.active_learning.LearnConfig keys")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for everything the loop writes")
    p.add_argument("--quick", action="store_true", help="small settings finishing in about a minute")
    p.add_argument("--iterations", type=int, help="committees trained at most")
    p.add_argument("--labeller", help="reference: emt (default), eam, eam:PATH or module:factory")
    p.add_argument("--temperature", type=float, help="target MD temperature in K")
    p.add_argument("--members", type=int, help="committee size")
    p.add_argument("--train-seconds", type=float, help="training seconds per member and iteration")
    p.add_argument("--md-steps", type=int, help="exploration MD steps per iteration")
    p.add_argument("--threshold", type=float, help="collect frames above this force deviation (eV/Å)")
    p.add_argument("--seed", type=int)
    p.add_argument("--control", action="store_true",
                   help="also train a control committee on the initial data only, same budget (about doubles training)")
    p.set_defaults(func=_learn)


_COMMANDS = (_add_train, _add_deploy, _add_evaluate, _add_make_data,
             _add_demo, _add_sample_micro, _add_train_surrogate, _add_deploy_surrogate,
             _add_train_committee, _add_learn, add_design_parser)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scalelink", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for add_command in _COMMANDS:
        add_command(sub)
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
    except OSError as exc:  # a file or folder the command reads or writes: the message names it
        print(f"scalelink {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
