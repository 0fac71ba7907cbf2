/* Every file of the package includes libdocauth's header through this one, so that a build
 * that cannot find it says what to do instead of only "docauth.h: No such file". */
#if defined(__has_include)
#if !__has_include("docauth.h")
#error "docauth.h not found. Install libdocauth (make install PREFIX=...) and set PKG_CONFIG_PATH=<prefix>/lib/pkgconfig; with -tags docauth_static set CGO_CFLAGS=-I<includedir> CGO_LDFLAGS=-L<libdir>. See the binding's README, Building."
#endif
#endif
#include "docauth.h"
