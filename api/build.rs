//! Rebuilds the crate when the web console's build output changes: its files are embedded
//! (`src/console.rs`), and a new build has new (content-hashed) file names that the embedding
//! macro alone would not notice.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // A path that does not exist would make cargo rerun this (and rebuild the crate) every time:
    // until `web/dist` is built, watch `web/` for it to appear.
    if std::path::Path::new("../web/dist").is_dir() {
        println!("cargo:rerun-if-changed=../web/dist");
    } else {
        println!("cargo:rerun-if-changed=../web");
    }
}
