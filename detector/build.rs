//! Link-time settings of everything that links this crate:
//! - an rpath to libtorch, so binaries and tests run without LD_LIBRARY_PATH;
//! - tcmalloc (feature `tcmalloc`, default) as the process's malloc: libtorch's CPU inference
//!   ran ~20% faster with it than with glibc malloc here (scripts/bench.sh, docs/performance.md).
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    if std::env::var_os("CARGO_FEATURE_TCMALLOC").is_some() {
        const LIB: &str = "libtcmalloc_minimal.so.4";
        let dirs = [
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/usr/lib64",
            "/usr/lib",
        ];
        if !dirs
            .iter()
            .any(|d| std::path::Path::new(d).join(LIB).exists())
        {
            panic!(
                "{LIB} not found: install it (Debian: apt-get install libtcmalloc-minimal4; \
                 scripts/setup.sh does) or build without it (--no-default-features)"
            );
        }
        // It replaces malloc only when loaded before libc: a link-lib of this crate comes
        // before std's libc in every dependent's link line (a link-arg would come after).
        println!("cargo:rustc-link-lib=dylib:+verbatim={LIB}");
    }
}
