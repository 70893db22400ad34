//! Compiles `proto/parlor/v1/*.proto` with the vendored `protoc`, so the build needs nothing
//! installed and fetches nothing.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let includes = protoc_bin_vendored::include_path()?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    let protos =
        ["common", "users", "moderation", "chat"].map(|p| format!("../../proto/parlor/v1/{p}.proto").into());
    let includes: [std::path::PathBuf; 2] = ["../../proto".into(), includes];
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("parlor_descriptor.bin"))
        .compile_with_config(config, &protos, &includes)?;
    println!("cargo:rerun-if-changed=../../proto");
    Ok(())
}
