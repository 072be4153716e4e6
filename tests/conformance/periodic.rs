//! Periodic jobs: exactly one job per (name, slot), also under races.

use std::sync::Arc;

use porter::job::InsertOpts;
use porter::store::*;

use crate::{backend_case, job_with, total};

fn periodic(slot: i64) -> PeriodicEnqueueParams {
    PeriodicEnqueueParams {
        name: "report".into(),
        slot,
        job: job_with(
            "noop",
            InsertOpts {
                metadata: Some(serde_json::json!({"slot": slot})),
                ..Default::default()
            },
        ),
    }
}

backend_case! {
    async fn periodic_slot_yields_one_job(db: TestDb) {
        let s = &*db.store;
        assert!(
            s.periodic_enqueue(periodic(1000))
                .await
                .unwrap()
                .is_none(),
            "first sight only records"
        );
        assert!(
            s.periodic_enqueue(periodic(1000)).await.unwrap().is_none(),
            "same slot"
        );
        let j = s
            .periodic_enqueue(periodic(2000))
            .await
            .unwrap()
            .expect("next slot inserts");
        assert_eq!(j.job.metadata["slot"], 2000);
        assert!(s
            .periodic_enqueue(periodic(2000))
            .await
            .unwrap()
            .is_none());
        assert!(
            s.periodic_enqueue(periodic(1500))
                .await
                .unwrap()
                .is_none(),
            "never backwards"
        );
        let k = s.periodic_enqueue(periodic(9000)).await.unwrap();
        assert!(k.is_some(), "a gap of many slots yields one job");
        assert_eq!(total(s).await, 2);
    }
}

backend_case! {
    async fn periodic_slot_races_yield_one_job(db: TestDb) {
        let mut stores: Vec<Arc<Store>> = vec![db.store.clone()];
        for _ in 0..2 {
            stores.push(db.reopen().await);
        }
        db.store.periodic_enqueue(periodic(0)).await.unwrap();
        for slot in 1..=5 {
            let mut tasks = Vec::new();
            for s in &stores {
                for _ in 0..3 {
                    let s = s.clone();
                    tasks.push(tokio::spawn(async move {
                        s.periodic_enqueue(periodic(slot))
                            .await
                            .unwrap()
                            .is_some()
                    }));
                }
            }
            let mut won = 0;
            for t in tasks {
                won += t.await.unwrap() as usize;
            }
            assert_eq!(won, 1, "slot {slot}: exactly one winner");
        }
        assert_eq!(total(&db.store).await, 5);
    }
}
