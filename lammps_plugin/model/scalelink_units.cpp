/* ----------------------------------------------------------------------
   ScaleLink: unit conversion between a model and a LAMMPS run (see scalelink_units.h).
------------------------------------------------------------------------- */

#include "scalelink_units.h"

#include <stdexcept>

namespace ScaleLink {

namespace {

  // Size of a unit style's energy unit in eV and length unit in Å.
  struct UnitScale {
    double energy_ev;
    double length_angstrom;
  };

  constexpr double EV_IN_JOULE = 1.602176634e-19;    // exact since the 2019 SI
  constexpr double METRE_IN_ANGSTROM = 1.0e10;

  bool scale_of(const std::string &style, double ev_in_kcal_per_mol, UnitScale &scale)
  {
    if (style == "metal")
      scale = {1.0, 1.0};
    else if (style == "real")
      scale = {1.0 / ev_in_kcal_per_mol, 1.0};
    else if (style == "si")
      scale = {1.0 / EV_IN_JOULE, METRE_IN_ANGSTROM};
    else
      return false;
    return true;
  }

}    // namespace

UnitConversion unit_conversion(const std::string &model_units, const std::string &lammps_units,
                               double ev_in_kcal_per_mol)
{
  UnitScale model, run;
  if (!scale_of(lammps_units, ev_in_kcal_per_mol, run)) {
    const std::string why = lammps_units == "lj" ? " carry no physical scale, which a trained model needs"
                                                 : " are not supported by this pair style";
    throw std::invalid_argument("pair_style scalelink: units " + lammps_units + why +
                                " (the model is in units " + model_units +
                                "): use units metal, real or si");
  }
  if (!scale_of(model_units, ev_in_kcal_per_mol, model))
    throw std::invalid_argument("pair_style scalelink: the model declares units '" + model_units +
                                "', which it cannot convert: models must be in units metal, "
                                "real or si");

  UnitConversion conversion;
  conversion.model_units = model_units;
  conversion.lammps_units = lammps_units;
  conversion.length_to_model = run.length_angstrom / model.length_angstrom;
  conversion.energy_to_lammps = model.energy_ev / run.energy_ev;
  // F = -dE/dx: the energy factor over the length factor, lengths going the other way
  conversion.force_to_lammps = conversion.energy_to_lammps * conversion.length_to_model;
  return conversion;
}

}    // namespace ScaleLink
