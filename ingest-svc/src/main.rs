//! `ingest-svc` serves gRPC; `ingest-svc migrate` applies migrations and exits.

use anyhow::Context;
use ingest_svc::{Application, Settings, db, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("ingest-svc: {err}");
            std::process::exit(2);
        }
    };
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {
            let app = Application::build(settings).await?;
            tracing::info!(addr = %app.local_addr(), "ingest-svc listening");
            app.run_until_stopped().await
        }
        Some("migrate") => {
            db::connect_and_migrate(&settings.database_url, settings.max_db_connections)
                .await
                .context("migration failed")?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command {other:?} (expected `migrate` or nothing)"),
    }
}
