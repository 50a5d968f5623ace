"""Constitutive surrogates: forward-mode tangent, model file kind, engine, sampling, training, CLI."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from scalelink.bridge import keys
from scalelink.bridge.errors import ConfigError, ModelFileError
from scalelink.bridge.inference import ConstitutiveEngine, select_device
from scalelink.bridge.model_file import ModelMetadata, load_model, read_metadata, save_model
from scalelink.fe2.micro import LinearElastic, MicroModel, check_strain_batch, taylor_test
from scalelink.fe2.sampling import sample_micro_model
from scalelink.fe2.surrogate import SurrogateMicroModel
from scalelink.fe2.tensors import isotropic_stiffness
from scalelink.cli.main import main
from scalelink.surrogates.constitutive import (
    ConstitutiveMLP,
    DeployedConstitutive,
    DeployedEnergyConstitutive,
    export_constitutive,
)
from scalelink.surrogates.surrogate_trainer import SurrogateConfig, network_tangent, train_surrogate

warnings.filterwarnings("ignore", category=FutureWarning)


class CubicElastic(MicroModel):
    """Hyperelastic ``W = ½ ε·Cε + ¼ β |ε|⁴``: ``σ = Cε + β|ε|²ε``, ``C_t = C + β(|ε|² I + 2 ε⊗ε)``."""

    def __init__(self, strain_size: int = 3, beta: float = 4.0e5) -> None:
        self.strain_size = strain_size
        self.c = isotropic_stiffness(young=200.0, poisson=0.3, strain_size=strain_size)
        self.beta = beta

    def evaluate(self, strain: np.ndarray, *, time_step: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        e = check_strain_batch(strain, self.strain_size)
        sq = np.einsum("ni,ni->n", e, e)
        stress = e @ self.c + self.beta * sq[:, None] * e
        eye = np.eye(self.strain_size)
        tangent = self.c + self.beta * (sq[:, None, None] * eye + 2.0 * np.einsum("ni,nj->nij", e, e))
        return stress, tangent


def make_cubic(beta: float = 4.0e5) -> CubicElastic:
    """Factory for ``--module``."""
    return CubicElastic(beta=float(beta))


def _random_mlp(m: int, activation: str, seed: int = 0, variant: str = "stress") -> ConstitutiveMLP:
    torch.manual_seed(seed)
    mlp = ConstitutiveMLP(m, width=8, depth=2, activation=activation, variant=variant).double()
    rng = np.random.default_rng(seed)
    strain = rng.uniform(-1e-2, 1e-2, (64, m)) + 1e-3
    mlp.set_normalisation(strain, 50.0 * strain + rng.normal(size=(64, m)))
    return mlp


@pytest.mark.parametrize("m", [3, 6])
@pytest.mark.parametrize("activation", ["silu", "softplus", "tanh"])
def test_forward_mode_tangent_equals_autograd_and_finite_differences(m: int, activation: str) -> None:
    mlp = _random_mlp(m, activation)
    deployed = torch.jit.script(DeployedConstitutive(mlp, torch.float64))
    x = torch.from_numpy(np.random.default_rng(1).uniform(-1.5e-2, 1.5e-2, (40, m)))
    stress, tangent = deployed(x)
    reference = torch.func.vmap(torch.func.jacrev(mlp))(x).detach()
    scale = reference.abs().max()
    assert torch.allclose(stress, mlp(x).detach(), rtol=0, atol=1e-12 * stress.abs().max())
    assert (tangent - reference).abs().max() <= 1e-12 * scale
    h = 1e-6
    fd = torch.stack([(deployed(x + h * e)[0] - deployed(x - h * e)[0]) / (2 * h) for e in torch.eye(m, dtype=x.dtype)], 2)
    assert (tangent - fd).abs().max() <= 1e-6 * scale


@pytest.mark.parametrize(("m", "activation"), [(6, "silu"), (3, "softplus"), (6, "tanh")])
def test_energy_variant_hessian_equals_double_autograd_and_is_symmetric(m: int, activation: str) -> None:
    mlp = _random_mlp(m, activation, variant="energy")
    deployed = torch.jit.script(DeployedEnergyConstitutive(mlp, torch.float64))
    x = torch.from_numpy(np.random.default_rng(1).uniform(-1.5e-2, 1.5e-2, (40, m)))
    stress, tangent = deployed(x)
    ref_stress, ref_tangent = network_tangent(mlp, x)  # reverse-mode twice through the energy
    scale = ref_tangent.abs().max()
    assert (stress - ref_stress).abs().max() <= 1e-12 * ref_stress.abs().max()
    assert (tangent - ref_tangent).abs().max() <= 1e-12 * scale
    assert (tangent - tangent.transpose(1, 2)).abs().max() <= 1e-13 * scale
    h = 1e-6
    fd = torch.stack([(deployed(x + h * e)[0] - deployed(x - h * e)[0]) / (2 * h) for e in torch.eye(m, dtype=x.dtype)], 2)
    assert (tangent - fd).abs().max() <= 1e-6 * scale


def test_constitutive_model_file_round_trip(tmp_path: Path) -> None:
    mlp = _random_mlp(6, "silu")
    path = tmp_path / "c.pt"
    export_constitutive(mlp, path, dtype="float32")
    meta = read_metadata(path)
    assert meta.kind == "constitutive" and meta.dtype == "float32"
    assert meta.outputs == list(keys.CONSTITUTIVE_OUTPUTS)
    info = meta.constitutive
    assert info is not None and info.strain_size == 6 and info.stress_unit == "GPa"
    assert info.architecture == {"type": "mlp", "width": 8, "depth": 2, "activation": "silu", "variant": "stress",
                                 "tangent_dtype": "float32"}
    np.testing.assert_allclose(info.strain_scale, mlp.strain_scale.numpy())
    module, _ = load_model(path)
    x = torch.full((3, 6), 2e-3, dtype=torch.float64)
    stress, tangent = module(x)
    assert stress.dtype == tangent.dtype == torch.float64
    np.testing.assert_allclose(stress.numpy(), mlp(x).detach().numpy(), rtol=1e-5, atol=1e-5 * float(stress.abs().max()))


def test_potential_metadata_unchanged_and_bad_constitutive_metadata() -> None:
    potential = ModelMetadata(species=["Cu"], cutoff=4.0, num_layers=1)
    assert keys.CONSTITUTIVE not in json.loads(potential.to_json())
    assert ModelMetadata.from_json(potential.to_json()) == potential
    with pytest.raises(ModelFileError, match="needs its 'constitutive' metadata"):
        ModelMetadata(species=[], cutoff=0.0, num_layers=0, kind="constitutive", units="GPa")
    raw = json.loads(potential.to_json())
    raw.update(kind="constitutive", units="GPa", outputs=["stress", "tangent"], species=[], cutoff=0.0, num_layers=0)
    raw[keys.CONSTITUTIVE] = {"strain_size": 3, "stress_unit": "GPa", "colour": "red"}
    with pytest.raises(ModelFileError, match=r"unknown keys \['colour'\]"):
        ModelMetadata.from_json(json.dumps(raw))


def _potential_file(path: Path) -> Path:
    class Dummy(torch.nn.Module):
        def forward(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return data

    save_model(torch.jit.script(Dummy()), path, ModelMetadata(species=["Cu"], cutoff=4.0, num_layers=1))
    return path


def test_engine_refuses_potential_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"kind 'potential', not a constitutive model.*deploy-surrogate"):
        ConstitutiveEngine(_potential_file(tmp_path / "pot.pt"))
    with pytest.raises(ModelFileError, match="does not exist"):
        ConstitutiveEngine(tmp_path / "missing.pt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when no GPU is visible")
def test_cuda_without_gpu_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    export_constitutive(_random_mlp(3, "silu"), path)
    with pytest.raises(ConfigError, match=r"'cuda' was requested but torch sees no CUDA GPU.*device='cpu'"):
        ConstitutiveEngine(path, device="cuda")
    assert select_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="not a device name"):
        select_device("tpu-ish")


@pytest.mark.gpu
def test_engine_on_gpu_matches_cpu(tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible to torch")
    path = tmp_path / "c.pt"
    export_constitutive(_random_mlp(6, "silu"), path)
    strain = np.random.default_rng(2).uniform(-1e-2, 1e-2, (1000, 6))
    cpu = ConstitutiveEngine(path).evaluate(strain)
    gpu = ConstitutiveEngine(path, device="auto", chunk_size=300)
    assert gpu.device.type == "cuda"
    for a, b in zip(cpu, gpu.evaluate(strain)):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12 * np.abs(a).max())


def test_engine_chunks_dtype_and_bad_input(tmp_path: Path) -> None:
    mlp = _random_mlp(3, "tanh")
    path = tmp_path / "c.pt"
    export_constitutive(mlp, path)
    strain = np.random.default_rng(3).uniform(-1e-2, 1e-2, (101, 3))
    whole = ConstitutiveEngine(path, chunk_size=1000).evaluate(strain)
    chunked = ConstitutiveEngine(path, chunk_size=7).evaluate(strain)
    threads = torch.get_num_threads()
    try:
        parallel = ConstitutiveEngine(path, chunk_size=9, num_threads=2).evaluate(strain)
    finally:
        torch.set_num_threads(threads)
    single = ConstitutiveEngine(path, dtype="float32").evaluate(strain)
    reference = mlp(torch.from_numpy(strain)).detach().numpy()
    np.testing.assert_allclose(whole[0], reference, rtol=1e-12, atol=1e-12 * np.abs(reference).max())
    for a, b, c in zip(whole, chunked, parallel):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-13 * np.abs(a).max())
        np.testing.assert_allclose(c, a, rtol=1e-13, atol=1e-13 * np.abs(a).max())
    np.testing.assert_allclose(single[1], whole[1], rtol=1e-4, atol=1e-5 * np.abs(whole[1]).max())
    with pytest.raises(ConfigError, match=r"shape \(3,\), expected \(num_points, 3\)"):
        ConstitutiveEngine(path).evaluate(strain[0])


def test_surrogate_micro_model_taylor_test(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    export_constitutive(_random_mlp(6, "softplus"), path)
    model = SurrogateMicroModel(path)
    assert model.strain_size == 6 and model.stress_unit == "GPa" and not model.has_state
    strain = np.random.default_rng(4).uniform(-1e-2, 1e-2, (25, 6))
    result = taylor_test(model, strain, steps=(4e-3, 2e-3, 1e-3, 5e-4))
    assert np.all(result.zeroth_rates > 0.9)
    assert np.all(result.first_rates > 1.9), result.first_rates
    assert result.passed()


def test_latin_hypercube_samples() -> None:
    model = LinearElastic(isotropic_stiffness(young=100.0, poisson=0.25, strain_size=3), stress_unit="MPa")
    bounds = [[-1e-2, -2e-2, 0.0], [1e-2, 0.0, 3e-2]]
    samples = sample_micro_model(model, num_samples=50, strain_range=bounds, seed=5)
    lower, upper = np.asarray(bounds)
    unit = (samples.strain - lower) / (upper - lower)
    for column in unit.T:  # one sample in each of the 50 slices of every component
        np.testing.assert_array_equal(np.sort(np.floor(column * 50)), np.arange(50))
    np.testing.assert_allclose(samples.stress, samples.strain @ model.stiffness)
    assert samples.stress_unit == "MPa" and samples.tangent.shape == (50, 3, 3)
    with pytest.raises(ConfigError, match="strain_range"):
        sample_micro_model(model, num_samples=10, strain_range=[[0.0, 0.0, 0.0], [1.0, -1.0, 1.0]])


@pytest.mark.parametrize(
    ("micro", "variant", "stress_limit", "tangent_limit"),
    [
        (LinearElastic(isotropic_stiffness(young=200.0, poisson=0.3, strain_size=3)), "stress", 0.01, 0.03),
        (CubicElastic(), "stress", 0.01, 0.03),
        (CubicElastic(), "energy", 0.01, 0.03),
    ],
    ids=["linear", "cubic", "cubic-energy"],
)
def test_training_reaches_held_out_accuracy(micro: MicroModel, variant: str, stress_limit: float,
                                            tangent_limit: float, tmp_path: Path) -> None:
    data = tmp_path / "s.npz"
    sample_micro_model(micro, num_samples=400, strain_range=1e-2, seed=6).save(data)
    config = SurrogateConfig(width=16, depth=2, epochs=200, time_limit=4.0, seed=1, variant=variant)
    result = train_surrogate(data, tmp_path / "run", config)
    held_out = result.metrics["held_out"]
    assert held_out["num_samples"] == 80
    assert held_out["stress_relative_rmse"] < stress_limit, held_out
    assert held_out["tangent_relative_rmse"] < tangent_limit, held_out
    # an independent check: the deployed file against the closed form on fresh strains
    export_constitutive(result.model, tmp_path / "m.pt")
    strain = np.random.default_rng(7).uniform(-8e-3, 8e-3, (200, 3))
    stress, tangent = SurrogateMicroModel(tmp_path / "m.pt").evaluate(strain)
    exact, _ = micro.evaluate(strain)
    assert np.linalg.norm(stress - exact) / np.linalg.norm(exact) < 2 * stress_limit
    if variant == "energy":
        np.testing.assert_allclose(tangent, np.swapaxes(tangent, 1, 2), rtol=0, atol=1e-12 * np.abs(tangent).max())


def test_adam_training_and_bad_settings(tmp_path: Path) -> None:
    data = tmp_path / "s.npz"
    micro = LinearElastic(isotropic_stiffness(young=200.0, poisson=0.3, strain_size=6))
    sample_micro_model(micro, num_samples=200, strain_range=1e-2, method="uniform", seed=9).save(data)
    config = SurrogateConfig(width=16, depth=2, optimizer="adam", learning_rate=2e-2, batch_size=32,
                             epochs=400, time_limit=2.5, tangent_weight=0.5)
    held_out = train_surrogate(data, tmp_path / "run", config).metrics["held_out"]
    assert held_out["stress_relative_rmse"] < 0.1, held_out
    with pytest.raises(ConfigError, match=r"optimizer='sgd'.*held_out_fraction=1.5"):
        SurrogateConfig(optimizer="sgd", held_out_fraction=1.5)


def test_cli_sample_train_deploy_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    factory_file = tmp_path / "my_micro.py"
    factory_file.write_text(f"from {__name__} import make_cubic  # noqa: F401\n")
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = tmp_path / "spec.yaml"
    spec.write_text("module: my_micro:make_cubic\nmodule_kwargs: {beta: 2.0e5}\nnum_samples: 300\n")
    data, run, model = tmp_path / "s.npz", tmp_path / "run", tmp_path / "surrogate.pt"
    assert main(["sample-micro", str(data), "--spec", str(spec), "--strain-range", "0.01", "--seed", "3"]) == 0
    assert main(["train-surrogate", str(data), "-o", str(run), "--width", "16", "--depth", "2",
                 "--time-limit", "4", "--seed", "2"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["held_out"]["stress_relative_rmse"] < 0.02
    assert main(["deploy-surrogate", str(run), "-o", str(model), "--dtype", "float32"]) == 0
    surrogate = SurrogateMicroModel(model)
    assert read_metadata(model).dtype == "float32"
    strain = np.random.default_rng(8).uniform(-8e-3, 8e-3, (100, 3))
    exact, _ = CubicElastic(beta=2.0e5).evaluate(strain)
    assert np.linalg.norm(surrogate.evaluate(strain)[0] - exact) / np.linalg.norm(exact) < 0.04
    mixed = tmp_path / "mixed.pt"
    assert main(["deploy-surrogate", str(run), "-o", str(mixed), "--tangent-dtype", "float32"]) == 0
    assert read_metadata(mixed).dtype == "float64"
    assert read_metadata(mixed).constitutive.architecture["tangent_dtype"] == "float32"
    assert main(["sample-micro", str(tmp_path / "x.npz"), "--model", "linear_elastic"]) == 2
    assert main(["train-surrogate", str(tmp_path / "none.npz"), "-o", str(run)]) == 2
    assert os.path.isfile(data)


@pytest.mark.fenicsx
def test_float32_tangent_keeps_the_float64_newton_solution(tmp_path: Path) -> None:
    """float64 stress with a float32 tangent: the same stress bit for bit, the tangent to float32
    precision, and a macro Newton solve that reaches the same tight tolerance and answer as
    float64 throughout, where an all-float32 file stalls at its round-off."""
    pytest.importorskip("dolfinx")
    from dolfinx import fem, mesh
    from mpi4py import MPI

    from scalelink.fe2.macro import FE2Problem, FE2SolveError

    data = tmp_path / "s.npz"
    sample_micro_model(CubicElastic(beta=2.0e5), num_samples=200, strain_range=1e-2, seed=3).save(data)
    result = train_surrogate(data, tmp_path / "run", SurrogateConfig(width=16, depth=2, epochs=60, seed=0))
    files = {"float64": {}, "mixed": {"tangent_dtype": "float32"}, "float32": {"dtype": "float32"}}
    for name, options in files.items():
        export_constitutive(result.model, tmp_path / f"{name}.pt", **options)
    assert read_metadata(tmp_path / "mixed.pt").constitutive.architecture["tangent_dtype"] == "float32"
    strain = np.random.default_rng(4).uniform(-8e-3, 8e-3, (500, 3))
    stress64, tangent64 = SurrogateMicroModel(tmp_path / "float64.pt").evaluate(strain)
    stress_mixed, tangent_mixed = SurrogateMicroModel(tmp_path / "mixed.pt").evaluate(strain)
    assert np.array_equal(stress_mixed, stress64)
    scale = np.abs(tangent64).max()
    assert 0 < np.abs(tangent_mixed - tangent64).max() <= 1e-5 * scale

    def solve(name: str, **options: float) -> tuple[np.ndarray, list[float]]:
        msh = mesh.create_rectangle(MPI.COMM_SELF, [[0.0, 0.0], [4.0, 1.0]], [16, 4])
        space = fem.functionspace(msh, ("Lagrange", 1, (2,)))
        left = fem.locate_dofs_geometrical(space, lambda x: np.isclose(x[0], 0.0))
        right = fem.locate_dofs_geometrical(space, lambda x: np.isclose(x[0], 4.0))
        grip = fem.Function(space)
        grip.interpolate(lambda x: np.vstack([0.01 + 0 * x[0], -0.02 + 0 * x[0]]))
        problem = FE2Problem(fem.Function(space), SurrogateMicroModel(tmp_path / f"{name}.pt"),
                             bcs=[fem.dirichletbc(np.zeros(2), left, space), fem.dirichletbc(grip, right)])
        newton = problem.solve(**options)
        return problem.u.x.array.copy(), newton.residual_norms

    u64, norms64 = solve("float64", rtol=1e-11, atol=0.0)
    u_mixed, norms_mixed = solve("mixed", rtol=1e-11, atol=0.0)
    assert len(norms_mixed) <= len(norms64) + 1, (norms64, norms_mixed)
    np.testing.assert_allclose(u_mixed, u64, rtol=0, atol=1e-9 * np.abs(u64).max())
    with pytest.raises(FE2SolveError, match="did not converge"):
        solve("float32", rtol=1e-11, atol=0.0, max_iterations=10)


def test_tangent_dtype_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="energy"):
        export_constitutive(_random_mlp(3, "silu", variant="energy"), tmp_path / "e.pt", tangent_dtype="float32")
    with pytest.raises(ConfigError, match="gains nothing"):
        export_constitutive(_random_mlp(3, "silu"), tmp_path / "s.pt", dtype="float32", tangent_dtype="float64")
    with pytest.raises(ConfigError, match="float16"):
        export_constitutive(_random_mlp(3, "silu"), tmp_path / "s.pt", tangent_dtype="float16")
