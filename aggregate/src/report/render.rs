//! Markdown and CSV renderings of a report.

use super::model::{Cell, Report, Section, Table};

/// The report as Markdown: title, preface, numbered sections, each with its
/// paragraph and captioned tables (`表1 …`).
pub fn markdown(report: &Report) -> String {
    let mut out = format!("# {}\n\n", report.title);
    for p in &report.preface {
        out.push_str(p);
        out.push_str("\n\n");
    }
    for s in &report.sections {
        out.push_str(&format!("## {}\n\n{}\n\n", s.heading(), s.text));
        for t in &s.tables {
            out.push_str(&markdown_table(t));
            out.push('\n');
        }
    }
    for f in &report.footer {
        out.push_str(f);
        out.push_str("\n\n");
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

fn markdown_table(t: &Table) -> String {
    let mut out = format!("**{}**\n\n", t.caption());
    if t.rows.is_empty() {
        out.push_str("无。\n");
        return out;
    }
    let numeric: Vec<bool> = (0..t.columns.len())
        .map(|c| t.rows.iter().any(|r| r[c].is_numeric()))
        .collect();
    out.push_str(&format!(
        "| {} |\n",
        t.columns
            .iter()
            .map(|c| escape(c))
            .collect::<Vec<_>>()
            .join(" | ")
    ));
    out.push_str(&format!(
        "|{}|\n",
        numeric
            .iter()
            .map(|n| if *n { " ---: " } else { " --- " })
            .collect::<Vec<_>>()
            .join("|")
    ));
    for r in &t.rows {
        out.push_str(&format!(
            "| {} |\n",
            r.iter()
                .map(|c| escape(&c.display()))
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// One section as CSV (RFC 4180, UTF-8, header row). A section with several
/// tables gets a first column `表` naming each row's table, and the union of
/// the tables' columns (cells a table does not have are empty).
pub fn section_csv(section: &Section) -> Vec<u8> {
    let multi = section.tables.len() > 1;
    let mut columns: Vec<&str> = Vec::new();
    for t in &section.tables {
        for c in &t.columns {
            if !columns.contains(&c.as_str()) {
                columns.push(c);
            }
        }
    }
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    let mut header: Vec<&str> = Vec::new();
    if multi {
        header.push("表");
    }
    header.extend(&columns);
    // Writing to a Vec cannot fail.
    w.write_record(&header).expect("csv to memory");
    for t in &section.tables {
        let caption = t.caption();
        for r in &t.rows {
            let mut rec: Vec<String> = Vec::with_capacity(header.len());
            if multi {
                rec.push(caption.clone());
            }
            for c in &columns {
                rec.push(
                    t.columns
                        .iter()
                        .position(|tc| tc == c)
                        .map(|i| csv_cell(&r[i]))
                        .unwrap_or_default(),
                );
            }
            w.write_record(&rec).expect("csv to memory");
        }
    }
    w.into_inner().expect("csv to memory")
}

fn csv_cell(c: &Cell) -> String {
    match c {
        Cell::Empty => String::new(),
        other => other.display(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_of_a_two_table_section_names_the_table() {
        let t = |n, cols: &[&str], rows| Table {
            number: n,
            title: format!("t{n}"),
            columns: cols.iter().map(|c| c.to_string()).collect(),
            rows,
        };
        let s = Section {
            number: 6,
            title: "x".into(),
            file_stem: "6-x".into(),
            text: String::new(),
            tables: vec![
                t(1, &["a", "b"], vec![vec![Cell::Int(1), Cell::Pct(0.5)]]),
                t(2, &["a", "c"], vec![vec![Cell::Int(2), Cell::text("x,y")]]),
            ],
        };
        let csv = String::from_utf8(section_csv(&s)).unwrap();
        assert_eq!(csv, "表,a,b,c\n表1 t1,1,50.00%,\n表2 t2,2,,\"x,y\"\n");
    }
}
