//! Running one statement through the read-only gate.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;

use crate::error::QueryError;
use crate::read_only::{check_read_only, verify_plan};

/// The result of a statement: its schema (also when there are no rows) and
/// its batches.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    /// Column names and types of the result.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
}

impl QueryOutput {
    /// Number of rows over all batches.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Check `sql` with [`check_read_only`], plan it in `ctx`, check the plan
/// with [`verify_plan`], and return it unexecuted.
pub async fn plan_sql(ctx: &SessionContext, sql: &str) -> Result<DataFrame, QueryError> {
    let statement = check_read_only(sql)?;
    let state = ctx.state();
    let plan = state.statement_to_plan(statement).await?;
    verify_plan(&plan)?;
    Ok(ctx.execute_logical_plan(plan).await?)
}

/// Run one read-only statement in `ctx` and collect its result.
pub async fn run_sql(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
    Ok(run_query(ctx, sql, None).await?.batches)
}

/// Run one read-only statement in `ctx`; with `max_rows`, stop and fail with
/// [`QueryError::TooManyRows`] when the result has more rows than that.
pub async fn run_query(
    ctx: &SessionContext,
    sql: &str,
    max_rows: Option<usize>,
) -> Result<QueryOutput, QueryError> {
    let frame = plan_sql(ctx, sql).await?;
    let schema = SchemaRef::clone(frame.schema().inner());
    let batches = match max_rows {
        None => frame.collect().await?,
        Some(limit) => {
            // One row more than allowed tells us the result is too large
            // without computing all of it.
            let batches = frame
                .limit(0, Some(limit.saturating_add(1)))?
                .collect()
                .await?;
            if batches.iter().map(RecordBatch::num_rows).sum::<usize>() > limit {
                return Err(QueryError::TooManyRows { limit });
            }
            batches
        }
    };
    Ok(QueryOutput { schema, batches })
}
