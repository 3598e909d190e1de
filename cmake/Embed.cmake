# callhome_embed(OUT_CPP NAMESPACE ns SYMBOL sym FILES f1 f2 ...)
# Generates a .cpp defining `const std::vector<std::pair<std::string_view, std::string_view>> ns::sym`
# holding (file name, file contents) of every listed file, so binaries carry their YANG modules
# and SQL migrations and need no install path.
function(callhome_embed out_cpp)
    cmake_parse_arguments(E "" "NAMESPACE;SYMBOL" "FILES" ${ARGN})
    add_custom_command(
        OUTPUT ${out_cpp}
        COMMAND ${CMAKE_COMMAND} -DOUT=${out_cpp} -DNAMESPACE=${E_NAMESPACE} -DSYMBOL=${E_SYMBOL}
                "-DFILES=${E_FILES}" -P ${PROJECT_SOURCE_DIR}/cmake/EmbedRun.cmake
        DEPENDS ${E_FILES} ${PROJECT_SOURCE_DIR}/cmake/EmbedRun.cmake
        COMMENT "Embedding ${E_SYMBOL}"
        VERBATIM)
endfunction()
