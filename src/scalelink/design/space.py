"""Design spaces: named bounded variables, arithmetic expressions over them, constraints.

An expression is ordinary arithmetic over names (design variables, micro-model outputs) and
``pi``, ``sqrt``, ``exp``, ``log``, ``abs``, ``sin``, ``cos``, ``minimum``, ``maximum``; it is
parsed once with :mod:`ast` (no ``eval``) and evaluated on arrays, all points at once. A
constraint is ``LEFT <= RIGHT`` or ``LEFT >= RIGHT`` and is kept as ``g = LEFT − RIGHT ≤ 0``
(sign flipped for ``>=``).
"""

from __future__ import annotations

import ast
import dataclasses
import operator
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from scipy.stats import qmc

from scalelink.bridge.errors import ConfigError

__all__ = ["Constraint", "DesignSpace", "Expression"]

_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "sqrt": np.sqrt, "exp": np.exp, "log": np.log, "abs": np.abs, "sin": np.sin, "cos": np.cos,
    "minimum": np.minimum, "maximum": np.maximum,
}
_CONSTANTS = {"pi": np.pi}
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow}


class Expression:
    """An arithmetic expression over named arrays.

    Args:
        text: e.g. ``"1.5 + 0.004 * fibre_modulus"``.
        where: what the expression belongs to, for error messages.

    Attributes:
        names: the variable/output names it reads.
    """

    def __init__(self, text: str, *, where: str) -> None:
        self.text, self.where = str(text).strip(), where
        try:
            self._tree = ast.parse(self.text, mode="eval").body
        except SyntaxError as exc:
            raise ConfigError(f"{where}: cannot parse {self.text!r} ({exc.msg})") from None
        self.names: set[str] = set()
        self._check(self._tree)

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return
        if isinstance(node, ast.Name):
            if node.id not in _CONSTANTS:
                self.names.add(node.id)
            return
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            self._check(node.left)
            self._check(node.right)
            return
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            self._check(node.operand)
            return
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
                and not node.keywords):
            for arg in node.args:
                self._check(arg)
            return
        raise ConfigError(
            f"{self.where}: {self.text!r} may use numbers, names, + - * / **, and the functions "
            f"{sorted(_FUNCTIONS)}; found {ast.unparse(node)!r}"
        )

    def __call__(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        missing = self.names - set(values)
        if missing:
            raise ConfigError(f"{self.where}: {self.text!r} names {sorted(missing)}, known: {sorted(values)}")
        with np.errstate(all="ignore"):
            return np.asarray(self._evaluate(self._tree, values), dtype=float)

    def _evaluate(self, node: ast.AST, values: Mapping[str, np.ndarray]) -> np.ndarray | float:
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return _CONSTANTS[node.id] if node.id in _CONSTANTS else values[node.id]
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](self._evaluate(node.left, values), self._evaluate(node.right, values))
        if isinstance(node, ast.UnaryOp):
            operand = self._evaluate(node.operand, values)
            return -operand if isinstance(node.op, ast.USub) else operand
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        return _FUNCTIONS[node.func.id](*(self._evaluate(a, values) for a in node.args))


@dataclasses.dataclass(frozen=True)
class Constraint:
    """``g(values) ≤ 0`` with ``g = LEFT − RIGHT`` (``<=``) or ``RIGHT − LEFT`` (``>=``)."""

    text: str
    left: Expression
    right: Expression
    sign: float

    @classmethod
    def parse(cls, text: str, *, where: str) -> Constraint:
        """A constraint from ``"LEFT <= RIGHT"`` or ``"LEFT >= RIGHT"``."""
        for symbol, sign in (("<=", 1.0), (">=", -1.0)):
            if str(text).count(symbol) == 1:
                left, right = str(text).split(symbol)
                return cls(str(text), Expression(left, where=where), Expression(right, where=where), sign)
        raise ConfigError(f"{where}: a constraint is 'LEFT <= RIGHT' or 'LEFT >= RIGHT', got {text!r}")

    @property
    def names(self) -> set[str]:
        return self.left.names | self.right.names

    def __call__(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.sign * (self.left(values) - self.right(values))


class DesignSpace:
    """A box of named continuous variables with optional constraints on the variables alone.

    Args:
        bounds: ``{name: (lower, upper)}`` in the variables' own units.
        constraints: constraints whose names are all variables (checked before any run).
    """

    def __init__(self, bounds: Mapping[str, Sequence[float]], constraints: Sequence[Constraint] = ()) -> None:
        if not bounds:
            raise ConfigError("the design space has no variables; give `variables: {name: [lower, upper]}`")
        self.names = list(bounds)
        box = []
        for name, pair in bounds.items():
            try:
                lower, upper = (float(v) for v in pair)
            except (TypeError, ValueError):
                raise ConfigError(f"variables.{name}: expected [lower, upper], got {pair!r}") from None
            if not (np.isfinite(lower) and np.isfinite(upper) and lower < upper):
                raise ConfigError(f"variables.{name}: need finite lower < upper, got [{lower}, {upper}]")
            box.append((lower, upper))
        self.lower, self.upper = np.array(box).T
        for c in constraints:
            unknown = c.names - set(self.names)
            if unknown:
                raise ConfigError(f"constraint {c.text!r} on the variables names unknown {sorted(unknown)}")
        self.constraints = list(constraints)

    @property
    def dim(self) -> int:
        return len(self.names)

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=float) - self.lower) / (self.upper - self.lower)

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        return self.lower + np.asarray(u, dtype=float) * (self.upper - self.lower)

    def values(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """``{name: column}`` of points ``(n, dim)`` in the variables' units."""
        x = np.atleast_2d(x)
        return {name: x[:, j] for j, name in enumerate(self.names)}

    def feasible(self, x: np.ndarray) -> np.ndarray:
        """Whether each point ``(n, dim)`` lies in the box and meets every variable constraint."""
        x = np.atleast_2d(x)
        inside = np.all((x >= self.lower - 1e-12) & (x <= self.upper + 1e-12), axis=1)
        for c in self.constraints:
            inside &= c(self.values(x)) <= 0.0
        return inside

    def sample(self, count: int, rng: np.random.Generator, *, tries: int = 64) -> np.ndarray:
        """Up to ``count`` feasible points ``(≤ count, dim)``: a Latin hypercube of ``count``
        points when the constraints accept all of them, else the feasible points of larger
        hypercubes (fewer than ``count`` only if ``tries`` of them hold fewer); raises when no
        feasible point turns up."""
        first = self.from_unit(qmc.LatinHypercube(d=self.dim, rng=rng).random(count))
        if self.feasible(first).all():
            return first
        found: list[np.ndarray] = []
        for _ in range(tries):
            draw = self.from_unit(qmc.LatinHypercube(d=self.dim, rng=rng).random(max(count, 256)))
            found.extend(draw[self.feasible(draw)])
            if len(found) >= count:
                return np.array(found[:count])
        if not found:
            raise ConfigError(
                f"the design space has no feasible point: {tries * max(count, 256)} draws in the box "
                f"{dict(zip(self.names, zip(self.lower.tolist(), self.upper.tolist())))} all violate "
                f"{[c.text for c in self.constraints]}; widen the bounds or relax the constraints"
            )
        return np.array(found)
