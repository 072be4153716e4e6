//! porter's migrations, in named sets, and their bookkeeping.
//!
//! porter records the migrations it applied in a table of its own, [`TABLE`]
//! (`porter_migrations`: set name, version, name, applied_at, and the [`checksum`] of the SQL
//! applied), as River keeps
//! `river_migration`. It never reads or writes `_sqlx_migrations` or `PRAGMA user_version`:
//! those belong to the application whose database porter shares, which migrates with its own
//! tool before or after porter, in either order.
//!
//! * A [`MigrationSet`] is a name and its migrations in version order, each with its SQL for
//!   both backends. [`CORE`] is the queue's. An application keeps sets of its own in
//!   the same table (porter's tablo app does: its set is named `tablo`): [`super::migrate`] applies any
//!   set.
//! * Each migration runs in its own transaction together with its row in [`TABLE`], under a
//!   lock that makes processes migrating the same database at once take turns: `BEGIN
//!   IMMEDIATE` on SQLite (the write lock), `pg_advisory_xact_lock` on PostgreSQL (keyed by the
//!   schema). A migration must therefore be transactional (no `CREATE INDEX CONCURRENTLY`).
//! * A database that recorded a version of a set newer than this binary carries is refused
//!   with [`Error::DatabaseTooNew`]; one whose record of a set lacks a version below its newest,
//!   or holds one below 1, with [`Error::Migration`], nothing applied; so is one that applied
//!   a version from other SQL than this binary carries (its recorded [`checksum`]). Only
//!   [`TABLE`] is consulted.
//! * **Databases of porter 0.1** (versions kept in `PRAGMA user_version` on SQLite and in
//!   `_sqlx_migrations` on PostgreSQL) move in place on first open: porter recognises them by
//!   its own tables (not by the foreign bookkeeping, which may be the application's), records
//!   the core versions their schema shows in [`TABLE`], and on PostgreSQL deletes its own four
//!   old rows from `_sqlx_migrations` (matched by version and name): left there, they would
//!   make the application's `sqlx::migrate!` fail with "migration 1 was previously applied but
//!   is missing". Rows that are not porter's, and `user_version`, are never touched.

use crate::error::{Error, Result};

/// The table porter keeps its bookkeeping in, for every set.
pub const TABLE: &str = "porter_migrations";

/// One migration: its version within its set, a name, and its SQL on each backend.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Version within the set, ascending from 1.
    pub version: i64,
    /// A short name, recorded beside the version.
    pub name: &'static str,
    /// The SQL on SQLite (several statements).
    pub sqlite: &'static str,
    /// The SQL on PostgreSQL (several statements).
    pub postgres: &'static str,
}

/// A named set of migrations, recorded in [`TABLE`] under its name.
#[derive(Debug, Clone, Copy)]
pub struct MigrationSet {
    /// The set's name in [`TABLE`] (`porter` for the queue).
    pub name: &'static str,
    /// The migrations, in ascending version order.
    pub migrations: &'static [Migration],
}

impl MigrationSet {
    /// The newest version this set carries (0 for an empty set).
    pub const fn latest(&self) -> i64 {
        match self.migrations.last() {
            Some(m) => m.version,
            None => 0,
        }
    }

    /// The next migration to apply, given the versions the database recorded for this set;
    /// `None` when it is up to date. A recorded version above those this set carries means a
    /// newer binary migrated the database: it is refused. So is bookkeeping no porter writes:
    /// a version below the first, or one missing below the newest recorded (a row deleted by
    /// hand, part of the table restored). Applied now, the missing migration would run after
    /// the newer ones and put back the old definitions they replaced.
    pub(crate) fn next(&self, applied: &[i64]) -> Result<Option<&'static Migration>> {
        let newest = applied.iter().copied().max();
        if let Some(newest) = newest.filter(|v| *v > self.latest()) {
            return Err(Error::DatabaseTooNew {
                set: self.name,
                found: newest,
                known: self.latest(),
            });
        }
        if let Some(&unknown) = applied
            .iter()
            .find(|v| !self.migrations.iter().any(|m| m.version == **v))
        {
            return Err(Error::Migration(format!(
                "the database's migration set \"{}\" records version {unknown}, which no porter \
                 carries (its versions start at 1): its bookkeeping in {TABLE} was written by \
                 something else; nothing was changed",
                self.name
            )));
        }
        let next = self
            .migrations
            .iter()
            .find(|m| !applied.contains(&m.version));
        if let (Some(missing), Some(newest)) = (next, newest) {
            if missing.version < newest {
                return Err(Error::Migration(format!(
                    "the database's migration set \"{}\" records version {newest} but not \
                     {} ({}): its bookkeeping in {TABLE} lost a row (deleted by hand, or part \
                     of the table restored); porter does not apply a migration after newer \
                     ones. If the schema has it, record it again; nothing was changed",
                    self.name, missing.version, missing.name
                )));
            }
        }
        Ok(next)
    }
}

/// A migration's SQL as recorded beside its version: the SHA-256 of the text, in hex, with
/// carriage returns left out (a checkout on Windows turns line ends into CRLF).
pub fn checksum(sql: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in sql.split('\r') {
        hash.update(part.as_bytes());
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl MigrationSet {
    /// Refuses a database that applied one of this set's migrations from other SQL than this
    /// binary carries (`recorded`: version and checksum, `None` for a row written before
    /// porter recorded checksums, or by hand). A migration edited after a build applied it
    /// left that build's definitions in the database, reported as migrated: until 7 Dec
    /// porter compared versions only, and a file migrated by a build of an earlier 0059 was
    /// taken as up to date, then every worker start failed on a column it lacked (review of 7
    /// Dec). `sql_of` picks the backend's SQL.
    pub(crate) fn verify(
        &self,
        recorded: &[(i64, Option<String>)],
        sql_of: fn(&Migration) -> &'static str,
    ) -> Result<()> {
        for (version, sum) in recorded {
            let (Some(sum), Some(m)) =
                (sum, self.migrations.iter().find(|m| m.version == *version))
            else {
                continue;
            };
            let carried = checksum(sql_of(m));
            if *sum != carried {
                return Err(Error::Migration(format!(
                    "the database's migration set \"{}\" applied version {version} ({}) from other \
                     SQL than this binary carries (checksum {} there, {} here): the migration \
                     was changed after a build of porter applied it, and the database keeps \
                     that build's definitions. Migrate a copy made before it with this \
                     binary, or recreate the database; nothing was changed",
                    self.name,
                    m.name,
                    &sum[..sum.len().min(12)],
                    &carried[..12]
                )));
            }
        }
        Ok(())
    }
}

macro_rules! migration {
    ($version:literal, $name:literal, $file:literal) => {
        Migration {
            version: $version,
            name: $name,
            sqlite: include_str!(concat!("../../migrations-sqlite/", $file)),
            postgres: include_str!(concat!("../../migrations-postgres/", $file)),
        }
    };
}

/// The queue's own migrations (`migrations-sqlite/`, `migrations-postgres/`).
pub const CORE: MigrationSet = MigrationSet {
    name: "porter",
    migrations: &[
        migration!(1, "init", "0001_init.sql"),
        migration!(2, "porter_now", "0002_porter_now.sql"),
        migration!(3, "worker_lease", "0003_worker_lease.sql"),
        migration!(4, "tablo_tables_moved", "0004_tablo_tables_moved.sql"),
        migration!(5, "job_outputs", "0005_job_outputs.sql"),
        migration!(6, "queue_limits", "0006_queue_limits.sql"),
        migration!(7, "job_waits", "0007_job_waits.sql"),
        migration!(8, "porter_enqueue", "0008_porter_enqueue.sql"),
        migration!(9, "worker_serves", "0009_worker_serves.sql"),
        migration!(10, "workflows", "0010_workflows.sql"),
        migration!(11, "batches", "0011_batches.sql"),
        migration!(12, "job_deps_by_parent", "0012_job_deps_by_parent.sql"),
        migration!(
            13,
            "emptied_per_statement",
            "0013_emptied_per_statement.sql"
        ),
        migration!(
            14,
            "job_deps_per_statement",
            "0014_job_deps_per_statement.sql"
        ),
        migration!(15, "job_deps_unresolved", "0015_job_deps_unresolved.sql"),
        migration!(16, "job_deps_by_index", "0016_job_deps_by_index.sql"),
        migration!(
            17,
            "job_deps_counted_at_end",
            "0017_job_deps_counted_at_end.sql"
        ),
        migration!(
            18,
            "job_deps_ended_before",
            "0018_job_deps_ended_before.sql"
        ),
        migration!(
            19,
            "job_deps_without_foreign_keys",
            "0019_job_deps_without_foreign_keys.sql"
        ),
        migration!(
            20,
            "job_waits_counted_in_place",
            "0020_job_waits_counted_in_place.sql"
        ),
        migration!(
            21,
            "triggers_skip_plain_jobs",
            "0021_triggers_skip_plain_jobs.sql"
        ),
        migration!(22, "running_key_by_queue", "0022_running_key_by_queue.sql"),
        migration!(
            23,
            "sequence_lookups_by_index",
            "0023_sequence_lookups_by_index.sql"
        ),
        migration!(24, "worker_steady_since", "0024_worker_steady_since.sql"),
        migration!(
            25,
            "finalized_triggers_split",
            "0025_finalized_triggers_split.sql"
        ),
        migration!(26, "sequenced_jobs_by_id", "0026_sequenced_jobs_by_id.sql"),
        migration!(
            27,
            "sequenced_index_dropped",
            "0027_sequenced_index_dropped.sql"
        ),
        migration!(28, "workflow_steps_table", "0028_workflow_steps_table.sql"),
        migration!(29, "emptied_rows_locked", "0029_emptied_rows_locked.sql"),
        migration!(30, "sequence_next_locked", "0030_sequence_next_locked.sql"),
        migration!(
            31,
            "edges_deleted_at_once",
            "0031_edges_deleted_at_once.sql"
        ),
        migration!(
            32,
            "enqueue_parents_sequence_locks",
            "0032_enqueue_parents_sequence_locks.sql"
        ),
        migration!(33, "rows_porter_can_read", "0033_rows_porter_can_read.sql"),
        migration!(
            34,
            "parent_failed_append_guarded",
            "0034_parent_failed_append_guarded.sql"
        ),
        migration!(
            35,
            "enqueue_refuses_unreadable_json",
            "0035_enqueue_refuses_unreadable_json.sql"
        ),
        migration!(
            36,
            "retried_parents_waited_for",
            "0036_retried_parents_waited_for.sql"
        ),
        migration!(37, "times_porter_reads", "0037_times_porter_reads.sql"),
        migration!(
            38,
            "retried_callback_counted",
            "0038_retried_callback_counted.sql"
        ),
        migration!(
            39,
            "dependency_cascade_and_retried_parents",
            "0039_dependency_cascade_and_retried_parents.sql"
        ),
        migration!(
            40,
            "completions_counted_per_batch",
            "0040_completions_counted_per_batch.sql"
        ),
        migration!(
            41,
            "fetch_index_available_only",
            "0041_fetch_index_available_only.sql"
        ),
        migration!(
            42,
            "children_due_by_the_clock",
            "0042_children_due_by_the_clock.sql"
        ),
        migration!(
            43,
            "enqueue_wakes_held_parents",
            "0043_enqueue_wakes_held_parents.sql"
        ),
        migration!(
            44,
            "given_back_children_wait_again",
            "0044_given_back_children_wait_again.sql"
        ),
        migration!(
            45,
            "enqueue_checks_as_the_library_orders_them",
            "0045_enqueue_checks_as_the_library_orders_them.sql"
        ),
        migration!(
            46,
            "unstarted_marks_as_postgres_reads_them",
            "0046_unstarted_marks_as_postgres_reads_them.sql"
        ),
        migration!(
            47,
            "given_back_marks_beside_entries_that_are_not_objects",
            "0047_given_back_marks_beside_entries_that_are_not_objects.sql"
        ),
        migration!(
            48,
            "enqueue_path_ends_with_pg_temp",
            "0048_enqueue_path_ends_with_pg_temp.sql"
        ),
        migration!(
            49,
            "edges_by_parent_then_child",
            "0049_edges_by_parent_then_child.sql"
        ),
        migration!(
            50,
            "enqueue_strings_read_as_written",
            "0050_enqueue_strings_read_as_written.sql"
        ),
        migration!(
            51,
            "queue_changes_counted",
            "0051_queue_changes_counted.sql"
        ),
        migration!(
            52,
            "triggers_resolve_in_their_schema",
            "0052_triggers_resolve_in_their_schema.sql"
        ),
        migration!(
            53,
            "cancel_requests_counted",
            "0053_cancel_requests_counted.sql"
        ),
        migration!(
            54,
            "concurrency_keys_porter_can_claim",
            "0054_concurrency_keys_porter_can_claim.sql"
        ),
        migration!(
            55,
            "sequence_next_due_by_the_clock",
            "0055_sequence_next_due_by_the_clock.sql"
        ),
        migration!(
            56,
            "worker_outcomes_failing_at",
            "0056_worker_outcomes_failing_at.sql"
        ),
        migration!(
            57,
            "enqueue_marks_parents_again_after_a_deadlock",
            "0057_enqueue_marks_parents_again_after_a_deadlock.sql"
        ),
        migration!(
            58,
            "enqueue_written_again_after_a_deadlock",
            "0058_enqueue_written_again_after_a_deadlock.sql"
        ),
        migration!(
            59,
            "worker_clock_jumped_at",
            "0059_worker_clock_jumped_at.sql"
        ),
        migration!(
            60,
            "callback_recounted_from_a_wait",
            "0060_callback_recounted_from_a_wait.sql"
        ),
        migration!(
            61,
            "enqueue_sequence_read_under_snapshot_isolation",
            "0061_enqueue_sequence_read_under_snapshot_isolation.sql"
        ),
        migration!(
            62,
            "workflow_steps_by_job",
            "0062_workflow_steps_by_job.sql"
        ),
    ],
};

/// The core versions a porter 0.1 database has applied, as its schema shows them, when none
/// are recorded in [`TABLE`] yet: 1 with the four tables of its first migration
/// (`porter_jobs`, `porter_queues`, `porter_workers`, `porter_periodic`), 2 with `porter_now()`
/// (nothing to see on SQLite, where it implies 1), 3 with `porter_workers.lease_ms`. (Its
/// version 4 created `tablo_file_uploads`, now in the tablo app's own set, whose first migration
/// finds it there.) Some of the four tables but not all are not porter's: an application's own table of
/// such a name is refused, with nothing recorded, rather than taken for porter's.
pub(crate) fn porter_0_1_versions(core_tables: i64, now_fn: bool, lease: bool) -> Result<Vec<i64>> {
    match core_tables {
        0 => return Ok(Vec::new()),
        4 => {}
        _ => {
            return Err(Error::Migration(
                "the database holds some of porter's table names (porter_jobs, porter_queues, \
                 porter_workers, porter_periodic) but not all: tables porter did not create; \
                 rename them, or give porter a database or schema of its own"
                    .into(),
            ))
        }
    }
    Ok([true, now_fn, lease]
        .iter()
        .take_while(|present| **present)
        .zip(1..)
        .map(|(_, version)| version)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_set_is_in_ascending_version_order_from_1() {
        let versions: Vec<i64> = CORE.migrations.iter().map(|m| m.version).collect();
        let expected: Vec<i64> = (1..=CORE.migrations.len() as i64).collect();
        assert_eq!(versions, expected, "{}", CORE.name);
    }

    #[test]
    fn next_is_the_first_missing_and_unknown_versions_are_too_new() {
        assert_eq!(CORE.next(&[]).unwrap().unwrap().version, 1);
        assert_eq!(CORE.next(&[1, 2]).unwrap().unwrap().version, 3);
        let all: Vec<i64> = CORE.migrations.iter().map(|m| m.version).collect();
        assert!(CORE.next(&all).unwrap().is_none());
        match CORE.next(&[all.as_slice(), &[99]].concat()) {
            Err(Error::DatabaseTooNew {
                found: 99, known, ..
            }) => assert_eq!(known, CORE.latest()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn porter_0_1_versions_are_the_present_prefix() {
        assert_eq!(
            porter_0_1_versions(0, false, false).unwrap(),
            Vec::<i64>::new()
        );
        assert_eq!(porter_0_1_versions(4, true, false).unwrap(), vec![1, 2]);
        assert_eq!(porter_0_1_versions(4, true, true).unwrap(), vec![1, 2, 3]);
        assert_eq!(porter_0_1_versions(4, false, true).unwrap(), vec![1]);
        assert!(matches!(
            porter_0_1_versions(1, false, false),
            Err(Error::Migration(_))
        ));
    }
}
