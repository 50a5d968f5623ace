"""Bad input to pair_style scalelink: one clear error line on every rank, no hang.

Runs the `lmp` program of the environment under `mpirun -n 2` (and serially), with no
`plugin load` line: the plugin must be found through its registration.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scalelink.bridge import keys

pytestmark = [pytest.mark.lammps, pytest.mark.mpi]

BIN = Path(sys.executable).parent

INPUT = """\
units {units}
atom_style atomic
lattice fcc 3.6
region box block 0 3 0 3 0 3
create_box 2 box
create_atoms 1 box
mass * 60.0
pair_style scalelink {style_args}
pair_coeff * * {model} {species}
run 0
"""


def _run_lmp(tmp_path: Path, ranks: int, **fields: str) -> subprocess.CompletedProcess[str]:
    values = {"units": "metal", "style_args": "", "species": "Cu Ni"} | fields
    (tmp_path / "in.lmp").write_text(INPUT.format(**values))
    command = [str(BIN / "lmp"), "-in", "in.lmp", "-log", "none"]
    if ranks > 1:
        command = [str(BIN / "mpirun"), "-n", str(ranks), *command]
    return subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1")
    )


def _with_metadata(src: str, dst: Path, **changes: object) -> str:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("extra/" + keys.METADATA_FILE):
                raw = json.loads(data)
                raw.update(changes)
                data = json.dumps(raw).encode()
            zout.writestr(item, data)
    return str(dst)


def _error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in (proc.stdout + proc.stderr).splitlines() if "ERROR" in ln]


@pytest.mark.parametrize("ranks", [1, 2])
def test_good_input_runs(model_files, tmp_path, ranks) -> None:
    proc = _run_lmp(tmp_path, ranks, model=model_files["float64"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not _error_lines(proc)


@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize(
    "case,pattern",
    [
        ("unknown_species", r"Fe.*Cu Ni"),
        ("missing_file", r"no_such_model\.pt"),
        ("corrupt_file", r"corrupt\.pt"),
        ("future_version", r"format version 99"),
        ("repeated_species", r"repeated\.pt: .*'species'.*'Cu' is repeated"),
        ("wrong_units", r"units lj"),
        ("too_few_species", r"pair_coeff"),
        ("bad_keyword", r"nonsense"),
    ],
)
def test_bad_input_gives_one_clear_error(model_files, tmp_path, ranks, case, pattern) -> None:
    import re

    model = model_files["float64"]
    fields: dict[str, str] = {"model": model}
    if case == "unknown_species":
        fields["species"] = "Cu Fe"
    elif case == "missing_file":
        fields["model"] = str(tmp_path / "no_such_model.pt")
    elif case == "corrupt_file":
        (tmp_path / "corrupt.pt").write_bytes(b"not a model" * 10)
        fields["model"] = str(tmp_path / "corrupt.pt")
    elif case == "future_version":
        fields["model"] = _with_metadata(model, tmp_path / "future.pt", **{keys.FORMAT_VERSION: 99})
    elif case == "repeated_species":
        # written around the Python writer, which refuses it; types 1 and 2 both Cu would otherwise run
        fields["model"] = _with_metadata(model, tmp_path / "repeated.pt", **{keys.SPECIES_NAMES: ["Cu", "Cu"]})
        fields["species"] = "Cu Cu"
    elif case == "wrong_units":
        fields["units"] = "lj"
    elif case == "too_few_species":
        fields["species"] = "Cu"
    elif case == "bad_keyword":
        fields["style_args"] = "nonsense 3"
    proc = _run_lmp(tmp_path, ranks, **fields)
    assert proc.returncode != 0
    errors = _error_lines(proc)
    assert errors, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert any(re.search(pattern, ln) for ln in errors), errors
