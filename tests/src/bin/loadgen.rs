//! `make bench`: signed webhook POSTs against a real gateway + ingest-svc
//! (started in-process on a fresh PostgreSQL database, or SQLite with
//! `--sqlite`), reporting requests/s and latency percentiles.
//!
//! Usage: loadgen [--requests N] [--concurrency C] [--batch B] [--sqlite]

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::{TestDb, TestSystem};
use tokio::sync::Semaphore;

struct Args {
    requests: usize,
    concurrency: usize,
    batch: usize,
    sqlite: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        requests: 5_000,
        concurrency: 32,
        batch: 1,
        sqlite: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| -> anyhow::Result<usize> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("{name} needs a number"))
        };
        match flag.as_str() {
            "--requests" => args.requests = value("--requests")?,
            "--concurrency" => args.concurrency = value("--concurrency")?.max(1),
            "--batch" => args.batch = value("--batch")?.max(1),
            "--sqlite" => args.sqlite = true,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

/// One POST body with `batch` distinct text messages.
fn body(request: usize, batch: usize) -> Vec<u8> {
    let messages: Vec<serde_json::Value> = (0..batch)
        .map(|i| {
            serde_json::json!({
                "from": format!("1650555{:04}", (request * batch + i) % 10_000),
                "id": format!("wamid.BENCH{request:08}x{i:04}"),
                "timestamp": "1764770000",
                "type": "text",
                "text": {"body": "Hi! Is the shop open on Saturday? \u{1f600}"}
            })
        })
        .collect();
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Bench"}, "wa_id": "16505550000"}],
            "messages": messages
        }}]}]
    })
    .to_string()
    .into_bytes()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let db = if args.sqlite {
        TestDb::sqlite()
    } else {
        TestDb::postgres().await
    };
    let backend = if args.sqlite { "sqlite" } else { "postgres" };
    let sys = Arc::new(TestSystem::on(db).await);
    let bodies: Vec<Arc<Vec<u8>>> = (0..args.requests)
        .map(|r| Arc::new(body(r, args.batch)))
        .collect();

    // Warm up connections (not measured).
    for _ in 0..10 {
        sys.gateway.post_signed(&body(usize::MAX / 2, 1)).await;
    }

    let gate = Arc::new(Semaphore::new(args.concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.requests);
    for b in bodies {
        let permit = gate.clone().acquire_owned().await?;
        let sys = sys.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let status = sys.gateway.post_signed(&b).await.status().as_u16();
            drop(permit);
            (status, t.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut failures = 0usize;
    for t in tasks {
        let (status, elapsed) = t.await?;
        if status != 200 {
            failures += 1;
        }
        latencies.push(elapsed);
    }
    let wall = started.elapsed();
    latencies.sort();
    let stats = sys.ingest.stats().await;
    let expected = (args.requests * args.batch) as u64 + 1;

    println!(
        "loadgen: {} signed POSTs x {} message(s), concurrency {}, {backend}",
        args.requests, args.batch, args.concurrency
    );
    println!("  wall        {:.2} s", wall.as_secs_f64());
    println!(
        "  throughput  {:.0} requests/s, {:.0} messages/s",
        args.requests as f64 / wall.as_secs_f64(),
        (args.requests * args.batch) as f64 / wall.as_secs_f64()
    );
    println!(
        "  latency     p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.90).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    println!("  non-200     {failures}");
    println!(
        "  recorded    {} messages (expected {expected})",
        stats.messages
    );
    anyhow::ensure!(failures == 0, "{failures} requests were not answered 200");
    anyhow::ensure!(
        stats.messages == expected,
        "recorded {} messages, expected {expected}",
        stats.messages
    );
    Ok(())
}
