//! Compiles `proto/ipamd.proto` with protox (pure Rust), so no `protoc` is needed.

#![forbid(unsafe_code)]

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/ipamd.proto");
    let descriptors = protox::compile(["ipamd.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
