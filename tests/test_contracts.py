"""The contracts between the Python and the C++ side agree, read from both sources.

Nothing is built or imported: the C++ files are read with regular expressions and the Python
modules with ``ast``, so a change to one side that the other does not follow fails here, on any
machine, from the working tree. The contracts:

* the model file's metadata: the keys the plugin's loader requires are the keys Python requires
  and writes, with the same format version, dtypes, kind and outputs; the per-layer methods the
  plugin calls by name are those the deployed Python module exports, with as many arguments;
* the per-step MPI messages of the dynamic coupling: tags and the width of a kinematics row;
* units: the plugin scales each unit style as ``bridge/units.py`` does, and no other source
  repeats a unit constant;
* ctypes: the argument and return types Python declares for a C function are those of its
  prototype.

The key names themselves are compared by ``test_keys.py``.
"""

from __future__ import annotations

import ast
import ctypes
import operator
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "scalelink"
PLUGIN = ROOT / "lammps_plugin"
NATIVE = SRC / "coupling" / "native"

KEYS_PY = SRC / "bridge" / "keys.py"
MODEL_FILE_PY = SRC / "bridge" / "model_file.py"
UNITS_PY = SRC / "bridge" / "units.py"
DEPLOYED_PY = SRC / "potentials" / "deployed.py"
EXCHANGE_PY = SRC / "coupling" / "exchange.py"
MD_ATOMS_PY = SRC / "coupling" / "md_atoms.py"
KEYS_H = PLUGIN / "model" / "scalelink_keys.h"
MODEL_H = PLUGIN / "model" / "scalelink_model.h"
MODEL_CPP = PLUGIN / "model" / "scalelink_model.cpp"
LAYERS_CPP = PLUGIN / "model" / "scalelink_model_layers.cpp"
UNITS_CPP = PLUGIN / "model" / "scalelink_units.cpp"
COUPLE_H = PLUGIN / "fixes" / "fix_scalelink_couple.h"
COUPLE_CPP = PLUGIN / "fixes" / "fix_scalelink_couple.cpp"
KERNEL_CPP = NATIVE / "couple_kernel.cpp"


# ---- reading Python ---------------------------------------------------------------------

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos}


def _evaluate(node: ast.expr, names: dict[str, Any]) -> Any:
    """Value of a constant expression: literals, containers, arithmetic, known names and their attributes.

    Raises:
        ValueError: the expression holds anything else (a call, an unknown name).
    """
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.Attribute):
        return getattr(_evaluate(node.value, names), node.attr)
    if isinstance(node, ast.Tuple):
        return tuple(_evaluate(item, names) for item in node.elts)
    if isinstance(node, ast.List):
        return [_evaluate(item, names) for item in node.elts]
    if isinstance(node, ast.Dict) and None not in node.keys:
        pairs = zip(node.keys, node.values)
        return {_evaluate(k, names): _evaluate(v, names) for k, v in pairs}  # type: ignore[arg-type]
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left, names), _evaluate(node.right, names))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand, names))
    raise ValueError(f"not a constant expression: {ast.unparse(node)}")


def _assignments(nodes: list[ast.stmt]) -> list[tuple[list[ast.expr], ast.expr]]:
    out = []
    for node in nodes:
        if isinstance(node, ast.Assign):
            out.append((node.targets, node.value))
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            out.append(([node.target], node.value))
    return out


def _bind(targets: list[ast.expr], value: Any, names: dict[str, Any]) -> None:
    for target in targets:
        if isinstance(target, ast.Name):
            names[target.id] = value
        elif isinstance(target, ast.Tuple) and isinstance(value, tuple) and len(value) == len(target.elts):
            for item, part in zip(target.elts, value):
                if isinstance(item, ast.Name):
                    names[item.id] = part


def _constants(path: Path) -> dict[str, Any]:
    """The module-level names of a Python source whose values are constant expressions."""
    names: dict[str, Any] = {}
    for targets, value in _assignments(ast.parse(path.read_text(encoding="utf-8")).body):
        try:
            _bind(targets, _evaluate(value, names), names)
        except (ValueError, AttributeError, TypeError):
            pass
    return names


def _class(path: Path, name: str) -> ast.ClassDef:
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise AssertionError(f"{path} defines no class {name}")


# ---- reading C++ ------------------------------------------------------------------------

_COMMENT_OR_STRING = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"', re.S)


def _masked(text: str) -> str:
    """`text` with comments blanked and string literals emptied, offsets unchanged."""

    def blank(match: re.Match[str]) -> str:
        s = match.group(0)
        if s.startswith('"'):
            return '"' + " " * (len(s) - 2) + '"'
        return re.sub(r"[^\n]", " ", s)

    return _COMMENT_OR_STRING.sub(blank, text)


def _matching(masked: str, opening: int) -> int:
    """Offset of the bracket closing the one at `opening`."""
    pair = {"{": "}", "(": ")"}[masked[opening]]
    depth = 0
    for i in range(opening, len(masked)):
        if masked[i] == masked[opening]:
            depth += 1
        elif masked[i] == pair:
            depth -= 1
            if depth == 0:
                return i
    raise AssertionError(f"unbalanced {masked[opening]!r}")


def _body(path: Path, function: str) -> str:
    """The body, braces included, of the first definition of C++ `function` in `path`."""
    text = path.read_text(encoding="utf-8")
    masked = _masked(text)
    match = re.search(rf"(?<![\w:]){re.escape(function)}\s*\([^;{{}}]*\)\s*(?:const\s*)?\{{", masked)
    assert match, f"{path} has no definition of {function}()"
    return text[match.end() - 1:_matching(masked, match.end() - 1) + 1]


def _arguments(text: str, opening: int) -> list[str]:
    """The comma-separated arguments of the call whose '(' is at `opening`."""
    masked = _masked(text)
    closing = _matching(masked, opening)
    args, depth, start = [], 0, opening + 1
    for i in range(opening + 1, closing):
        if masked[i] in "({[":
            depth += 1
        elif masked[i] in ")}]":
            depth -= 1
        elif masked[i] == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
    last = text[start:closing].strip()
    return args + [last] if last or args else args


def _header_keys() -> dict[str, str]:
    text = KEYS_H.read_text(encoding="utf-8")
    return dict(re.findall(r'constexpr\s+const\s+char\s*\*\s*(\w+)\s*=\s*"([^"]*)"\s*;', text))


def _key_values(names_text: str) -> list[str]:
    """The strings of the Keys:: constants named in a piece of C++."""
    header = _header_keys()
    return [header[name] for name in re.findall(r"Keys::(\w+)", names_text)]


def _c_expression(text: str, names: dict[str, Any]) -> Any:
    """Value of a C++ arithmetic expression of literals and `names` (the same syntax as Python's)."""
    return _evaluate(ast.parse(text.strip(), mode="eval").body, names)


# ---- the model file ---------------------------------------------------------------------


def test_the_plugin_requires_exactly_the_metadata_keys_python_requires() -> None:
    body = _body(MODEL_CPP, "parse_metadata")
    required = set(_key_values(" ".join(re.findall(r"\b(?:require|positive_int|string_list)\(\s*meta,\s*(Keys::\w+)",
                                                     body))))
    python = _constants(KEYS_PY)
    assert required, f"no require(meta, Keys::...) in parse_metadata of {MODEL_CPP}"
    assert required == set(python["REQUIRED_METADATA"]), (
        f"{MODEL_CPP} requires {sorted(required)}, {KEYS_PY} {sorted(python['REQUIRED_METADATA'])}")


def test_python_writes_the_keys_it_reads() -> None:
    # to_json writes the dataclass fields by name; from_json reads them under the key constants
    fields = {node.target.id for node in _class(MODEL_FILE_PY, "ModelMetadata").body
              if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}
    python = _constants(KEYS_PY)
    assert fields == set(python["REQUIRED_METADATA"]) | set(python["OPTIONAL_METADATA"])


def test_format_version_dtypes_kind_and_outputs_agree() -> None:
    body = _body(MODEL_CPP, "parse_metadata")
    model_file, python_keys = _constants(MODEL_FILE_PY), _constants(KEYS_PY)

    version = re.search(r"constexpr int SUPPORTED_FORMAT_VERSION = (\d+);", MODEL_H.read_text(encoding="utf-8"))
    assert version, f"{MODEL_H} has no `constexpr int SUPPORTED_FORMAT_VERSION = N;`"
    assert int(version.group(1)) == model_file["FORMAT_VERSION"]

    assert set(re.findall(r'dtype != "(\w+)"', body)) == set(model_file["_DTYPES"])

    # the plugin runs the kind Python writes for a potential, the default of ModelMetadata
    kinds = re.findall(r'md\.kind != "(\w+)"', body)
    default_kind = next(node.value for node in _class(MODEL_FILE_PY, "ModelMetadata").body
                        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                        and node.target.id == "kind")
    assert default_kind is not None
    assert kinds == [_evaluate(default_kind, {})] and kinds[0] in model_file["_KINDS"]

    needed = re.search(r"std::vector<const char \*> needed = \{([^}]*)\};", body)
    committee = re.search(r"needed\.insert\(needed\.end\(\),\s*\{([^}]*)\}\)", body)
    assert needed and committee, f"{MODEL_CPP}: parse_metadata no longer lists the outputs it needs as expected here"
    assert set(_key_values(needed.group(1))) <= set(python_keys["MODEL_OUTPUTS"])
    assert set(_key_values(committee.group(1))) == set(python_keys["COMMITTEE_OUTPUTS"])


def _exported_methods() -> dict[str, int]:
    """The @torch.jit.export methods of DeployedPotential and how many arguments each takes."""
    methods = {}
    for node in _class(DEPLOYED_PY, "DeployedPotential").body:
        if isinstance(node, ast.FunctionDef) and any(ast.unparse(d) == "torch.jit.export" for d in node.decorator_list):
            methods[node.name] = len(node.args.args) - 1
    return methods


def test_the_per_layer_methods_the_plugin_calls_are_exported() -> None:
    python = _exported_methods()
    probed = re.search(r"for \(const char \*name : \{([^}]*)\}\)", _body(MODEL_CPP, "layer_interface_width"))
    assert probed, f"{MODEL_CPP}: layer_interface_width no longer lists the method names as expected here"
    assert set(re.findall(r'"(\w+)"', probed.group(1))) == set(python)

    calls = []
    for path in (MODEL_CPP, LAYERS_CPP):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"\brun_method\s*\(", _masked(text)):
            name, *args = _arguments(text, match.end() - 1)
            calls.append((path.name, name.strip('"'), len(args)))
    assert {name for _, name, _ in calls} == set(python), calls
    wrong = [(f, name, n, python[name]) for f, name, n in calls if n != python[name]]
    assert not wrong, f"run_method calls (file, method, arguments, Python's) with other arguments: {wrong}"


# ---- MPI messages of the dynamic coupling ----------------------------------------------


def _cpp_tags(path: Path) -> dict[str, int]:
    text = _masked(path.read_text(encoding="utf-8"))
    return {name: int(value) for declaration in re.findall(r"constexpr int ([^;]*);", text)
            for name, value in re.findall(r"(TAG_\w+)\s*=\s*(\d+)", declaration)}


def test_the_coupling_tags_agree() -> None:
    python = {name: value for name, value in _constants(EXCHANGE_PY).items() if name.startswith("TAG_")}
    assert len(python) == 3 and len(set(python.values())) == 3, python
    assert _cpp_tags(COUPLE_CPP) == python
    kernel = _cpp_tags(KERNEL_CPP)
    assert kernel and kernel.items() <= python.items(), kernel
    documented = re.search(r"tags (\d+) \[id, u, v\], (\d+) f, (\d+) reply", COUPLE_H.read_text(encoding="utf-8"))
    assert documented, f"{COUPLE_H} no longer documents the tags as expected here"
    assert tuple(int(t) for t in documented.groups()) == (
        python["TAG_KINEMATICS"], python["TAG_FORCES"], python["TAG_REPLY"])


def test_the_coupling_tags_are_written_once_in_python() -> None:
    tags = set(_constants(EXCHANGE_PY)[name] for name in ("TAG_KINEMATICS", "TAG_FORCES", "TAG_REPLY"))
    copies = []
    for path in sorted([*SRC.rglob("*.py"), *(ROOT / "tests").glob("*.py")]):
        if path == EXCHANGE_PY:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and type(node.value) is int and node.value in tags:
                copies.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not copies, f"MPI tags of the coupling repeated instead of imported from {EXCHANGE_PY.name}: {copies}"


def test_a_kinematics_row_has_the_width_python_reads() -> None:
    # the fix's kinematics rows are `width` long wherever it packs or reads them
    widths = re.findall(r"const int width = ([^;]+);", _masked(COUPLE_CPP.read_text(encoding="utf-8")))
    assert widths, f"{COUPLE_CPP} no longer sets `const int width = ...;`"
    # the 2D strip sends [id, ux, uy, vx, vy], the 3D bar [id, ux, uy, uz, vx, vy, vz]
    for dim, name in ((2, "KINEMATICS"), (3, "KINEMATICS_3D")):
        assert [_c_expression(w, {"dim": dim}) for w in widths] == [_constants(MD_ATOMS_PY)[name]] * len(widths)


# ---- units ------------------------------------------------------------------------------


def _python_unit_styles() -> dict[str, tuple[float, float]]:
    """(energy in eV, length in Å) of each style of LAMMPS_UNIT_STYLES, from UnitStyle(name, energy, length)."""
    names = _constants(UNITS_PY)
    for targets, value in _assignments(ast.parse(UNITS_PY.read_text(encoding="utf-8")).body):
        if any(isinstance(t, ast.Name) and t.id == "LAMMPS_UNIT_STYLES" for t in targets):
            assert isinstance(value, ast.Dict)
            return {_evaluate(k, names): (_evaluate(v.args[1], names), _evaluate(v.args[2], names))  # type: ignore
                    for k, v in zip(value.keys, value.values)}
    raise AssertionError(f"{UNITS_PY} has no LAMMPS_UNIT_STYLES")


def test_the_plugin_scales_every_unit_style_as_python_does() -> None:
    text = UNITS_CPP.read_text(encoding="utf-8")
    names = {name: _c_expression(value, {})
             for name, value in re.findall(r"constexpr double (\w+) = ([^;]+);", text)}
    # LAMMPS hands the plugin its own factor (utils::get_conversion_factor), the one units.py copies
    names["ev_in_kcal_per_mol"] = _constants(UNITS_PY)["_EV_IN_KCAL_PER_MOL"]
    cpp = {}
    for style, scale in re.findall(r'style == "(\w+)"\)\s*scale = \{([^}]*)\};', _body(UNITS_CPP, "scale_of")):
        energy, length = (_c_expression(part, names) for part in scale.split(","))
        cpp[style] = (energy, length)
    python = _python_unit_styles()
    assert set(cpp) == set(python)
    for style, (energy, length) in python.items():
        assert cpp[style] == pytest.approx((energy, length), rel=1e-15), style


# First significant digits of the physical constants that convert units. A number that starts
# with one of them, outside the units files, is a second copy of a unit constant.
_UNIT_DIGITS = {
    "16021": "e (eV in J, eV/Å³ in GPa)",
    "62415": "1/e (J in eV)",
    "23060": "eV in kcal/mol",
    "43364": "kcal/mol in eV",
    "10364": "mvv2e of metal units",
    "96485": "ftm2v of metal units",
    "16605": "amu in kg",
    "60221": "Avogadro's number",
    "10132": "atm in Pa",
    "86173": "Boltzmann's constant in eV/K",
    "13806": "Boltzmann's constant in J/K",
    "41840": "kcal in J",
}
# Names of conversion factors: LAMMPS's own, or a unit "_IN_"/"_PER_"/"_TO_" another.
_FACTOR_WORDS = {"MVV2E", "FTM2V", "NKTV2P", "QQR2E", "BOLTZ"}
_UNIT_WORDS = {"GPA", "KBAR", "BAR", "ATM", "PA", "JOULE", "KCAL", "EV", "ANGSTROM", "METRE", "AMU", "KG", "MOL"}
# A copy still to be replaced by scalelink.bridge.units.EV_PER_CUBIC_ANGSTROM_IN_GPA: (file, line text).
_PENDING: set[tuple[str, str]] = set()


def _digits(number: float) -> str:
    return f"{abs(number):.14e}".replace(".", "")[:5]


def _is_factor_name(name: str) -> bool:
    words = set(name.upper().strip("_").split("_"))
    return bool(words & _FACTOR_WORDS) or bool(words & {"IN", "PER", "TO"} and words & _UNIT_WORDS)


def _numbers(value: Any) -> list[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [x for item in value for x in _numbers(item)]
    return []


def _python_unit_copies(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.value:
            if _digits(node.value) in _UNIT_DIGITS:
                found.append((node.lineno, f"{node.value!r}: {_UNIT_DIGITS[_digits(node.value)]}"))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name) and _is_factor_name(t.id)]
            try:
                numbers = _numbers(_evaluate(node.value, {}))
            except (ValueError, AttributeError, TypeError):
                numbers = []
            if names and numbers:
                found.append((node.lineno, f"{names[0]}, a conversion factor"))
    return found


def test_no_python_module_repeats_a_unit_constant() -> None:
    copies, pending = [], set()
    for path in sorted(SRC.rglob("*.py")):
        if path == UNITS_PY:
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        for lineno, what in sorted(set(_python_unit_copies(path))):
            key = (path.relative_to(SRC).as_posix(), lines[lineno - 1].strip())
            if key in _PENDING:
                pending.add(key)
            else:
                copies.append(f"{path.relative_to(ROOT)}:{lineno} ({what})")
    assert not copies, f"unit constants outside {UNITS_PY.relative_to(ROOT)}; import them from there: {copies}"
    assert pending == _PENDING, f"no longer found, drop from _PENDING: {sorted(_PENDING - pending)}"


def test_no_other_cpp_file_repeats_a_unit_constant() -> None:
    copies = []
    for path in sorted([*PLUGIN.rglob("*.cpp"), *PLUGIN.rglob("*.h"), *NATIVE.rglob("*.cpp")]):
        if path == UNITS_CPP:
            continue
        masked = _masked(path.read_text(encoding="utf-8"))
        for match in re.finditer(r"(?<![\w.])(\d+\.?\d*(?:[eE][+-]?\d+)?)(?![\w.])", masked):
            value = float(match.group(1))
            if value and _digits(value) in _UNIT_DIGITS:
                line = masked.count("\n", 0, match.start()) + 1
                copies.append(f"{path.relative_to(ROOT)}:{line} ({match.group(1)})")
    assert not copies, f"unit constants outside {UNITS_CPP.relative_to(ROOT)}: {copies}"


# ---- ctypes -----------------------------------------------------------------------------

# Called by LAMMPS when it loads the plugin, never through ctypes.
_CALLED_BY_LAMMPS = {"lammpsplugin_init"}
_C_SCALARS = {"int": ctypes.c_int, "long": ctypes.c_long, "int64_t": ctypes.c_int64, "std::int64_t": ctypes.c_int64,
              "double": ctypes.c_double, "float": ctypes.c_float, "char": ctypes.c_char}


def _c_prototypes() -> dict[str, tuple[str, list[str]]]:
    """(return type, parameter types) of every extern "C" function defined in the C++ sources."""
    headers = []
    for path in sorted([*PLUGIN.rglob("*.cpp"), *NATIVE.rglob("*.cpp")]):
        masked = _masked(path.read_text(encoding="utf-8"))
        for match in re.finditer(r'extern\s+" "\s*', masked):  # "C", emptied
            if masked[match.end()] == "{":
                block_end, start, depth = _matching(masked, match.end()), match.end() + 1, 0
                for i in range(match.end() + 1, block_end):
                    if masked[i] == "{":
                        if depth == 0:
                            headers.append(masked[start:i])
                        depth += 1
                    elif masked[i] == "}":
                        depth -= 1
                        if depth == 0:
                            start = i + 1
            else:
                headers.append(masked[match.end():masked.index("{", match.end())])
    prototypes = {}
    for header in headers:
        header = re.sub(r"__attribute__\s*\(\((?:[^()]|\([^()]*\))*\)\)", " ", header)
        match = re.fullmatch(r"\s*(.*?)\b(\w+)\s*\((.*)\)\s*", header, re.S)
        assert match, f"cannot read the C prototype {header!r}"
        returns, name, params = match.groups()
        types = [re.sub(r"\w+\s*$", "", p).strip() for p in params.split(",") if p.strip() not in ("", "void")]
        prototypes[name] = (" ".join(returns.split()), types)
    return prototypes


def _ctypes_for(c_type: str) -> list[Any]:
    """The ctypes declarations that pass or return a value of C type `c_type` correctly."""
    base = " ".join(c_type.replace("const", " ").split())
    if base.endswith("*"):
        pointee = base.rstrip("* ")
        allowed = [ctypes.c_void_p]
        if pointee == "char":
            allowed.append(ctypes.c_char_p)
        if pointee in _C_SCALARS:
            allowed.append(ctypes.POINTER(_C_SCALARS[pointee]))
        return allowed
    if base == "void":
        return [None, ctypes.c_int]  # ctypes' default restype, harmless for a void function
    return [_C_SCALARS[base]]


def _python_declarations() -> dict[str, dict[str, Any]]:
    """{C function: {"argtypes": [...], "restype": ...}} from every `X.argtypes = ...` / `X.restype = ...`
    under src/, X being `<library>.NAME` or a variable bound to `<library>.NAME`."""
    declared: dict[str, dict[str, Any]] = {}
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "argtypes" not in text:
            continue
        names: dict[str, Any] = {"ctypes": ctypes}
        symbols: dict[str, str] = {}
        nodes = [n for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.Assign, ast.AnnAssign))]
        for targets, value in _assignments(sorted(nodes, key=lambda n: (n.lineno, n.col_offset))):
            target = targets[0]
            if isinstance(target, ast.Attribute) and target.attr in ("argtypes", "restype"):
                owner = target.value
                function = owner.attr if isinstance(owner, ast.Attribute) else symbols.get(getattr(owner, "id", ""))
                assert function, f"{path}:{target.lineno}: cannot tell which C function {ast.unparse(owner)} is"
                declared.setdefault(function, {})[target.attr] = _evaluate(value, names)
            else:
                if isinstance(target, ast.Name) and isinstance(value, ast.Attribute):
                    symbols[target.id] = value.attr
                try:
                    _bind(targets, _evaluate(value, names), names)
                except (ValueError, AttributeError, TypeError):
                    pass
    return declared


def test_ctypes_declarations_match_the_c_prototypes() -> None:
    prototypes, declared = _c_prototypes(), _python_declarations()
    assert declared, f"no ctypes declarations found under {SRC}"
    wrong = []
    for name, declaration in sorted(declared.items()):
        if name not in prototypes:
            wrong.append(f"{name}: no extern \"C\" function of that name")
            continue
        returns, params = prototypes[name]
        argtypes = declaration.get("argtypes")
        if argtypes is None or len(argtypes) != len(params):
            wrong.append(f"{name}: argtypes {argtypes}, the prototype has {len(params)} parameters {params}")
        else:
            wrong += [f"{name}: argument {k} is {c_type}, declared {t.__name__}"
                      for k, (c_type, t) in enumerate(zip(params, argtypes)) if t not in _ctypes_for(c_type)]
        restype = declaration.get("restype", ctypes.c_int)
        if restype not in _ctypes_for(returns):
            wrong.append(f"{name}: returns {returns}, declared restype {restype}")
    assert not wrong, wrong


def test_every_c_function_has_its_ctypes_declaration() -> None:
    prototypes = _c_prototypes()
    assert "slk_create" in prototypes, f"extern \"C\" functions not found: {sorted(prototypes)}"
    undeclared = set(prototypes) - set(_python_declarations()) - _CALLED_BY_LAMMPS
    assert not undeclared, f"extern \"C\" functions with no argtypes in Python: {sorted(undeclared)}"
