//! The report as an Excel workbook: one sheet per section, each table under
//! its caption with Chinese headers, numbers as numbers (percentages with the
//! `0.00%` format) and column widths that fit the content.

use rust_xlsxwriter::{Color, DocProperties, ExcelDateTime, Format, FormatBorder, Workbook};

use super::model::{Cell, Report};
use crate::error::Result;

/// Display width of a string in Excel character units: CJK and full-width
/// characters count two.
pub fn display_width(s: &str) -> usize {
    s.chars().map(|c| if is_wide(c) { 2 } else { 1 }).sum()
}

fn is_wide(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF | 0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x2014)
}

/// The workbook's bytes.
pub fn workbook(report: &Report) -> Result<Vec<u8>> {
    let mut wb = Workbook::new();
    // A fixed creation date (the month's last day) keeps the file identical
    // across runs: the monthly job is idempotent.
    let last = report.month.last_day();
    let created = ExcelDateTime::from_ymd(last.year as u16, last.month as u8, last.day as u8)?;
    wb.set_properties(
        &DocProperties::new()
            .set_title(&report.title)
            .set_creation_datetime(&created),
    );
    let title = Format::new().set_bold().set_font_size(14);
    let caption = Format::new().set_bold();
    let header = Format::new()
        .set_bold()
        .set_border(FormatBorder::Thin)
        .set_background_color(Color::RGB(0xD9E1F2));
    let text = Format::new().set_border(FormatBorder::Thin);
    let int = Format::new()
        .set_border(FormatBorder::Thin)
        .set_num_format("0");
    let num = Format::new()
        .set_border(FormatBorder::Thin)
        .set_num_format("0.00");
    let pct = Format::new()
        .set_border(FormatBorder::Thin)
        .set_num_format("0.00%");

    for section in &report.sections {
        let ws = wb.add_worksheet();
        ws.set_name(format!("{} {}", section.number, section.title))?;
        let mut widths: Vec<usize> = Vec::new();
        let mut fit = |col: usize, s: &str| {
            if widths.len() <= col {
                widths.resize(col + 1, 0);
            }
            widths[col] = widths[col].max(display_width(s));
        };
        let mut row: u32 = 0;
        ws.write_string_with_format(row, 0, section.heading(), &title)?;
        row += 2;
        for table in &section.tables {
            ws.write_string_with_format(row, 0, table.caption(), &caption)?;
            row += 1;
            for (c, name) in table.columns.iter().enumerate() {
                ws.write_string_with_format(row, c as u16, name, &header)?;
                fit(c, name);
            }
            row += 1;
            if table.rows.is_empty() {
                ws.write_string(row, 0, "无")?;
                row += 1;
            }
            for r in &table.rows {
                for (c, cell) in r.iter().enumerate() {
                    let col = c as u16;
                    match cell {
                        Cell::Text(s) => ws.write_string_with_format(row, col, s, &text)?,
                        Cell::Int(n) => ws.write_number_with_format(row, col, *n as f64, &int)?,
                        Cell::Num(v) => ws.write_number_with_format(row, col, *v, &num)?,
                        Cell::Pct(v) => ws.write_number_with_format(row, col, *v, &pct)?,
                        Cell::Empty => ws.write_string_with_format(row, col, "—", &text)?,
                    };
                    fit(c, &cell.display());
                }
                row += 1;
            }
            row += 1;
        }
        for (c, w) in widths.iter().enumerate() {
            // Padding of two characters; very long cells wrap in Excel's view.
            ws.set_column_width(c as u16, (*w as f64 + 2.0).clamp(6.0, 60.0))?;
        }
    }
    Ok(wb.save_to_buffer()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjk_counts_double() {
        assert_eq!(display_width("第1实验学校"), 11);
        assert_eq!(display_width("68.18%"), 6);
    }
}
