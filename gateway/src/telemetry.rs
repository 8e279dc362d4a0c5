//! Tracing setup for the binary. Tests never call [`init`], so they stay silent.

use tracing_subscriber::EnvFilter;

/// Installs a compact stderr subscriber filtered by `RUST_LOG` (default
/// `info`). Calling it twice is harmless.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .compact()
        .try_init();
}
