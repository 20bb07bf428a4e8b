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
