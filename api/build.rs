//! Rebuilds the crate when the web console's build output changes: its files are embedded
//! (`src/console.rs`), and a new build has new (content-hashed) file names that the embedding
//! macro alone would not notice.

fn main() {
    println!("cargo:rerun-if-changed=../web/dist");
}
