# cmake -DTARGET=name -DFILES="a.c;b.h" -P public-api-only.cmake
#
# A program built on the public API only: every quoted #include of its
# files names "peerback.h", "peerback/<name>.h" or a header beside the file
# itself, and no file includes the library's private headers with <...>.
# Its include path is include/ alone (CMakeLists.txt), so a private header
# would not be found anyway; this also refuses paths that reach past it
# ("../../agent/...") and says which line.
set(bad "")
foreach(f ${FILES})
  get_filename_component(dir ${f} DIRECTORY)
  file(STRINGS ${f} lines REGEX "^[ \t]*#[ \t]*include[ \t]*[\"<]")
  foreach(line ${lines})
    if(line MATCHES "^[ \t]*#[ \t]*include[ \t]*\"([^\"]*)\"")
      set(h ${CMAKE_MATCH_1})
      if(h MATCHES "^peerback(\\.h|/[A-Za-z0-9_-]+\\.h)$")
        continue()
      endif()
      if(h MATCHES "^[A-Za-z0-9_.-]+\\.h$" AND EXISTS ${dir}/${h})
        continue()
      endif()
      list(APPEND bad "${f}: ${line}")
    elseif(line MATCHES "<(agent|protocol|qr|tools|tests)/")
      list(APPEND bad "${f}: ${line}")
    endif()
  endforeach()
endforeach()
if(bad)
  list(JOIN bad "\n  " text)
  message(FATAL_ERROR "${TARGET} uses the public API only (include/peerback.h, include/peerback/*.h):\n  ${text}")
endif()
