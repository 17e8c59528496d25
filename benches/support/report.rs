//! Printing results: a table printed row by row (a failed row is printed as `FAILED` and
//! counted) and small number formatters.

use std::io::Write as _;

use super::{Result, group_digits};

/// `count / secs`, rounded, with thousands separators.
pub fn per_sec(count: f64, secs: f64) -> String {
    group_digits((count / secs.max(1e-9)).round() as u64)
}

/// Bytes as decimal megabytes (1 MB = 10^6 bytes), one decimal.
pub fn megabytes(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

/// The median of some measurements (the mean of the middle two for an even count); 0 if empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The `q`-quantile (0..=1, nearest rank) of some measurements; 0 if empty.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A table printed row by row; a failed row counts as a failure.
pub struct Table {
    widths: Vec<usize>,
    pub failures: usize,
}

impl Table {
    /// Prints the header; the first column holds row labels (at least 20 characters wide).
    pub fn new(headers: &[&str]) -> Self {
        Self::with_widths(headers, &[])
    }

    /// Like [`Table::new`], with minimum widths per column (for cells wider than their
    /// header; a cell that is wider still just shifts the rest of its line).
    pub fn with_widths(headers: &[&str], min_widths: &[usize]) -> Self {
        let widths: Vec<usize> = headers
            .iter()
            .enumerate()
            .map(|(k, h)| {
                let min = min_widths.get(k).copied().unwrap_or(0);
                h.len().max(if k == 0 { 20 } else { 9 }).max(min)
            })
            .collect();
        let table = Self {
            widths,
            failures: 0,
        };
        table.print(&headers.iter().map(|h| h.to_string()).collect::<Vec<_>>());
        println!(
            "{}",
            table
                .widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("-+-")
        );
        table
    }

    fn print(&self, cells: &[String]) {
        let line = cells
            .iter()
            .zip(&self.widths)
            .enumerate()
            .map(|(k, (cell, w))| {
                if k == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect::<Vec<_>>()
            .join(" | ");
        println!("{}", line.trim_end());
        let _ = std::io::stdout().flush();
    }

    /// Prints `label` and the cells of `outcome`, or `label: FAILED: error`.
    pub fn row(&mut self, label: &str, outcome: Result<Vec<String>>) {
        match outcome {
            Ok(mut cells) => {
                cells.insert(0, label.to_owned());
                self.print(&cells);
            }
            Err(e) => {
                self.failures += 1;
                println!("{label}: FAILED: {e}");
                let _ = std::io::stdout().flush();
            }
        }
    }
}

/// The lines every bench starts with: its title (and whether this is a quick smoke run), the
/// binary, and the machine (`machine_note` is appended to that line).
pub fn print_heading(title: &str, quick: bool, binary: &std::path::Path, machine_note: &str) {
    let smoke = if quick {
        " (quick smoke run: no --bench flag)"
    } else {
        ""
    };
    println!("{title}{smoke}");
    println!("binary:   {}", binary.display());
    println!(
        "machine:  {} CPUs, {}{machine_note}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S %z")
    );
}
