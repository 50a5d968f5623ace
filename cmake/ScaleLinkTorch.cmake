# Locate libtorch inside the torch wheel of the build's Python.
#
# torch's own TorchConfig.cmake insists on a CUDA toolkit when the wheel is a CUDA build,
# which the machines running CPU inference do not have; only the headers and three shared
# libraries are needed, so they are declared by hand.
#
# Defines:
#   ScaleLink::torch         libtorch + libtorch_cpu + libc10, include folders, C++ ABI flag
#   SCALELINK_TORCH_LIB_DIR

include_guard(GLOBAL)
include(ScaleLinkPython)

scalelink_python_query(_torch_info
  "import importlib.util as u, os; d = u.find_spec('torch').submodule_search_locations[0]; import torch; print(d, int(torch.compiled_with_cxx11_abi()), torch.__version__, sep=';')"
  "install torch into this environment (pip install 'torch==2.15.*') and, with pip, build with --no-build-isolation so the plugin links the torch that will run it")
list(GET _torch_info 0 _torch_dir)
list(GET _torch_info 1 _torch_cxx11_abi)
list(GET _torch_info 2 _torch_version)

set(SCALELINK_TORCH_LIB_DIR "${_torch_dir}/lib")
set(_torch_includes "${_torch_dir}/include" "${_torch_dir}/include/torch/csrc/api/include")
if(NOT EXISTS "${_torch_dir}/include/torch/script.h")
  message(FATAL_ERROR
    "ScaleLink: the torch wheel at ${_torch_dir} has no C++ headers (torch/script.h).\n"
    "Fix: install the official torch wheel: pip install 'torch==2.15.*'")
endif()

add_library(ScaleLink::torch INTERFACE IMPORTED)
foreach(_name IN ITEMS torch torch_cpu c10)
  set(_lib "${SCALELINK_TORCH_LIB_DIR}/lib${_name}.so")
  if(NOT EXISTS "${_lib}")
    message(FATAL_ERROR
      "ScaleLink: ${_lib} not found in the torch wheel.\n"
      "Fix: reinstall torch: pip install --force-reinstall 'torch==2.15.*'")
  endif()
  add_library(ScaleLink::torch_${_name} SHARED IMPORTED)
  set_target_properties(ScaleLink::torch_${_name} PROPERTIES IMPORTED_LOCATION "${_lib}")
  target_link_libraries(ScaleLink::torch INTERFACE ScaleLink::torch_${_name})
endforeach()

set_target_properties(ScaleLink::torch PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${_torch_includes}"
  # the torch 2.x headers use C++20 features; the ABI flag must match the wheel's libraries
  INTERFACE_COMPILE_FEATURES cxx_std_20
  INTERFACE_COMPILE_DEFINITIONS "_GLIBCXX_USE_CXX11_ABI=${_torch_cxx11_abi}")

message(STATUS "ScaleLink: torch ${_torch_version} from ${_torch_dir}")
