//! The gateway binary: settings from the environment, then serve until
//! Ctrl-C/SIGTERM. Everything else lives in the `gateway` library.

use std::process::ExitCode;

use gateway::config::Settings;
use gateway::startup::Application;

#[tokio::main]
async fn main() -> ExitCode {
    gateway::telemetry::init();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("gateway: {err}");
            return ExitCode::FAILURE;
        }
    };
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(err) => {
            eprintln!("gateway: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %app.local_addr(), "gateway listening");
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "gateway stopped with an error");
            ExitCode::FAILURE
        }
    }
}
