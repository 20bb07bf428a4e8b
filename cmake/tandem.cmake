# Common compile options and the helper that turns src/<layer>/ into a library.

add_library(tandem_options INTERFACE)
target_compile_options(tandem_options INTERFACE -Wall -Wextra -Wpedantic)
if(TANDEM_WERROR)
    target_compile_options(tandem_options INTERFACE -Werror)
endif()
if(TANDEM_SANITIZE)
    target_compile_options(tandem_options INTERFACE -fsanitize=address,undefined
                                                    -fno-omit-frame-pointer -fno-sanitize-recover=all)
    target_link_options(tandem_options INTERFACE -fsanitize=address,undefined)
endif()
if(TANDEM_STATIC_RUNTIME)
    # A section per function, for --gc-sections and for tandem_hot_functions_first.
    target_compile_options(tandem_options INTERFACE -ffunction-sections)
endif()
target_include_directories(tandem_options INTERFACE ${PROJECT_SOURCE_DIR}/include)
# Boost.Asio and friends: header-only parts used without the deprecated APIs.
target_compile_definitions(tandem_options INTERFACE BOOST_ASIO_NO_DEPRECATED
                                                    BOOST_ALLOW_DEPRECATED_HEADERS)

# tandem_layer(NAME DEPS...): every .cpp in src/NAME/ becomes the static library
# tandem_NAME, linked to the given dependencies. Layers only link downward, so an
# include that crosses the layering fails to link.
function(tandem_layer name)
    file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${name}/*.cpp)
    if(sources)
        add_library(tandem_${name} STATIC ${sources})
        target_link_libraries(tandem_${name} PUBLIC tandem_options ${ARGN})
    else()  # a layer still empty (or header-only)
        add_library(tandem_${name} INTERFACE)
        target_link_libraries(tandem_${name} INTERFACE tandem_options ${ARGN})
    endif()
endfunction()

# tandem_hot_functions_first(TARGET): links TARGET with lld, the functions that the
# benchmark's runs call (cmake/hot-symbols.txt, from contrib/bench/hot_symbols.py) placed
# first and together. The kernel maps a binary's code 64 KB around each page a run
# touches: scattered over 2.4 MB of code, a sync that changes nothing had 2.2 MB of it
# resident; in this order about 1 MB less (c5000 S2 IMAP-IMAP: 6.0 -> 4.8 MB peak RSS). A
# function missing from the list only lands among the cold ones; without lld, the order
# is ld's.
option(TANDEM_HOT_ORDER "Link with lld, the functions the benchmark calls first" ON)
function(tandem_hot_functions_first target)
    if(NOT TANDEM_HOT_ORDER)
        return()
    endif()
    include(CheckLinkerFlag)
    # lld 16 (Debian's lld-16) also packs the relative relocations of the position-
    # independent binary (DT_RELR, which glibc 2.36 reads): every start reads all of them,
    # 123 KB of .rela.dyn in 5,100 entries of 24 bytes, and 1 KB packed. lld 14 packs them
    # too (--pack-dyn-relocs=relr), but without the GLIBC_ABI_DT_RELR version dependency
    # that glibc requires of such a binary, so it does not start.
    set(lld16 /usr/lib/llvm-16/bin)
    check_linker_flag(CXX "-B${lld16};-fuse-ld=lld;-Wl,-z,pack-relative-relocs" TANDEM_HAVE_LLD16)
    if(TANDEM_HAVE_LLD16)
        set(lld -B${lld16} -fuse-ld=lld -Wl,-z,pack-relative-relocs)
    else()
        check_linker_flag(CXX "-fuse-ld=lld" TANDEM_HAVE_LLD)
        if(NOT TANDEM_HAVE_LLD)
            message(STATUS "lld not found: ${target}'s functions stay in ld's order")
            return()
        endif()
        message(STATUS "lld-16 not found: ${target}'s relocations stay unpacked")
        set(lld -fuse-ld=lld)
    endif()
    set(list ${PROJECT_SOURCE_DIR}/cmake/hot-symbols.txt)
    # The link map (tandem.map beside the binary) tells contrib/bench/hot_symbols.py which
    # functions share an input section, which lld can only move whole.
    target_link_options(${target} PRIVATE ${lld} -Wl,--symbol-ordering-file=${list}
                        -Wl,--no-warn-symbol-ordering -Wl,-Map=$<TARGET_FILE:${target}>.map)
    set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS ${list})
endfunction()
