//! The rosters `dims/schools` and `dims/users` (CSV with a header row, or
//! Parquet), loaded and validated into Arrow batches.
//!
//! Validation refuses what would silently give wrong figures: a missing column
//! (named), a `school_id` that is not 10 ASCII digits (the line is named), a
//! `student_base` that is not a non-negative integer, an empty `user_id`, a
//! school listed twice. Cells are trimmed; an empty `name` is null.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Int64Builder, RecordBatch, StringArray, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{AggregateError, Result};

/// Columns of `dims/schools` (lake.md), all required.
pub const SCHOOL_COLUMNS: [&str; 7] = [
    "school_id",
    "name",
    "county_code",
    "county_name",
    "city_code",
    "category",
    "student_base",
];
/// Required columns of `dims/users`; `name` is optional.
pub const USER_COLUMNS: [&str; 3] = ["user_id", "school_id", "role"];

/// The loaded rosters.
#[derive(Debug, Clone)]
pub struct Rosters {
    /// `school_id, name, county_code, county_name, city_code, category` (Utf8)
    /// and `student_base` (Int64).
    pub schools: RecordBatch,
    /// `user_id, school_id, role, name` (Utf8; `name` nullable).
    pub users: RecordBatch,
    /// The users roster file, for messages.
    pub users_file: PathBuf,
}

/// Schema of the loaded `schools` roster.
pub fn schools_schema() -> SchemaRef {
    let mut fields: Vec<Field> = SCHOOL_COLUMNS[..6]
        .iter()
        .map(|c| Field::new(*c, DataType::Utf8, *c == "name" || c.ends_with("_name")))
        .collect();
    fields.push(Field::new("student_base", DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

/// Schema of the loaded `users` roster.
pub fn users_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("school_id", DataType::Utf8, false),
        Field::new("role", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

/// Loads `LAKE/dims/schools.{csv,parquet}` and `LAKE/dims/users.{csv,parquet}`
/// (CSV is preferred when both exist).
pub fn load(lake: &Path) -> Result<Rosters> {
    let schools_file = find(lake, "schools")?;
    let users_file = find(lake, "users")?;
    let schools = load_schools(&schools_file)?;
    let users = load_users(&users_file)?;
    Ok(Rosters {
        schools,
        users,
        users_file,
    })
}

fn find(lake: &Path, table: &str) -> Result<PathBuf> {
    for ext in ["csv", "parquet"] {
        let p = lake.join("dims").join(format!("{table}.{ext}"));
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(AggregateError::Roster(format!(
        "missing roster {}/dims/{table}.csv (or {table}.parquet)",
        lake.display()
    )))
}

/// Where a row came from, for messages.
#[derive(Debug, Clone, Copy)]
enum Loc {
    Line(u64),
    Row(usize),
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::Line(n) => write!(f, "line {n}"),
            Loc::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// Reads a roster file and calls `row` with the values of `required ++
/// optional` columns (None for an absent optional column or a null cell).
fn read_rows(
    path: &Path,
    required: &[&str],
    optional: &[&str],
    mut row: impl FnMut(&[Option<&str>]) -> Result<(), String>,
) -> Result<()> {
    let fail = |loc: Option<Loc>, msg: String| {
        AggregateError::Roster(match loc {
            Some(loc) => format!("{} {loc}: {msg}", path.display()),
            None => format!("{}: {msg}", path.display()),
        })
    };
    let wanted: Vec<&str> = required.iter().chain(optional).copied().collect();
    if path.extension().is_some_and(|e| e == "parquet") {
        let file = File::open(path).map_err(|e| fail(None, e.to_string()))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| fail(None, e.to_string()))?;
        let schema = builder.schema().clone();
        let index: Vec<Option<usize>> = wanted.iter().map(|c| schema.index_of(c).ok()).collect();
        if let Some(missing) = required.iter().zip(&index).find(|(_, i)| i.is_none()) {
            return Err(fail(None, format!("missing column {}", missing.0)));
        }
        let reader = builder.build().map_err(|e| fail(None, e.to_string()))?;
        let mut n = 0usize;
        for batch in reader {
            let batch = batch.map_err(|e| fail(None, e.to_string()))?;
            let cols: Vec<Option<StringArray>> = index
                .iter()
                .map(|i| {
                    i.map(|i| {
                        cast(batch.column(i), &DataType::Utf8).map(|a| {
                            a.as_any()
                                .downcast_ref::<StringArray>()
                                .cloned()
                                .expect("cast to Utf8 gives a StringArray")
                        })
                    })
                    .transpose()
                })
                .collect::<Result<_, _>>()
                .map_err(|e| fail(None, e.to_string()))?;
            let mut values: Vec<Option<&str>> = vec![None; cols.len()];
            for r in 0..batch.num_rows() {
                n += 1;
                for (v, c) in values.iter_mut().zip(&cols) {
                    *v = c
                        .as_ref()
                        .and_then(|c| (!c.is_null(r)).then(|| c.value(r).trim()));
                }
                row(&values).map_err(|m| fail(Some(Loc::Row(n)), m))?;
            }
        }
        return Ok(());
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| fail(None, e.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|e| fail(None, e.to_string()))?
        .clone();
    let index: Vec<Option<usize>> = wanted
        .iter()
        .map(|c| headers.iter().position(|h| h == *c))
        .collect();
    if let Some(missing) = required.iter().zip(&index).find(|(_, i)| i.is_none()) {
        return Err(fail(None, format!("missing column {}", missing.0)));
    }
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(fail(None, e.to_string())),
        }
        let line = record.position().map_or(0, |p| p.line());
        let values: Vec<Option<&str>> = index
            .iter()
            .map(|i| i.and_then(|i| record.get(i)))
            .collect();
        row(&values).map_err(|m| fail(Some(Loc::Line(line)), m))?;
    }
    Ok(())
}

/// True for exactly 10 ASCII digits (the 学校标识码).
pub fn is_school_id(s: &str) -> bool {
    s.len() == 10 && s.bytes().all(|b| b.is_ascii_digit())
}

fn school_id(v: Option<&str>) -> Result<&str, String> {
    let s = v.unwrap_or("");
    if is_school_id(s) {
        Ok(s)
    } else {
        Err(format!("school_id {s:?} is not 10 digits"))
    }
}

fn load_schools(path: &Path) -> Result<RecordBatch> {
    let mut builders: Vec<StringBuilder> = (0..6).map(|_| StringBuilder::new()).collect();
    let mut base = Int64Builder::new();
    let mut seen = HashSet::new();
    read_rows(path, &SCHOOL_COLUMNS, &[], |v| {
        let id = school_id(v[0])?;
        if !seen.insert(id.to_string()) {
            return Err(format!("school_id {id} appears twice"));
        }
        let sb = v[6].unwrap_or("");
        let n: i64 = sb
            .parse()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("student_base {sb:?} is not a non-negative integer"))?;
        for (i, b) in builders.iter_mut().enumerate() {
            match v[i] {
                Some(s) if !(s.is_empty() && (i == 1 || i == 3)) => b.append_value(s),
                Some(_) => b.append_null(),
                None => b.append_value(""),
            }
        }
        base.append_value(n);
        Ok(())
    })?;
    let mut cols: Vec<ArrayRef> = builders
        .into_iter()
        .map(|mut b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    cols.push(Arc::new(base.finish()));
    Ok(RecordBatch::try_new(schools_schema(), cols)?)
}

fn load_users(path: &Path) -> Result<RecordBatch> {
    let mut user_id = StringBuilder::new();
    let mut school = StringBuilder::new();
    let mut role = StringBuilder::new();
    let mut name = StringBuilder::new();
    read_rows(path, &USER_COLUMNS, &["name"], |v| {
        let id = v[0].unwrap_or("");
        if id.is_empty() {
            return Err("empty user_id".into());
        }
        let s = school_id(v[1])?;
        user_id.append_value(id);
        school.append_value(s);
        role.append_value(v[2].unwrap_or(""));
        match v[3] {
            Some(n) if !n.is_empty() => name.append_value(n),
            _ => name.append_null(),
        }
        Ok(())
    })?;
    Ok(RecordBatch::try_new(
        users_schema(),
        vec![
            Arc::new(user_id.finish()),
            Arc::new(school.finish()),
            Arc::new(role.finish()),
            Arc::new(name.finish()),
        ],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lake_with(schools: &str, users: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dims")).unwrap();
        std::fs::write(dir.path().join("dims/schools.csv"), schools).unwrap();
        std::fs::write(dir.path().join("dims/users.csv"), users).unwrap();
        dir
    }

    const SCHOOLS: &str = "school_id,name,county_code,county_name,city_code,category,student_base\n\
        3310001000,一中,331081,瑞安市,331000,demo,58\n";

    #[test]
    fn loads_valid_rosters_with_bom_and_quotes() {
        let dir = lake_with(
            &format!("\u{feff}{SCHOOLS}"),
            "user_id,school_id,role,name\nt1,3310001000,teacher,\"张, 三\"\ns1,3310001000,student,\n",
        );
        let r = load(dir.path()).unwrap();
        assert_eq!(r.schools.num_rows(), 1);
        assert_eq!(r.users.num_rows(), 2);
        assert!(r.users.column(3).is_null(1));
    }

    #[test]
    fn names_the_missing_column() {
        let dir = lake_with(SCHOOLS, "user_id,school_id,name\nt1,3310001000,x\n");
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.ends_with("users.csv: missing column role"), "{e}");
    }

    #[test]
    fn names_the_line_of_a_bad_school_id() {
        let dir = lake_with(
            SCHOOLS,
            "user_id,school_id,role,name\nt1,3310001000,teacher,a\nt2,331000100,teacher,b\n",
        );
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(
            e.ends_with("users.csv line 3: school_id \"331000100\" is not 10 digits"),
            "{e}"
        );
    }
}
