//! The report as data: sections of numbered tables of typed cells. The
//! renderers (Markdown, CSV, xlsx) only format what is here.

/// One cell of a report table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text as is.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A number shown with two decimals.
    Num(f64),
    /// A fraction shown as a percentage with two decimals (`0.6818` → `68.18%`).
    Pct(f64),
    /// No value (shown as `—`).
    Empty,
}

impl Cell {
    /// Text cell.
    pub fn text(s: impl Into<String>) -> Self {
        Cell::Text(s.into())
    }

    /// A number with two decimals, or `—` when absent.
    pub fn num(v: Option<f64>) -> Self {
        v.map_or(Cell::Empty, Cell::Num)
    }

    /// A percentage, or `—` when absent.
    pub fn pct(v: Option<f64>) -> Self {
        v.map_or(Cell::Empty, Cell::Pct)
    }

    /// The cell as the Markdown and CSV files show it.
    pub fn display(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(n) => n.to_string(),
            Cell::Num(v) => fixed2(*v),
            Cell::Pct(v) => format_pct(*v),
            Cell::Empty => "—".to_string(),
        }
    }

    /// True for numbers (right-aligned in Markdown).
    pub fn is_numeric(&self) -> bool {
        matches!(self, Cell::Int(_) | Cell::Num(_) | Cell::Pct(_))
    }
}

/// `v` with two decimals, never `-0.00`.
pub fn fixed2(v: f64) -> String {
    let s = format!("{v:.2}");
    if s == "-0.00" { "0.00".into() } else { s }
}

/// A fraction as a percentage with two decimals: `0.6818…` → `68.18%`,
/// `-0.196` → `-19.60%`.
pub fn format_pct(v: f64) -> String {
    format!("{}%", fixed2(v * 100.0))
}

/// A numbered table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The number in the report (`表3`).
    pub number: usize,
    /// The caption after the number.
    pub title: String,
    /// Column headers (Chinese).
    pub columns: Vec<String>,
    /// Rows, each as long as `columns`.
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// `表3 综合排名后10位`.
    pub fn caption(&self) -> String {
        format!("表{} {}", self.number, self.title)
    }
}

/// A section of the report: a heading, a paragraph and its tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// 1-based position (一、二、…).
    pub number: usize,
    /// Short title (`概况`).
    pub title: String,
    /// ASCII file stem of the section's CSV (`1-overview`).
    pub file_stem: String,
    /// The paragraph before the tables.
    pub text: String,
    /// The tables of the section.
    pub tables: Vec<Table>,
}

impl Section {
    /// `一、概况`.
    pub fn heading(&self) -> String {
        format!("{}、{}", chinese_numeral(self.number), self.title)
    }
}

/// A whole report (one county, or the province).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The month reported.
    pub month: crate::month::Month,
    /// The title line.
    pub title: String,
    /// Salutation and opening paragraph.
    pub preface: Vec<String>,
    /// The six sections.
    pub sections: Vec<Section>,
    /// Closing lines (data source, period).
    pub footer: Vec<String>,
}

/// 一 … 十 (enough for six sections).
pub fn chinese_numeral(n: usize) -> String {
    const DIGITS: [&str; 11] = [
        "〇", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十",
    ];
    DIGITS
        .get(n)
        .map_or_else(|| n.to_string(), |d| d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_have_two_decimals() {
        assert_eq!(format_pct(0.681818), "68.18%");
        assert_eq!(format_pct(-0.196), "-19.60%");
        assert_eq!(format_pct(1.0), "100.00%");
        assert_eq!(format_pct(-1e-12), "0.00%");
        assert_eq!(Cell::num(Some(369.666_666)).display(), "369.67");
        assert_eq!(Cell::pct(None).display(), "—");
    }
}
