//! The read-only gate: only statements that read the lake get through.
//!
//! Two layers. At parse level [`check_read_only`] accepts one statement that
//! is a query (`SELECT`, `WITH`, `VALUES`), `EXPLAIN` of one, `SHOW TABLES`,
//! `SHOW COLUMNS`, `SHOW FUNCTIONS` or `DESCRIBE`, and names what it refuses.
//! At plan level [`verify_plan`] applies DataFusion's [`SQLOptions`] with DDL,
//! DML and statements off, which also sees writes hidden in subqueries.
//!
//! Files outside the lake stay out of reach because the sessions have no
//! URL tables (`SELECT * FROM '/etc/passwd'` names an unknown table) and no
//! file-reading table functions (`read_csv`, `read_parquet` are unknown);
//! the only table functions are `generate_series` and `range`.

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::{DFParserBuilder, Statement};
use datafusion::sql::sqlparser::ast::{Query, SetExpr, Statement as SqlStatement};
use datafusion::sql::sqlparser::dialect::GenericDialect;

use crate::error::QueryError;

/// Parse `sql` (DataFusion's generic dialect) and return its one statement if
/// it only reads.
///
/// Errors: [`QueryError::Sql`] if it does not parse, [`QueryError::Empty`],
/// [`QueryError::MultipleStatements`], or [`QueryError::ReadOnly`] naming the
/// refused kind (`read-only: CREATE TABLE is not allowed`).
pub fn check_read_only(sql: &str) -> Result<Statement, QueryError> {
    let dialect = GenericDialect {};
    let mut statements = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .build()?
        .parse_statements()?;
    let statement = match statements.len() {
        0 => return Err(QueryError::Empty),
        1 => statements.pop_front().expect("one statement"),
        count => return Err(QueryError::MultipleStatements { count }),
    };
    check_statement(&statement)?;
    Ok(statement)
}

fn refuse(kind: impl Into<String>) -> Result<(), QueryError> {
    Err(QueryError::ReadOnly { kind: kind.into() })
}

fn check_statement(statement: &Statement) -> Result<(), QueryError> {
    match statement {
        Statement::Statement(inner) => check_sql_statement(inner),
        Statement::Explain(explain) => check_statement(&explain.statement),
        Statement::CreateExternalTable(_) => refuse("CREATE EXTERNAL TABLE"),
        Statement::CopyTo(_) => refuse("COPY"),
        Statement::Reset(_) => refuse("RESET"),
    }
}

fn check_sql_statement(statement: &SqlStatement) -> Result<(), QueryError> {
    match statement {
        SqlStatement::Query(query) => check_query(query),
        SqlStatement::Explain { statement, .. } => check_sql_statement(statement),
        SqlStatement::ShowTables { .. }
        | SqlStatement::ShowColumns { .. }
        | SqlStatement::ShowFunctions { .. }
        | SqlStatement::ExplainTable { .. } => Ok(()),
        other => refuse(statement_kind(other)),
    }
}

fn check_query(query: &Query) -> Result<(), QueryError> {
    if let Some(with) = &query.with {
        for cte in &with.cte_tables {
            check_query(&cte.query)?;
        }
    }
    check_set_expr(&query.body)
}

fn check_set_expr(body: &SetExpr) -> Result<(), QueryError> {
    match body {
        SetExpr::Select(select) if select.into.is_some() => refuse("SELECT INTO"),
        SetExpr::Query(query) => check_query(query),
        SetExpr::SetOperation { left, right, .. } => {
            check_set_expr(left)?;
            check_set_expr(right)
        }
        SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => {
            refuse(statement_kind(s))
        }
        // Writes nested deeper (in subqueries) are caught on the plan.
        _ => Ok(()),
    }
}

/// `CREATE TABLE` for `Statement::CreateTable(..)`: the variant name, split
/// at capitals, upper case.
fn statement_kind(statement: &SqlStatement) -> String {
    let debug = format!("{statement:?}");
    let variant: String = debug
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    let mut kind = String::with_capacity(variant.len() + 4);
    for (i, c) in variant.chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            kind.push(' ');
        }
        kind.push(c.to_ascii_uppercase());
    }
    if kind.is_empty() {
        "this statement".to_owned()
    } else {
        kind
    }
}

/// The plan-level check: refuse any DDL, DML, `COPY` or session statement
/// anywhere in `plan` (subqueries included).
pub fn verify_plan(plan: &LogicalPlan) -> Result<(), QueryError> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    options
        .verify_plan(plan)
        .map_err(|error| QueryError::ReadOnly {
            kind: offending_node(plan).unwrap_or_else(|| error.strip_backtrace()),
        })
}

/// The name of the first writing node of `plan`, for the error message.
fn offending_node(plan: &LogicalPlan) -> Option<String> {
    let mut found = None;
    let _ = plan.apply_with_subqueries(|node| {
        let name = match node {
            LogicalPlan::Ddl(ddl) => Some(ddl.name().to_owned()),
            LogicalPlan::Dml(dml) => Some(dml.op.to_string()),
            LogicalPlan::Copy(_) => Some("COPY".to_owned()),
            LogicalPlan::Statement(statement) => Some(statement.name().to_owned()),
            _ => None,
        };
        match name {
            Some(name) => {
                found = Some(name);
                Ok(TreeNodeRecursion::Stop)
            }
            None => Ok(TreeNodeRecursion::Continue),
        }
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(sql: &str) -> String {
        match check_read_only(sql) {
            Err(e @ (QueryError::ReadOnly { .. } | QueryError::MultipleStatements { .. })) => {
                e.to_string()
            }
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn accepts_reads() {
        for sql in [
            "SELECT 1",
            "select * from events where day = date '2026-11-03';",
            "WITH t AS (SELECT 1 AS a) SELECT a FROM t",
            "SELECT 1 UNION ALL SELECT 2",
            "VALUES (1), (2)",
            "EXPLAIN SELECT 1",
            "EXPLAIN ANALYZE SELECT 1",
            "SHOW TABLES",
            "SHOW COLUMNS FROM events",
            "DESCRIBE events",
        ] {
            check_read_only(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[test]
    fn names_what_it_refuses() {
        let cases = [
            (
                "CREATE TABLE t (a INT)",
                "read-only: CREATE TABLE is not allowed",
            ),
            (
                "CREATE TABLE t AS SELECT 1",
                "read-only: CREATE TABLE is not allowed",
            ),
            (
                "CREATE VIEW v AS SELECT 1",
                "read-only: CREATE VIEW is not allowed",
            ),
            (
                "INSERT INTO events VALUES (1)",
                "read-only: INSERT is not allowed",
            ),
            (
                "UPDATE events SET role = 'x'",
                "read-only: UPDATE is not allowed",
            ),
            ("DELETE FROM events", "read-only: DELETE is not allowed"),
            ("DROP TABLE events", "read-only: DROP is not allowed"),
            (
                "COPY events TO '/tmp/x.parquet'",
                "read-only: COPY is not allowed",
            ),
            (
                "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc'",
                "read-only: CREATE EXTERNAL TABLE is not allowed",
            ),
            (
                "SET datafusion.execution.batch_size = 1",
                "read-only: SET is not allowed",
            ),
            ("SELECT 1 INTO t", "read-only: SELECT INTO is not allowed"),
            (
                "EXPLAIN COPY events TO '/tmp/x'",
                "read-only: COPY is not allowed",
            ),
            (
                "EXPLAIN ANALYZE INSERT INTO events VALUES (1)",
                "read-only: INSERT is not allowed",
            ),
            (
                "SELECT 1; SELECT 2",
                "read-only: one statement at a time is allowed, got 2",
            ),
        ];
        for (sql, message) in cases {
            assert_eq!(refused(sql), message, "{sql}");
        }
    }

    #[test]
    fn parse_errors_are_sql_errors() {
        assert!(matches!(
            check_read_only("SELEC 1"),
            Err(QueryError::Sql(_))
        ));
        assert!(matches!(check_read_only("  ;"), Err(QueryError::Empty)));
    }
}
