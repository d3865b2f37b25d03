//! Compiles `proto/lienthong/v1/*.proto` with protox (pure Rust, no `protoc`) and generates
//! the tonic/prost code, plus the encoded file descriptor set that server reflection
//! serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "types.proto",
        "agency.proto",
        "admin.proto",
        "directory.proto",
        "relay.proto",
    ]
    .map(|f| root.join("lienthong/v1").join(f));
    for f in &files {
        // compile_fds emits no rerun-if-changed, and the files live outside the crate.
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("lienthong_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .bytes(".")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
