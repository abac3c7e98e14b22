//! Compiles `proto/*.proto` with the pure-Rust `protox` front end, so a plain `cargo build` works on a
//! machine without `protoc`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/marketdata.proto");
    let fds = protox::compile(["proto/marketdata.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
