//! Engine settings and the construction of DataFusion sessions.

use std::num::NonZeroUsize;
use std::sync::Arc;

use datafusion::execution::memory_pool::{FairSpillPool, MemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

/// Settings of the query engine shared by the CLI, the shell, the server and
/// the monthly job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryConfig {
    /// Bytes the operators of all queries sharing one runtime may hold at once
    /// (sorts, joins and aggregations spill or fail beyond it). `None`: unbounded.
    pub memory_limit: Option<usize>,
    /// How many partitions DataFusion plans for (its parallelism).
    pub target_partitions: usize,
}

/// Default memory limit: 2 GiB, the figure of the `serve` example in the
/// brief; a bureau analyst's laptop has more, a 2-core VM not much more.
pub const DEFAULT_MEMORY_LIMIT: usize = 2 << 30;

/// Default parallelism: one partition per available core, as DataFusion does.
fn default_target_partitions() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            memory_limit: Some(DEFAULT_MEMORY_LIMIT),
            target_partitions: default_target_partitions(),
        }
    }
}

impl QueryConfig {
    /// Build the runtime (memory pool, disk manager for spills, caches) for
    /// this configuration. Share one runtime between the sessions of a process
    /// so that the memory limit holds for all their queries together.
    ///
    /// The list-files cache is disabled: the lake grows while we read it, and
    /// a cached listing would hide files written after the first query.
    pub fn runtime(&self) -> Arc<RuntimeEnv> {
        let mut builder = RuntimeEnvBuilder::new().with_object_list_cache_limit(0);
        if let Some(limit) = self.memory_limit {
            let pool: Arc<dyn MemoryPool> = Arc::new(TrackConsumersPool::new(
                FairSpillPool::new(limit),
                NonZeroUsize::new(3).expect("3 is not zero"),
            ));
            builder = builder.with_memory_pool(pool);
        }
        // With the default disk manager (OS temp directory, created lazily) and
        // the default caches, building cannot fail.
        builder
            .build_arc()
            .expect("building a DataFusion runtime with default disk manager")
    }
}

/// A new session with this configuration and its own runtime.
///
/// The session has DataFusion's functions, `information_schema` (for
/// `SHOW TABLES`, `SHOW COLUMNS`), no URL tables (`SELECT * FROM '/file'` is
/// an unknown table) and no file-reading table functions. Register the lake
/// with [`crate::register_lake`].
pub fn session(config: &QueryConfig) -> SessionContext {
    session_with_runtime(config, config.runtime())
}

/// A new session with this configuration sharing an existing runtime (and so
/// its memory pool). See [`session`].
pub fn session_with_runtime(config: &QueryConfig, runtime: Arc<RuntimeEnv>) -> SessionContext {
    let session_config = SessionConfig::new()
        .with_target_partitions(config.target_partitions.max(1))
        .with_information_schema(true);
    let state = SessionStateBuilder::new()
        .with_config(session_config)
        .with_runtime_env(runtime)
        .with_default_features()
        .build();
    SessionContext::new_with_state(state)
}
