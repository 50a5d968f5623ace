"""The model file kinds of the mesoscale side, ``free_energy`` and ``generator``: what comes back
from a file is the model that was written, and bad files fail with the file, the value and the fix.

References: the numpy Redlich–Kister of ``scalelink.mesoscale.free_energy`` (a separate
implementation of the same closed form), the regular solution written out here, central finite
differences of ``f`` read from the file, the in-memory decoder, and the UFL derivative the
Cahn–Hilliard solver builds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from scalelink.bridge import keys
from scalelink.bridge.errors import DataError, ModelFileError
from scalelink.bridge.model_file import ModelMetadata, load_model, read_metadata
from scalelink.bridge.units import BOLTZMANN_EV_PER_K
from scalelink.mesoscale.deploy import load_free_energy, save_free_energy
from scalelink.mesoscale.free_energy import RedlichKisterFit, fit_redlich_kister
from test_model_file import _rewrite_metadata

BIN = Path(sys.executable).parent


def cuni_like_fit() -> RedlichKisterFit:
    """A three-term fit with temperature-dependent coefficients, made from known Δμ data."""
    rng = np.random.default_rng(1)
    c = rng.uniform(0.03, 0.97, 80)
    t = rng.choice([500.0, 700.0, 900.0], 80)
    interaction = [(0.11, 2.3e-5), (-0.014, 1.7e-5), (0.006, -3e-6)]
    mu = np.array([fit_like(interaction, (-0.91, 4.5e-5), ti).chemical_potential(ci) for ci, ti in zip(c, t)])
    return fit_redlich_kister(c, t, mu, order=3)


def fit_like(interaction, reference, temperature):
    return RedlichKisterFit(reference=reference, interaction=interaction, composition_range=(0.01, 0.99),
                            temperature_range=(400.0, 1000.0), rmse=0.0, max_error=0.0).at(temperature)


@pytest.fixture(scope="module")
def free_energy_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[RedlichKisterFit, str]:
    fit = cuni_like_fit()
    path = str(tmp_path_factory.mktemp("fe") / "cuni_free_energy.pt")
    save_free_energy(fit, path, species=["Cu", "Ni"])
    return fit, path


# ---- free energy ------------------------------------------------------------------------


def test_free_energy_round_trip_equals_the_numpy_model(free_energy_file) -> None:
    fit, path = free_energy_file
    deployed = load_free_energy(path)
    assert deployed.fit == fit
    meta = read_metadata(path)
    assert (meta.kind, meta.species, meta.units, meta.dtype) == ("free_energy", ["Cu", "Ni"], "eV/atom", "float64")
    assert meta.outputs == [keys.FREE_ENERGY_DENSITY, keys.CHEMICAL_POTENTIAL]
    assert meta.free_energy.temperature_unit == "K" and meta.free_energy.boltzmann == BOLTZMANN_EV_PER_K
    lo, hi = fit.composition_range
    c = np.linspace(lo, hi, 401)
    for t in (500.0, 640.0, 900.0):
        f, mu = deployed.evaluate(c, t)
        reference = fit.at(t)
        np.testing.assert_allclose(f, reference.density(c), rtol=0, atol=1e-12)
        np.testing.assert_allclose(mu, reference.chemical_potential(c), rtol=0, atol=1e-12)
    # the module alone, as a consumer without this package would call it (torch.jit.load)
    module, _ = load_model(path)
    ct = torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64)
    f, mu = module(ct, torch.tensor([500.0, 700.0, 900.0], dtype=torch.float64))
    assert f.dtype == mu.dtype == torch.float64 and f.shape == mu.shape == (3,)
    np.testing.assert_allclose(mu.numpy(), [fit.at(t).chemical_potential(x) for x, t in
                                            zip([0.2, 0.5, 0.8], [500.0, 700.0, 900.0])], rtol=0, atol=1e-12)


def test_regular_solution_from_the_file_matches_its_closed_form(tmp_path: Path) -> None:
    """One L₀ term: f = Δg c + k_BT[c ln c + (1−c) ln(1−c)] + L₀ c(1−c), written out here."""
    fit = RedlichKisterFit(reference=(-0.3, 1e-5), interaction=[(0.12, -2e-5)], composition_range=(0.02, 0.98),
                           temperature_range=(600.0, 600.0), rmse=0.0, max_error=0.0)
    save_free_energy(fit, tmp_path / "regular.pt", species=["Cu", "Ni"])
    c, t, kt = np.linspace(0.02, 0.98, 97), 600.0, BOLTZMANN_EV_PER_K * 600.0
    dg, l0 = -0.3 + 1e-5 * t, 0.12 - 2e-5 * t
    f, mu = load_free_energy(tmp_path / "regular.pt").evaluate(c, t)
    np.testing.assert_allclose(f, dg * c + kt * (c * np.log(c) + (1 - c) * np.log(1 - c)) + l0 * c * (1 - c),
                               rtol=0, atol=1e-13)
    np.testing.assert_allclose(mu, dg + kt * np.log(c / (1 - c)) + l0 * (1 - 2 * c), rtol=0, atol=1e-13)


def test_chemical_potential_from_the_file_is_the_derivative_of_f(free_energy_file) -> None:
    fit, path = free_energy_file
    deployed = load_free_energy(path)
    lo, hi = fit.composition_range
    c = np.linspace(lo + 1e-3, hi - 1e-3, 57)
    h = 1e-5
    for t in (500.0, 900.0):
        _, mu = deployed.evaluate(c, t)
        f_plus, _ = deployed.evaluate(c + h, t)
        f_minus, _ = deployed.evaluate(c - h, t)
        difference = (f_plus - f_minus) / (2 * h)
        # central differences: O(h²) f''' plus round-off 1e-16/h; both below 1e-7 eV/atom here
        np.testing.assert_allclose(mu, difference, rtol=0, atol=1e-7)
        assert np.ptp(mu) > 0.01  # 1e5 times the tolerance: a derivative the check can tell apart


def test_free_energy_outside_its_ranges_is_refused(free_energy_file) -> None:
    fit, path = free_energy_file
    deployed = load_free_energy(path)
    with pytest.raises(DataError, match=r"cuni_free_energy\.pt.*compositions \[0\.001, 0\.5\] leave the range"):
        deployed.evaluate([0.001, 0.5], 600.0)
    with pytest.raises(DataError, match=r"temperatures \[1200, 1200\] leave the range \[500, 900\]"):
        deployed.evaluate([0.5], 1200.0)
    with pytest.raises(DataError, match="outside the sampled range"):
        deployed.at(1200.0)


def test_free_energy_file_errors_name_the_file_the_value_and_the_fix(free_energy_file, tmp_path: Path) -> None:
    _, path = free_energy_file
    # missing metadata: the object, and one key of it
    no_object = _rewrite_metadata(path, tmp_path / "no_object.pt", lambda raw: raw.pop(keys.FREE_ENERGY))
    with pytest.raises(ModelFileError, match=r"no_object\.pt: a model of kind 'free_energy' needs its 'free_energy'"):
        load_free_energy(no_object)
    no_range = _rewrite_metadata(path, tmp_path / "no_range.pt",
                                lambda raw: raw[keys.FREE_ENERGY].pop("temperature_range"))
    with pytest.raises(ModelFileError, match=r"no_range\.pt: metadata 'free_energy' lacks \['temperature_range'\]"):
        load_free_energy(no_range)
    # values out of range
    wide = _rewrite_metadata(path, tmp_path / "wide.pt",
                            lambda raw: raw[keys.FREE_ENERGY].update(composition_range=[0.0, 1.0]))
    with pytest.raises(ModelFileError, match=r"wide\.pt: free_energy composition_range \[0\.0, 1\.0\] must be"):
        load_free_energy(wide)
    celsius = _rewrite_metadata(path, tmp_path / "celsius.pt",
                              lambda raw: raw[keys.FREE_ENERGY].update(temperature_unit="C"))
    with pytest.raises(ModelFileError, match=r"celsius\.pt: .*\('eV/atom', 'C'\).*convert the coefficients"):
        load_free_energy(celsius)
    # an edited coefficient: the module and the closed form disagree
    def edit(raw):
        raw[keys.FREE_ENERGY]["interaction"][0][0] += 1e-6
    edited = _rewrite_metadata(path, tmp_path / "edited.pt", edit)
    with pytest.raises(ModelFileError, match=r"edited\.pt.*disagree at c = .*save_free_energy"):
        load_free_energy(edited)
    # not an archive
    junk = tmp_path / "junk.pt"
    junk.write_bytes(Path(path).read_bytes()[:500])
    with pytest.raises(ModelFileError, match=r"junk\.pt.*not a readable TorchScript archive"):
        load_free_energy(junk)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_free_energy(tmp_path / "nothing.pt")


def test_the_kinds_refuse_each_other(free_energy_file, tmp_path: Path) -> None:
    from scalelink.bridge.inference import ConstitutiveEngine
    from scalelink.microstructure import PhaseDecoder, load_generator, save_generator

    _, path = free_energy_file
    generator = tmp_path / "generator.pt"
    save_generator(PhaseDecoder(4, 8, 8), generator, threshold=0.5, volume_fraction=0.4)
    with pytest.raises(ModelFileError, match=r"generator\.pt' holds a model of kind 'generator', not a free energy"):
        load_free_energy(generator)
    with pytest.raises(ModelFileError, match=r"holds a model of kind 'free_energy', not an image generator"):
        load_generator(path)
    with pytest.raises(ModelFileError, match=r"kind 'free_energy', not a constitutive model"):
        ConstitutiveEngine(path)
    # a metadata object of another kind, or a wrong kind string, is refused by the bridge itself
    swapped = _rewrite_metadata(path, tmp_path / "swapped.pt", lambda raw: raw.update(kind="generator"))
    with pytest.raises(ModelFileError, match=r"swapped\.pt: a model of kind 'generator' carries no 'free_energy'"):
        load_model(swapped)
    unknown = _rewrite_metadata(path, tmp_path / "unknown.pt", lambda raw: raw.update(kind="phase_field"))
    with pytest.raises(ModelFileError, match=r"unknown\.pt: model kind 'phase_field' is not one of"):
        load_model(unknown)


def test_free_energy_metadata_is_checked_when_written(tmp_path: Path) -> None:
    fit = cuni_like_fit()
    with pytest.raises(ModelFileError, match=r"two distinct species .* got \['Cu'\]"):
        save_free_energy(fit, tmp_path / "f.pt", species=["Cu"])
    dimensionless = RedlichKisterFit(reference=(0.0, 0.0), interaction=[(3.0, 0.0)], composition_range=(0.1, 0.9),
                                     temperature_range=(1.0, 1.0), rmse=0.0, max_error=0.0, boltzmann=1.0)
    with pytest.raises(ModelFileError, match=r"boltzmann 1\.0 is not k_B"):
        save_free_energy(dimensionless, tmp_path / "f.pt", species=["A", "B"])
    info = read_metadata_of(fit, tmp_path).free_energy
    with pytest.raises(ModelFileError, match="evaluated in float64"):
        ModelMetadata(species=["Cu", "Ni"], cutoff=0.0, num_layers=0, dtype="float32", kind="free_energy",
                      units="eV/atom", outputs=list(keys.FREE_ENERGY_OUTPUTS), free_energy=info)
    assert not (tmp_path / "f.pt").exists()


def read_metadata_of(fit: RedlichKisterFit, folder: Path) -> ModelMetadata:
    save_free_energy(fit, folder / "ok.pt", species=["Cu", "Ni"])
    return read_metadata(folder / "ok.pt")


@pytest.mark.fenicsx
def test_the_cahn_hilliard_form_from_the_file_equals_the_module(free_energy_file) -> None:
    """``f'`` as the solver writes it (UFL derivative of the closed form rebuilt from the file),
    interpolated at mesh nodes, against the file's TorchScript ``∂f/∂c`` there."""
    import mpi4py.MPI as MPI
    import ufl
    from dolfinx import fem, mesh

    _, path = free_energy_file
    deployed = load_free_energy(path)
    lo, hi = deployed.fit.composition_range
    domain = mesh.create_interval(MPI.COMM_WORLD, 64, [lo + 1e-3, hi - 1e-3])
    space = fem.functionspace(domain, ("Lagrange", 1))
    c = fem.Function(space)
    c.interpolate(lambda x: x[0])
    cv = ufl.variable(c)
    model = deployed.at(700.0)
    derivative = fem.Function(space)
    derivative.interpolate(fem.Expression(ufl.diff(model.density(cv, ufl.ln), cv),
                                          space.element.interpolation_points))
    _, mu = deployed.evaluate(c.x.array, 700.0)
    np.testing.assert_allclose(derivative.x.array, mu, rtol=0, atol=1e-12)


@pytest.mark.lammps
@pytest.mark.parametrize("kind", ["free_energy", "generator"])
def test_pair_style_refuses_the_mesoscale_kinds(free_energy_file, kind: str, tmp_path: Path) -> None:
    from scalelink.microstructure import PhaseDecoder, save_generator

    if kind == "free_energy":
        model = free_energy_file[1]
    else:
        model = str(tmp_path / "generator.pt")
        save_generator(PhaseDecoder(4, 8, 8), model, threshold=0.5, volume_fraction=0.4)
    (tmp_path / "in.lmp").write_text(
        "units metal\natom_style atomic\nlattice fcc 3.6\nregion box block 0 2 0 2 0 2\ncreate_box 2 box\n"
        f"create_atoms 1 box\nmass * 60.0\npair_style scalelink\npair_coeff * * {model} Cu Ni\nrun 0\n")
    proc = subprocess.run([str(BIN / "lmp"), "-in", "in.lmp", "-log", "none"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    errors = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "ERROR" in ln]
    assert proc.returncode != 0 and errors, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert any(f"holds a '{kind}' model, not an interatomic potential" in ln and "kind 'potential'" in ln
               for ln in errors), errors
