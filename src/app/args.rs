//! The args of the app's jobs: what the app's writes enqueue (the tablo store's
//! [`tablo_delete_enqueue`](super::store::TabloStore::tablo_delete_enqueue)) and its workers
//! run ([`orphan_file_cleanup`](super::orphan_file_cleanup)). A module of their own, used by
//! both, so that neither needs the other.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::job::JobArgs;

/// Args of the `orphan_file_cleanup` job. A field it does not have is refused: a typo of
/// `tablo_id` would otherwise sweep every orphan instead of one tablo's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrphanFileCleanup {
    /// Only this (deleted) tablo's files; every orphan when absent.
    #[serde(default)]
    pub tablo_id: Option<Uuid>,
}

impl JobArgs for OrphanFileCleanup {
    const KIND: &'static str = "orphan_file_cleanup";
}
