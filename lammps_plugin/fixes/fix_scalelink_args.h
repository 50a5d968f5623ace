/* -*- c++ -*- ----------------------------------------------------------
   ScaleLink: argument helpers shared by the ScaleLink fixes.
------------------------------------------------------------------------- */

#ifndef SCALELINK_FIX_ARGS_H
#define SCALELINK_FIX_ARGS_H

#include <string>

namespace ScaleLink {

// "d2_map" -> "map" for prefix "d2_" (the name of a custom per-atom property as find_custom
// wants it); a name without the prefix is taken as it is
inline std::string strip_prefix(const std::string &name, const std::string &prefix)
{
  return name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
}

}    // namespace ScaleLink

#endif
