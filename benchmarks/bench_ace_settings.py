"""Short ACE trainings on one mlearn element, for comparing settings side by side.

    python benchmarks/bench_ace_settings.py Mo --minutes 10 --batch-size 1 --lr 2e-3
    python benchmarks/bench_ace_settings.py Si --minutes 10 --correlation 2 --channels 32

A lean loop over the trainer's parts (the ACE network, its feature scaling, reference energies,
graphs, `predict`), without checkpoints or the command line, so that settings the configuration
does not expose (readout widths, correlation order, the averaging window) can be compared in one
process per setting: loss ``we * mean((dE/N)^2) + wf * mean(dF^2)``, Adam (AMSGrad) with
gradients clipped at norm 10, the learning rate multiplied by 0.8 after 5 epochs without a lower
validation loss, an exponential moving average of the weights (the network validated and
scored). 10 % of the training file (a fixed random draw) is the validation set; `test.extxyz` is
scored once, at the end, with the energy zero refitted on the training residuals.

Prints one line every 10 epochs (validation and a fifth of the training set) and a final
``RESULT`` line with the test mean absolute errors (meV/atom, meV/Å). Run two at a time at most on
a two-core machine, one thread each, and compare settings only within one such pair or at equal
load: the budget is wall-clock time.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
from ase.io import read

from scalelink.potentials.ace import ACEPotential, fit_feature_scaling
from scalelink.training.data import atoms_to_data, make_loader, reference_energies
from scalelink.training.predict import predict

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("element", help="Cu, Mo or Si")
    p.add_argument("--data", type=Path, default=DATA, help="folder with <El>/{train,test}.extxyz")
    p.add_argument("--minutes", type=float, default=10.0, help="training wall-clock budget")
    p.add_argument("--we", type=float, default=10.0, help="energy weight (eV/atom squared)")
    p.add_argument("--wf", type=float, default=1.0, help="force weight ((eV/Å) squared)")
    p.add_argument("--huber", type=float, default=0.0,
                   help="force loss: Huber with this threshold (eV/Å), squares below it, linear above; 0: squares")
    p.add_argument("--final-we", type=float, default=0.0,
                   help="energy weight of a final stage (0: none); the stage also starts a new plateau schedule")
    p.add_argument("--final-fraction", type=float, default=0.25, help="share of the budget the final stage takes")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW decay; 0: Adam")
    p.add_argument("--ema", type=float, default=0.99, help="decay of the weight average per step")
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--lmax", type=int, default=3)
    p.add_argument("--correlation", type=int, default=3)
    p.add_argument("--four-body-lmax", type=int, default=None, help="highest degree of the four-body couplings")
    p.add_argument("--basis", type=int, default=8)
    p.add_argument("--radial-hidden", type=int, nargs="*", default=[32])
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    p.add_argument("--cutoff", type=float, default=5.0)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", type=Path, help="write the averaged network's state here")
    return p.parse_args()


def mean_errors(model: torch.nn.Module, graphs: list) -> tuple[float, float]:
    """Energy MAE per atom (meV/atom) and force-component MAE (meV/Å)."""
    energy, forces = [], []
    for batch in make_loader(graphs, 16, False, 0):
        pred = predict(model, batch, create_graph=False)
        energy.append(((pred.energy - batch.energy) / batch.natoms).detach().double().abs())
        forces.append((pred.forces - batch.forces).detach().double().abs().flatten())
    return 1e3 * float(torch.cat(energy).mean()), 1e3 * float(torch.cat(forces).mean())


def main() -> None:
    a = parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dtype = getattr(torch, a.dtype)
    root = a.data / a.element
    frames, test_frames = read(root / "train.extxyz", ":"), read(root / "test.extxyz", ":")
    species = [a.element]
    order = np.random.default_rng(a.seed).permutation(len(frames))
    n_val = max(1, len(order) // 10)
    val = [atoms_to_data(frames[i], species, a.cutoff, dtype) for i in order[:n_val]]
    fit_frames = [frames[i] for i in order[n_val:]]
    fit = [atoms_to_data(x, species, a.cutoff, dtype) for x in fit_frames]
    test = [atoms_to_data(x, species, a.cutoff, dtype) for x in test_frames]
    neighbours = sum(g.edge_index.shape[1] for g in fit) / sum(g.num_nodes for g in fit)
    force_scale = float(torch.cat([g.forces for g in fit]).double().pow(2).mean().sqrt())
    model = ACEPotential(
        1, a.cutoff, channels=a.channels, lmax=a.lmax, num_basis=a.basis, radial_hidden=a.radial_hidden,
        hidden=a.hidden, correlation=a.correlation, four_body_lmax=a.four_body_lmax, avg_num_neighbors=neighbours,
        energy_shift=list(reference_energies(fit_frames, species)), energy_scale=force_scale,
    ).to(dtype)
    fit_feature_scaling(model, fit)
    print(f"{a.element}: {len(fit)} training, {len(val)} validation structures, "
          f"{sum(p.numel() for p in model.parameters())} parameters, {model.num_descriptors} invariants", flush=True)
    average = copy.deepcopy(model)
    if a.weight_decay > 0:
        optimizer = torch.optim.AdamW(model.parameters(), lr=a.lr, amsgrad=True, weight_decay=a.weight_decay)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=a.lr, amsgrad=True)
    schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.8, patience=5)
    loader = make_loader(fit, a.batch_size, True, a.seed)
    start, epoch, budget = time.time(), 0, 60.0 * a.minutes
    final = False
    while time.time() - start < budget:
        epoch += 1
        if a.final_we > 0 and not final and time.time() - start >= (1.0 - a.final_fraction) * budget:
            final, a.we = True, a.final_we
            schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.8, patience=5)
            print(f"epoch {epoch}: final stage, energy weight {a.we}", flush=True)
        model.train()
        for batch in loader:
            optimizer.zero_grad()
            pred = predict(model, batch, create_graph=True)
            loss = a.we * (((pred.energy - batch.energy) / batch.natoms) ** 2).mean()
            if a.huber > 0:
                # twice Huber's loss: equal to the square below the threshold
                force_loss = 2.0 * torch.nn.functional.huber_loss(pred.forces, batch.forces, delta=a.huber)
            else:
                force_loss = ((pred.forces - batch.forces) ** 2).mean()
            loss = loss + a.wf * force_loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            with torch.no_grad():
                for kept, trained in zip(average.parameters(), model.parameters()):
                    kept.mul_(a.ema).add_(trained, alpha=1.0 - a.ema)
        val_e, val_f = mean_errors(average, val)
        schedule.step(a.we * (val_e / 1e3) ** 2 + a.wf * (val_f / 1e3) ** 2)
        if epoch % 10 == 0 or time.time() - start >= budget:
            fit_e, fit_f = mean_errors(average, fit[::5])
            print(f"epoch {epoch} {time.time() - start:.0f} s lr {optimizer.param_groups[0]['lr']:.1e} "
                  f"validation {val_e:.2f} / {val_f:.1f}, training/5 {fit_e:.2f} / {fit_f:.1f}", flush=True)
    with torch.no_grad():
        residual = []
        for batch in make_loader(fit, 16, False, 0):
            with torch.enable_grad():
                pred = predict(average, batch, create_graph=False)
            residual.append(((batch.energy - pred.energy.detach()) / batch.natoms).double())
        average.energy_shift += float(torch.cat(residual).mean())
    test_e, test_f = mean_errors(average, test)
    if a.save is not None:
        torch.save(average.state_dict(), a.save)
    print(f"RESULT {a.element} epochs {epoch} test E {test_e:.2f} meV/atom F {test_f:.1f} meV/A settings {vars(a)}", flush=True)


if __name__ == "__main__":
    main()
