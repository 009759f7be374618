//! The `driftgate` binary: installs the TLS crypto provider and hands over to the CLI.

/// mimalloc: every request allocates (its metadata, changes, event line and answer); glibc's
/// allocator was a tenth of the CPU under load (README "Performance").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Installing fails only if a provider is already installed, which is then used instead.
    let _ = rustls::crypto::ring::default_provider().install_default();
    driftgate::cli::run()
}
