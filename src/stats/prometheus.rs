//! The Prometheus text exposition format (version 0.0.4) of the numeric figures.
//!
//! Invariant: each metric appears once, with its HELP and TYPE lines first; names and help
//! text come from [`super::collect`], so the three views of the statistics never disagree.

use std::fmt::Write as _;

use super::{Figure, Kind, Value};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn render(figures: &[Figure]) -> String {
    let mut out = String::new();
    for figure in figures {
        let Some((metric, kind)) = figure.metric else {
            continue;
        };
        let value = match &figure.value {
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Text(_) => continue,
        };
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let help = figure.help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP {metric} {help}");
        let _ = writeln!(out, "# TYPE {metric} {kind}");
        let _ = writeln!(out, "{metric} {value}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_figures_become_metrics() {
        let figures = vec![
            Figure {
                section: "performance",
                name: "totalCommit",
                metric: Some(("kura_commits_total", Kind::Counter)),
                help: "transactions committed",
                value: Value::Int(7),
            },
            Figure {
                section: "cluster",
                name: "nodeRole",
                metric: None,
                help: "role",
                value: Value::Text("primary".into()),
            },
        ];
        assert_eq!(
            render(&figures),
            "# HELP kura_commits_total transactions committed\n\
             # TYPE kura_commits_total counter\n\
             kura_commits_total 7\n"
        );
    }
}
