//! Build script: gives the shared library its soname on Linux.
//!
//! `make install` installs `libdocauth.so.<version>` with the soname `libdocauth.so.<major>`
//! plus the two usual symlinks, so C programs record the major version they were linked with.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".to_string());
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libdocauth.so.{major}");
    }
}
