/* -*- c++ -*- ----------------------------------------------------------
   ScaleLink: conversion between the units a model was trained in and the LAMMPS unit style
   of the run. Only styles with a physical scale qualify: metal (eV, Å), real (kcal/mol, Å)
   and si (J, m); lj and the other styles are refused.
------------------------------------------------------------------------- */

#ifndef SCALELINK_UNITS_H
#define SCALELINK_UNITS_H

#include <string>

namespace ScaleLink {

// Factors between model units and LAMMPS units. A LAMMPS length times length_to_model is a
// model length; a model energy (virial) times energy_to_lammps, or a model force times
// force_to_lammps, is the LAMMPS value.
struct UnitConversion {
  std::string model_units, lammps_units;
  double length_to_model = 1.0;
  double energy_to_lammps = 1.0;
  double force_to_lammps = 1.0;

  bool identity() const { return model_units == lammps_units; }
};

// Throws std::invalid_argument with a one-line message when either style is not supported.
// `kcal_per_mol_in_ev` is the eV -> kcal/mol factor the LAMMPS run uses.
UnitConversion unit_conversion(const std::string &model_units, const std::string &lammps_units,
                               double ev_in_kcal_per_mol);

}    // namespace ScaleLink

#endif
