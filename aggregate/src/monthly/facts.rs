//! Plain rows of the computed month, as the report reads them, and typed
//! column access to query results.

use datafusion::arrow::array::{
    Array, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;

use crate::error::{AggregateError, Result};

/// One school of the roster, with every measure of `school_monthly` and the
/// raw sums behind the rates (for county and province aggregates).
#[derive(Debug, Clone, PartialEq)]
pub struct SchoolFacts {
    pub school_id: String,
    pub name: Option<String>,
    pub county_code: String,
    pub county_name: Option<String>,
    pub category: String,
    /// Roster users of the school (every role).
    pub users: i64,
    pub teachers: i64,
    pub points_total: i64,
    pub avg_points: Option<f64>,
    pub active_teachers: i64,
    pub active_ratio: Option<f64>,
    /// Σ over the month's days of the school's distinct users with a login.
    pub user_days: i64,
    pub daily_active_rate: Option<f64>,
    pub target_rate: f64,
    pub rate_gap: Option<f64>,
    /// Login events of the month at the school.
    pub logins: i64,
    pub avg_daily_logins: f64,
    /// Deep actions of the month by teachers at the school.
    pub deep_actions: i64,
    pub deep_index: Option<f64>,
    pub registered_students: i64,
    pub student_base: i64,
    pub registration_rate: Option<f64>,
    pub rank_points: i64,
    pub rank_active_rate: i64,
}

impl SchoolFacts {
    /// The school's display name (its id when the roster has no name).
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.school_id)
    }
}

/// One row of `teacher_monthly`, with the county of its school.
#[derive(Debug, Clone, PartialEq)]
pub struct TeacherFacts {
    pub user_id: String,
    pub name: Option<String>,
    pub school_id: Option<String>,
    /// The county of the school (None when the school is not in the roster).
    pub county_code: Option<String>,
    pub points: i64,
    pub ytd_points: i64,
    pub login_days: i64,
    pub meets_monthly_target: bool,
    pub rank_in_school: i64,
    pub rank_in_county: Option<i64>,
    /// False for a user with points who is not in the roster.
    pub in_roster: bool,
}

/// Login activity of one school on one day of the month.
#[derive(Debug, Clone, PartialEq)]
pub struct DayFacts {
    pub school_id: String,
    /// Day of the month, from 1.
    pub day: u32,
    /// Distinct users with a login that day.
    pub active_users: i64,
    /// Login events that day.
    pub logins: i64,
}

/// Typed, by-name access to the columns of a result batch (casting as needed).
pub(crate) struct Columns<'a> {
    batch: &'a RecordBatch,
}

impl<'a> Columns<'a> {
    pub(crate) fn new(batch: &'a RecordBatch) -> Self {
        Self { batch }
    }

    fn get(&self, name: &str, ty: &DataType) -> Result<std::sync::Arc<dyn Array>> {
        let col = self
            .batch
            .column_by_name(name)
            .ok_or_else(|| AggregateError::Internal(format!("result lacks column {name}")))?;
        Ok(cast(col, ty)?)
    }

    pub(crate) fn strings(&self, name: &str) -> Result<Vec<Option<String>>> {
        let a = self.get(name, &DataType::Utf8)?;
        let a = a.as_any().downcast_ref::<StringArray>().expect("utf8");
        Ok(a.iter().map(|v| v.map(str::to_string)).collect())
    }

    pub(crate) fn ints(&self, name: &str) -> Result<Vec<Option<i64>>> {
        let a = self.get(name, &DataType::Int64)?;
        let a = a.as_any().downcast_ref::<Int64Array>().expect("int64");
        Ok(a.iter().collect())
    }

    pub(crate) fn floats(&self, name: &str) -> Result<Vec<Option<f64>>> {
        let a = self.get(name, &DataType::Float64)?;
        let a = a.as_any().downcast_ref::<Float64Array>().expect("float64");
        Ok(a.iter().collect())
    }

    pub(crate) fn bools(&self, name: &str) -> Result<Vec<Option<bool>>> {
        let a = self.get(name, &DataType::Boolean)?;
        let a = a.as_any().downcast_ref::<BooleanArray>().expect("bool");
        Ok(a.iter().collect())
    }
}
