//! The `driftgate` binary: installs the TLS crypto provider and hands over to the CLI.

fn main() -> std::process::ExitCode {
    // Installing fails only if a provider is already installed, which is then used instead.
    let _ = rustls::crypto::ring::default_provider().install_default();
    driftgate::cli::run()
}
