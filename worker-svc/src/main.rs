use worker_svc::{config::Settings, startup::Application, telemetry};

#[tokio::main]
async fn main() {
    telemetry::init();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("worker-svc: configuration error: {e}");
            std::process::exit(1);
        }
    };
    let result = async {
        Application::build(settings)
            .await?
            .run_until_stopped()
            .await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = format!("{e:#}"), "worker-svc failed");
        std::process::exit(1);
    }
}
