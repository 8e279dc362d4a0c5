//! Compiles every `.proto` under this crate with protox (pure Rust, so a fresh
//! machine needs no `protoc`) and writes the descriptor set for reflection.

use std::path::{Path, PathBuf};

const PROTOS: &[&str] = &[
    "whatsapp/ingest/v1/ingest.proto",
    "whatsapp/jobs/v1/jobs.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }

    let fds = protox::compile(PROTOS, [root.as_path()])?;
    std::fs::write(
        Path::new(&out).join("whatsapp_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .type_attribute(".", "#[allow(clippy::all)]")
        .compile_fds(fds)?;
    Ok(())
}
