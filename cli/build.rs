//! Link-time settings of the argus binary (and its tests and bench): an rpath to libtorch, so it
//! runs without LD_LIBRARY_PATH. tcmalloc comes through argus-detector (its build.rs).
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
