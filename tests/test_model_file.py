"""The model file format: metadata round trip and clear errors for bad files."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from scalelink.bridge import keys
from scalelink.bridge.errors import ModelFileError
from scalelink.bridge.model_file import FORMAT_VERSION, ModelMetadata, load_model, read_metadata


def test_metadata_round_trip(model_files: dict[str, str]) -> None:
    for dtype, path in model_files.items():
        meta = read_metadata(path)
        assert meta.species == ["Cu", "Ni"]
        assert meta.cutoff == 4.0
        assert meta.num_layers == 2
        assert meta.dtype == dtype
        assert meta.format_version == FORMAT_VERSION
        assert meta.kind == "potential"
        assert meta.units == "metal"
        assert set(meta.outputs) == set(keys.MODEL_OUTPUTS)
        assert "torch" in meta.versions


def _rewrite_metadata(src: str, dst: Path, edit) -> str:
    """A copy of the model file ``src`` at ``dst`` whose metadata ``edit`` changed in place."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("extra/" + keys.METADATA_FILE):
                raw = json.loads(data)
                edit(raw)
                data = json.dumps(raw).encode()
            zout.writestr(item, data)
    return str(dst)


def test_unknown_format_version_is_refused(model_files: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "future.pt"
    _rewrite_metadata(model_files["float64"], bad, lambda raw: raw.update({keys.FORMAT_VERSION: 99}))
    with pytest.raises(ModelFileError, match=r"format version 99 is not supported.*scalelink deploy"):
        load_model(bad)


def test_missing_metadata_key_is_named(model_files: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "nocutoff.pt"
    _rewrite_metadata(model_files["float64"], bad, lambda raw: raw.pop(keys.CUTOFF))
    with pytest.raises(ModelFileError, match="cutoff"):
        load_model(bad)


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nothing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a torchscript archive")
    with pytest.raises(ModelFileError, match="not a readable TorchScript archive"):
        load_model(junk)


def test_invalid_metadata_values_are_refused() -> None:
    with pytest.raises(ModelFileError, match="distinct species"):
        ModelMetadata(species=["Cu", "Cu"], cutoff=4.0, num_layers=2)
    with pytest.raises(ModelFileError, match="cutoff must be positive"):
        ModelMetadata(species=["Cu"], cutoff=0.0, num_layers=2)


def test_committee_without_member_outputs_is_refused() -> None:
    with pytest.raises(ModelFileError, match=r"committee of 3 must return .*member_energy"):
        ModelMetadata(species=["Cu"], cutoff=4.0, num_layers=2, committee_size=3)
