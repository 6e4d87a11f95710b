# CTest driver of one fuzz target (tests/fuzz/CMakeLists.txt): runs it for SECONDS over a scratch
# copy of its seed corpus and saved regression inputs, so the run never writes into the source
# tree. -D FUZZER=<binary> NAME=<target> SOURCE_DIR=<tests/fuzz> WORK_DIR=<scratch> SECONDS=<n>
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}/corpus" "${WORK_DIR}/artifacts")
foreach(kind corpus regress)
  file(GLOB inputs "${SOURCE_DIR}/${kind}/${NAME}/*")
  if(inputs)
    file(COPY ${inputs} DESTINATION "${WORK_DIR}/corpus")
  endif()
endforeach()
execute_process(
  COMMAND "${FUZZER}" -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048
    -print_final_stats=1 "-artifact_prefix=${WORK_DIR}/artifacts/" "${WORK_DIR}/corpus"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzz_${NAME} failed (${rc}): the input is in ${WORK_DIR}/artifacts/; "
    "save it under tests/fuzz/regress/${NAME}/ and report it")
endif()
