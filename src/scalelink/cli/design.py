"""``scalelink design CONFIG.yaml``: Bayesian optimisation of a microstructure design.

Proposes batches of designs (one per MPI rank unless ``batch_size`` says otherwise), runs the
micro model for each (periodic RVE, atomistic RVE or a ``module:function``), resumes from the
state file after a kill and plots the convergence. Run under ``mpirun -n K`` to evaluate K
designs at once. The configuration keys are those of :mod:`scalelink.design.config`.
"""

from __future__ import annotations

import argparse

__all__ = ["add_design_parser"]


def _design(args: argparse.Namespace) -> int:
    from scalelink.design.config import load_design_config
    from scalelink.design.runner import run_design, summary

    config = load_design_config(args.config, budget=args.budget, state=args.state, plot=args.plot,
                                batch_size=args.batch_size, seed=args.seed)
    result = run_design(config, progress=not args.quiet)
    if result is not None:
        print(summary(result, config.variables, config.objective))
        print(f"state: {result.state_path}" + (f"; convergence plot: {result.plot_path}" if result.plot_path else ""))
    return 0


def add_design_parser(sub: argparse._SubParsersAction) -> None:
    """Declare the ``design`` subcommand on the ``scalelink`` parser's subparsers."""
    p = sub.add_parser("design", help="Bayesian optimisation of a microstructure design (resumable, MPI batches)")
    p.add_argument("config", help="YAML of scalelink.design.config keys (variables, model, objective, constraints, ...)")
    p.add_argument("--budget", type=int, help="evaluations in all (a resumed study continues to this count)")
    p.add_argument("--batch-size", type=int, help="designs per batch (default: one per MPI rank)")
    p.add_argument("--state", help="state file to write and resume from")
    p.add_argument("--plot", help="convergence plot PNG")
    p.add_argument("--seed", type=int)
    p.add_argument("--quiet", action="store_true", help="no line per batch")
    p.set_defaults(func=_design)
