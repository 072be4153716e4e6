//! Inserts the README's batch into the database `DATABASE_URL` names (default
//! `sqlite://porter.db`) and prints its id: `cargo run --example batch`, then `porter worker`
//! runs it and `porter batches show ID` shows it.

use porter::batch::Batch;
use porter::{Client, JobArgs};
use serde::{Deserialize, Serialize};

/// The built-in `sleep` job's args.
#[derive(Serialize, Deserialize)]
struct Sleep {
    ms: u64,
}

impl JobArgs for Sleep {
    const KIND: &'static str = "sleep";
}

/// The built-in `fail` job's args.
#[derive(Serialize, Deserialize)]
struct Fail {
    message: String,
}

impl JobArgs for Fail {
    const KIND: &'static str = "fail";
    fn insert_opts(&self) -> porter::InsertOpts {
        porter::InsertOpts {
            max_attempts: Some(1),
            ..Default::default()
        }
    }
}

/// The callback: the built-in `noop`, which takes any args.
#[derive(Serialize, Deserialize)]
struct Done {
    report: String,
}

impl JobArgs for Done {
    const KIND: &'static str = "noop";
}

#[tokio::main]
async fn main() -> porter::Result<()> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://porter.db".into());
    let client = Client::new(porter::store::open(&url).await?);
    let mut batch = Batch::new();
    for ms in [100, 200, 300] {
        batch.push(&Sleep { ms });
    }
    batch.push(&Fail {
        message: "one bad apple".into(),
    });
    let batch = batch.on_complete(&Done {
        report: "weekly".into(),
    });
    let inserted = client.insert_batch(batch).await?;
    println!("{} {}", inserted.id, inserted.callback.id);
    // Queues and kinds no live worker serves yet (none runs before `porter worker`).
    for warning in &inserted.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(())
}
