//! Inserts the README's workflow into the database `DATABASE_URL` names (default
//! `sqlite://porter.db`) and prints its id: `cargo run --example workflow`, then
//! `porter worker` runs it and `porter workflows show ID` shows it.

use porter::workflow::{Step, Workflow};
use porter::{Client, InsertOpts, JobArgs};
use serde::{Deserialize, Serialize};

/// The built-in `sleep` job's args.
#[derive(Serialize, Deserialize)]
struct Sleep {
    ms: u64,
}

impl JobArgs for Sleep {
    const KIND: &'static str = "sleep";
}

#[tokio::main]
async fn main() -> porter::Result<()> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://porter.db".into());
    let client = Client::new(porter::store::open(&url).await?);
    let workflow = Workflow::new("nightly report")
        .step(Step::new("extract_a", &Sleep { ms: 200 }))
        .step(Step::new("extract_b", &Sleep { ms: 300 }))
        .step(Step::new("transform", &Sleep { ms: 100 }).after(["extract_a", "extract_b"]))
        .step(
            Step::raw("notify", "noop", serde_json::json!({}))
                .after(["transform"])
                .after_any()
                .opts(InsertOpts {
                    priority: Some(2),
                    ..Default::default()
                }),
        );
    let inserted = client.insert_workflow(workflow).await?;
    println!("{}", inserted.id);
    // Queues and kinds no live worker serves yet (none runs before `porter worker`).
    for warning in &inserted.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(())
}
