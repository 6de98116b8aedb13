# Compiles SOURCE with COMPILER (-fsyntax-only; a .cu file with nvcc's front end, -cuda) and checks
# the outcome its first line announces: "// expect: success", or "// expect: <text>" for a compile
# error whose output contains <text>.
file(STRINGS ${SOURCE} first LIMIT_COUNT 1)
string(REGEX REPLACE "^// expect: " "" expected "${first}")
if(SOURCE MATCHES "\\.cu$")
  set(front_end -cuda -o /dev/null)
else()
  set(front_end -fsyntax-only)
endif()
execute_process(COMMAND ${COMPILER} -std=c++20 ${front_end} -I${INCLUDE} ${SOURCE}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(expected STREQUAL "success")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "expected ${SOURCE} to compile; it failed:\n${out}")
  endif()
elseif(rc EQUAL 0)
  message(FATAL_ERROR "expected ${SOURCE} to fail to compile with \"${expected}\"; it compiled")
else()
  string(FIND "${out}" "${expected}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "expected \"${expected}\" in the errors of ${SOURCE}; got:\n${out}")
  endif()
endif()
