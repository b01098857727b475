# Writes a C++ source that holds the simulator's default data files as raw string literals, so
# the binary needs no data path at run time. Run by src/sim/CMakeLists.txt at build time:
#   cmake -DOUT=<default_data.cpp> -DCATALOG=<nodes.json> -DTIMING=<timing.json>
#         -DMODELS=<models.json> -P embed_data.cmake
set(delimiter "cfsim_json")
set(body "// Generated from data/sim/*.json by src/sim/embed_data.cmake. Do not edit.\n")
string(APPEND body "#include \"sim/default_data.hpp\"\n\nnamespace comfyfarm::sim {\n")
foreach(pair "CATALOG;default_catalog_json" "TIMING;default_timing_json" "MODELS;default_models_json")
  list(GET pair 0 var)
  list(GET pair 1 function)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "embed_data.cmake: -D${var}=<file> is required")
  endif()
  file(READ "${${var}}" text)
  string(FIND "${text}" ")${delimiter}\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "${${var}} contains the raw string delimiter )${delimiter}\"")
  endif()
  string(APPEND body "\nstd::string_view ${function}() noexcept {\n"
         "  static constexpr std::string_view kText = R\"${delimiter}(")
  string(APPEND body "${text}")
  string(APPEND body ")${delimiter}\";\n  return kText;\n}\n")
endforeach()
string(APPEND body "\n}  // namespace comfyfarm::sim\n")
# Rewrite only on change, so an unrelated rebuild does not recompile the file.
if(EXISTS "${OUT}")
  file(READ "${OUT}" previous)
  if(previous STREQUAL body)
    return()
  endif()
endif()
file(WRITE "${OUT}" "${body}")
