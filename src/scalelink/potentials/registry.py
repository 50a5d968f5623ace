"""The registered potential architectures: the one place that lists them.

To add an architecture, write its module (network, config dataclass, ``model_kwargs`` builder
and an :class:`~scalelink.potentials.architecture.Architecture` record named ``ARCHITECTURE``;
see ``docs/architecture.md``), then import it below and add its record to ``_REGISTERED``.
"""

from __future__ import annotations

from torch import nn

from scalelink.bridge.errors import ConfigError

from . import ace, behler_parrinello, gnn
from .architecture import Architecture

__all__ = ["DEFAULT", "UNNAMED", "architectures", "get", "names", "of_network", "sections"]

_REGISTERED: tuple[Architecture, ...] = (
    ace.ARCHITECTURE,
    gnn.ARCHITECTURE,
    behler_parrinello.ARCHITECTURE,
)

DEFAULT = _REGISTERED[0].name
"""The architecture a configuration that names none trains."""

UNNAMED = gnn.ARCHITECTURE.name
"""The architecture of checkpoints and run folders that do not name one: they were written
when the GNN was the only architecture."""

_BY_NAME = {a.name: a for a in _REGISTERED}
_BY_SECTION = {a.section: a for a in _REGISTERED}
if len(_BY_NAME) != len(_REGISTERED) or len(_BY_SECTION) != len(_REGISTERED):
    raise RuntimeError(f"architectures must have distinct names and YAML sections: {_REGISTERED}")


def architectures() -> tuple[Architecture, ...]:
    """Every registered architecture, the default first."""
    return _REGISTERED


def names() -> list[str]:
    """The names ``architecture:`` accepts, the default first."""
    return [a.name for a in _REGISTERED]


def sections() -> dict[str, type]:
    """YAML section name -> config dataclass of every registered architecture."""
    return {a.section: a.config for a in _REGISTERED}


def get(name: str) -> Architecture:
    """The architecture called ``name``.

    Raises:
        ConfigError: no architecture has that name.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        known = names()
        listed = " or ".join(known) if len(known) <= 2 else ", ".join(known[:-1]) + " or " + known[-1]
        raise ConfigError(f"architecture must be {listed}, got {name!r}") from None


def of_network(network: nn.Module) -> Architecture | None:
    """The architecture whose network class ``network`` is an instance of, or ``None``."""
    for architecture in _REGISTERED:
        if type(network) is architecture.network:
            return architecture
    for architecture in _REGISTERED:
        if isinstance(network, architecture.network):
            return architecture
    return None
