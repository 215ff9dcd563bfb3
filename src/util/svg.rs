//! Charts as SVG text, drawn once in Rust: `bench --report`'s page (which
//! has no scripts) and the `ui` page's load-test histogram both show these.
//!
//! A chart is drawn for one width (its `viewBox`) and scales to its box;
//! pages pick [`NARROW`] on a phone and [`WIDE`] elsewhere, so the text stays
//! readable. The look comes from [`THEME`] through classes (`svg.hist`,
//! `.b` bars, `.s1`… series, `.ln` lines, `text`, `line`), so the charts
//! follow the light and dark colours of both pages. There is no `xmlns`:
//! inline in HTML, an `<svg>` gets its namespace from the parser.

use std::fmt::Write as _;

pub use crate::util::format::html as escape;

/// The stylesheet both pages start their `<style>` with: the palette,
/// light and dark, these charts' classes and the cards, tiles and tables
/// around them. Each page adds its own rules after it.
pub const THEME: &str = include_str!("theme.css");

/// The width drawn for a phone screen.
pub const NARROW: f64 = 360.0;
/// The width drawn for anything wider.
pub const WIDE: f64 = 880.0;

/// Margins: room for the y ticks on the left and x labels below.
const LEFT: f64 = 46.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 26.0;
const BOTTOM: f64 = 36.0;

/// What every chart has around its data.
pub struct Frame<'a> {
    pub width: f64,
    /// What the chart shows, for screen readers (`aria-label`).
    pub label: &'a str,
    /// Under the x axis, at the right: the x unit.
    pub x_unit: &'a str,
    /// Over the y axis, at the left: the y unit.
    pub y_unit: &'a str,
    /// An `id` for the `<svg>`, when the page needs one.
    pub id: Option<&'a str>,
}

/// One column: its x label, its tooltip, and its stacked parts as
/// (series number, value); series 0 is drawn as `.b`, the others `.s1`….
pub struct Column {
    pub label: String,
    pub title: String,
    pub parts: Vec<(usize, f64)>,
}

impl Frame<'_> {
    fn height(&self) -> f64 {
        if self.width < 500.0 {
            200.0
        } else {
            240.0
        }
    }

    /// The opening tag, the y grid for values up to `peak` and the unit
    /// labels; returns the text and the scale's top value.
    fn open(&self, peak: f64) -> (String, f64) {
        let (w, h) = (self.width, self.height());
        let mut out = format!(
            "<svg class=\"hist\"{} viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\">",
            self.id
                .map_or_else(String::new, |id| format!(" id=\"{}\"", escape(id))),
            escape(self.label)
        );
        let step = nice_step(peak / 4.0);
        for i in 0..=4 {
            let y = TOP + (h - TOP - BOTTOM) * (1.0 - f64::from(i) / 4.0);
            let _ = write!(
                out,
                "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                w - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                number(step * f64::from(i))
            );
        }
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><text x=\"2\" y=\"12\">{}</text>",
            w - RIGHT,
            h - 4.0,
            escape(self.x_unit),
            escape(self.y_unit)
        );
        (out, step * 4.0)
    }

    /// Labels under the x axis: about 3 on a phone, 6 wider; `x` places
    /// label `i`.
    fn x_labels<'a>(
        &self,
        out: &mut String,
        labels: impl Iterator<Item = &'a str>,
        n: usize,
        x: impl Fn(usize) -> f64,
    ) {
        let every = n.div_ceil(if self.width < 500.0 { 3 } else { 6 }).max(1);
        for (i, label) in labels.enumerate() {
            if i % every == 0 {
                let _ = write!(
                    out,
                    "<text x=\"{:.1}\" y=\"{}\">{}</text>",
                    x(i),
                    self.height() - BOTTOM + 16.0,
                    escape(label)
                );
            }
        }
    }
}

/// Columns side by side, each a stack of its parts.
pub fn columns(frame: &Frame, cols: &[Column]) -> String {
    let total = |c: &Column| c.parts.iter().map(|p| p.1.max(0.0)).sum::<f64>();
    let peak = cols.iter().map(total).fold(0.0, f64::max);
    let (mut out, top) = frame.open(peak);
    let (w, h) = (frame.width, frame.height());
    let plot = h - TOP - BOTTOM;
    let bw = (w - LEFT - RIGHT) / cols.len().max(1) as f64;
    for (i, col) in cols.iter().enumerate() {
        let mut base = h - BOTTOM;
        for &(series, value) in &col.parts {
            let height = plot * value.max(0.0) / top;
            if height <= 0.0 {
                continue;
            }
            base -= height;
            let class = if series == 0 {
                "b".to_string()
            } else {
                format!("b s{series}")
            };
            let _ = write!(
                out,
                "<rect class=\"{class}\" x=\"{:.1}\" y=\"{base:.1}\" width=\"{:.1}\" height=\"{height:.1}\" rx=\"{}\"><title>{}</title></rect>",
                LEFT + i as f64 * bw + 1.0,
                (bw - 2.0).max(1.0),
                if bw > 6.0 { 2 } else { 0 },
                escape(&col.title)
            );
        }
    }
    frame.x_labels(
        &mut out,
        cols.iter().map(|c| c.label.as_str()),
        cols.len(),
        |i| LEFT + i as f64 * bw,
    );
    out.push_str("</svg>");
    out
}

/// A line through the points that have a value (a gap where one has
/// none), with a dot on each; the strings are the x labels.
pub fn line(frame: &Frame, points: &[(String, Option<f64>)]) -> String {
    let peak = points.iter().filter_map(|p| p.1).fold(0.0, f64::max);
    let (mut out, top) = frame.open(peak);
    let (w, h) = (frame.width, frame.height());
    let plot = h - TOP - BOTTOM;
    let step = (w - LEFT - RIGHT) / points.len().max(1) as f64;
    let x = |i: usize| LEFT + (i as f64 + 0.5) * step;
    let y = |v: f64| h - BOTTOM - plot * v.max(0.0) / top;
    let mut run: Vec<String> = Vec::new();
    let mut dots = String::new();
    let flush = |run: &mut Vec<String>, out: &mut String| {
        if run.len() > 1 {
            let _ = write!(out, "<polyline class=\"ln\" points=\"{}\"/>", run.join(" "));
        }
        run.clear();
    };
    for (i, (label, value)) in points.iter().enumerate() {
        match value {
            Some(v) => {
                run.push(format!("{:.1},{:.1}", x(i), y(*v)));
                let _ = write!(
                    dots,
                    "<circle class=\"b\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"{}\"><title>{}: {}</title></circle>",
                    x(i),
                    y(*v),
                    if points.len() > 60 { 1.5 } else { 3.0 },
                    escape(label),
                    number(*v)
                );
            }
            None => flush(&mut run, &mut out),
        }
    }
    flush(&mut run, &mut out);
    out.push_str(&dots);
    frame.x_labels(
        &mut out,
        points.iter().map(|p| p.0.as_str()),
        points.len(),
        |i| x(i) - step / 2.0,
    );
    out.push_str("</svg>");
    out
}

/// The smallest 1, 2 or 5 × 10ⁿ at least `raw` (1 for nothing).
fn nice_step(raw: f64) -> f64 {
    if raw.is_nan() || raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// A tick or a value, as short as it can be written.
fn number(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        let text = format!("{v:.3}");
        text.trim_end_matches('0').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(width: f64) -> Frame<'static> {
        Frame {
            width,
            label: "a <chart>",
            x_unit: "ms",
            y_unit: "requests",
            id: Some("h"),
        }
    }

    #[test]
    fn steps_are_round_numbers() {
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(1.0), 1.0);
        assert_eq!(nice_step(1.2), 2.0);
        assert_eq!(nice_step(2.6), 5.0);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(0.03), 0.05);
        assert_eq!(nice_step(f64::NAN), 1.0);
        assert_eq!(
            (number(20.0), number(0.25), number(12.345)),
            ("20".into(), "0.25".into(), "12.3".into())
        );
    }

    #[test]
    fn columns_stack_their_parts_and_escape_their_text() {
        let cols = vec![
            Column {
                label: "0".into(),
                title: "3 <ok>".into(),
                parts: vec![(0, 3.0), (2, 1.0)],
            },
            Column {
                label: "1".into(),
                title: "none".into(),
                parts: vec![],
            },
        ];
        let svg = columns(&frame(NARROW), &cols);
        assert!(
            svg.starts_with("<svg class=\"hist\" id=\"h\" viewBox=\"0 0 360 200\""),
            "{svg}"
        );
        assert!(svg.contains("aria-label=\"a &lt;chart&gt;\""), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
        assert!(svg.contains("class=\"b s2\""), "{svg}");
        assert!(svg.contains("<title>3 &lt;ok&gt;</title>"), "{svg}");
        assert!(svg.ends_with("</svg>"));
        // Four parts tall: the grid reaches 4, one per line.
        assert!(svg.contains(">4</text>"), "{svg}");
    }

    #[test]
    fn lines_break_where_there_is_no_value() {
        let points: Vec<(String, Option<f64>)> = [Some(1.0), Some(2.0), None, Some(3.0), Some(1.5)]
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("{i} s"), v))
            .collect();
        let svg = line(&frame(WIDE), &points);
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 4, "{svg}");
        assert!(svg.contains("viewBox=\"0 0 880 240\""));
        let empty = line(&frame(WIDE), &[]);
        assert!(!empty.contains("<polyline") && empty.ends_with("</svg>"));
    }
}
