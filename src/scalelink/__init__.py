"""ScaleLink: machine-learned models inside LAMMPS and FEniCSx.

Packages (``docs/architecture.md`` draws them and their one-way dependencies):

* :mod:`scalelink.bridge` — formats and contracts: model file, keys, units, errors, inference;
* :mod:`scalelink.potentials` — potential architectures and their registry;
* :mod:`scalelink.training` — data sets, the training loop, deployment;
* :mod:`scalelink.campaigns` — committees, active learning, exploration, labelling;
* :mod:`scalelink.surrogates` — constitutive surrogate networks;
* :mod:`scalelink.fe2` — FE² (macro problem, micro models, homogenization);
* :mod:`scalelink.coupling` — atomistic–continuum coupling with LAMMPS;
* :mod:`scalelink.fenicsx` — the public names of ``fe2`` and ``coupling`` in one place;
* :mod:`scalelink.cli` — the ``scalelink`` command.
"""
