# weft_add_header_check(<name> <library>...): an OBJECT library <name> with
# one generated .cpp per header in each library's HEADERS file set, which
# includes only that header (twice, so a missing #pragma once shows too). It
# fails to build when a public header misses an #include, depends on something
# included before it, or warns under weft's flags (WEFT_WERROR). The sources
# are rewritten only when the header list changes.
function(weft_add_header_check name)
  set(sources)
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/${name})
  foreach(lib IN LISTS ARGN)
    get_target_property(headers ${lib} HEADER_SET)
    get_target_property(base_dirs ${lib} HEADER_DIRS)
    foreach(header IN LISTS headers)
      foreach(base IN LISTS base_dirs)
        cmake_path(IS_PREFIX base "${header}" NORMALIZE under_base)
        if(under_base)
          cmake_path(RELATIVE_PATH header BASE_DIRECTORY "${base}" OUTPUT_VARIABLE rel)
          break()
        endif()
      endforeach()
      string(MAKE_C_IDENTIFIER "${rel}" id)
      set(src ${out_dir}/${id}.cpp)
      file(CONFIGURE OUTPUT ${src} CONTENT "#include <${rel}>\n#include <${rel}>\n" @ONLY)
      list(APPEND sources ${src})
    endforeach()
  endforeach()
  add_library(${name} OBJECT ${sources})
  target_link_libraries(${name} PRIVATE ${ARGN})
  weft_target_options(${name})
endfunction()
