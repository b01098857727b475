# comfyfarm_warnings(target): warnings as errors for the project's own code.
function(comfyfarm_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
    -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Wunused -Woverloaded-virtual
    -Wimplicit-fallthrough -Werror -Wno-restrict)
  # -Wnull-dereference is left out and -Wrestrict switched off: with GCC 12 at -O2 both fire
  # inside inlined libstdc++/Asio code that is not ours (GCC bug 105329 for std::string +).
endfunction()

# comfyfarm_add_module(name SOURCES ... DEPENDS ...): one static library per module under src/.
# Headers are included as "<module>/<file>.hpp"; DEPENDS encodes the allowed direction of
# dependencies, so a module that includes a header it does not depend on fails to build.
function(comfyfarm_add_module name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPENDS;PRIVATE_DEPENDS" ${ARGN})
  add_library(comfyfarm_${name} STATIC ${ARG_SOURCES})
  add_library(comfyfarm::${name} ALIAS comfyfarm_${name})
  target_include_directories(comfyfarm_${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/src>)
  target_link_libraries(comfyfarm_${name} PUBLIC ${ARG_DEPENDS} PRIVATE ${ARG_PRIVATE_DEPENDS})
  comfyfarm_warnings(comfyfarm_${name})
endfunction()
