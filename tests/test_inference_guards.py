"""The ASE calculator and the constitutive engine refuse NaN and infinite numbers in and out,
say clearly when CUDA is asked for without a GPU, and a surrogate evaluated far outside its
training strains warns once with the range."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk

from scalelink.bridge import keys
from scalelink.bridge.ase import ScaleLinkCalculator
from scalelink.bridge.errors import ConfigError, NonFiniteError
from scalelink.bridge.inference import ConstitutiveEngine
from scalelink.potentials.gnn import GNNPotential
from scalelink.surrogates.constitutive import ConstitutiveMLP, export_constitutive
from scalelink.training.export import export_potential

warnings.filterwarnings("ignore", category=FutureWarning)


@pytest.fixture(scope="module")
def potential(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("potential") / "cuni.pt"
    export_potential(GNNPotential(2, 4.0, 1, 8, 4, avg_num_neighbors=12.0, energy_scale=0.3), ["Cu", "Ni"], path)
    return path


def _poisoned(path: Path, out: Path) -> Path:
    """``path`` with one weight set to NaN, written past the checks of ``save_model``."""
    extra = {keys.METADATA_FILE: ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    with torch.no_grad():
        next(p for p in module.parameters() if p.dim() == 2)[0, 0] = float("nan")
    torch.jit.save(module, str(out), _extra_files=extra)
    return out


def _crystal():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.symbols[::3] = "Ni"
    return atoms


def test_calculator_refuses_a_nan_position(potential: Path) -> None:
    atoms = _crystal()
    atoms.positions[5, 1] = np.nan
    atoms.calc = ScaleLinkCalculator(potential)
    with pytest.raises(NonFiniteError, match=r"atoms \[5\] \(1 of 32\) have NaN or infinite positions"):
        atoms.get_potential_energy()


def test_calculator_refuses_non_finite_output(potential: Path, tmp_path: Path) -> None:
    atoms = _crystal()
    atoms.calc = ScaleLinkCalculator(_poisoned(potential, tmp_path / "nan.pt"))
    with pytest.raises(NonFiniteError, match=r"returned a NaN or infinite energy.*weights that are not finite"):
        atoms.get_potential_energy()
    overlapping = _crystal()
    overlapping.positions[1] = overlapping.positions[0]
    overlapping.calc = ScaleLinkCalculator(potential)
    with pytest.raises(NonFiniteError, match=r"non-finite forces, first \[0, 1, .*closest pair: atoms 0 and 1 at 0 Å"):
        overlapping.get_forces()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when no GPU is visible")
def test_calculator_on_cuda_without_a_gpu_says_so(potential: Path) -> None:
    with pytest.raises(ConfigError, match=r"'cuda' was requested but torch sees no CUDA GPU"):
        ScaleLinkCalculator(potential, device="cuda")


def _surrogate(path: Path) -> Path:
    torch.manual_seed(1)
    mlp = ConstitutiveMLP(3, width=8, depth=2).double()
    strain = np.random.default_rng(0).uniform(-1e-2, 1e-2, (64, 3))
    mlp.set_normalisation(strain, 100.0 * strain)
    export_constitutive(mlp, path)
    return path


def test_engine_refuses_non_finite_output(tmp_path: Path) -> None:
    engine = ConstitutiveEngine(_poisoned(_surrogate(tmp_path / "c.pt"), tmp_path / "nan.pt"))
    with pytest.raises(NonFiniteError, match=r"returned NaN or inf stress/tangent at 4 of 4 points \(first: point 0"):
        engine.evaluate(np.zeros((4, 3)))


def test_engine_warns_once_far_outside_the_training_strains(tmp_path: Path) -> None:
    engine = ConstitutiveEngine(_surrogate(tmp_path / "c.pt"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        engine.evaluate(np.full((5, 3), 0.025))  # outside the range, but by less than its width
    far = np.zeros((5, 3))
    far[2, 1] = 0.5  # 50 times the amplitude sampled
    with pytest.warns(RuntimeWarning, match=r"component 1 reached 0.5, trained on \[-0.0\d+, 0.0\d+\]"):
        engine.evaluate(far)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        engine.evaluate(far)
