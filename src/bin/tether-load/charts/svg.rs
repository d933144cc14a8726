//! Draws a [`Chart`] as an SVG document with plotters' SVG backend: a line
//! per series with a legend, axes with units, and each mark as a dashed
//! vertical line with its label.

use plotters::prelude::*;

use super::{Chart, TIME_AXIS};

/// The SVG's size in pixels.
const SIZE: (u32, u32) = (900, 420);
/// Line colours, in legend order (colour-blind safe: the Okabe-Ito palette).
const COLOURS: [RGBColor; 4] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
];
/// The marks' colour.
const MARK: RGBColor = RGBColor(120, 120, 120);

/// The SVG document of `chart`, or why plotters could not draw it.
pub fn render_svg(chart: &Chart) -> Result<String, String> {
    let mut out = String::new();
    draw(chart, &mut out).map_err(|e| format!("{}: {e}", chart.file))?;
    Ok(out)
}

fn draw(chart: &Chart, out: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(out, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    // Headroom above the highest point for the legend (top right), and a
    // range even when flat.
    let x_max = chart.x_max().max(1.0);
    let y_max = (chart.y_max() * 1.3).max(1.0);
    let mut c = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    c.configure_mesh()
        .x_desc(TIME_AXIS)
        .y_desc(chart.y_label.as_str())
        .light_line_style(TRANSPARENT)
        .y_label_formatter(&|v| short_number(*v))
        .draw()?;
    for (i, l) in chart.lines.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        c.draw_series(LineSeries::new(
            l.points.iter().copied(),
            colour.stroke_width(2),
        ))?
        .label(l.name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    for (i, m) in chart.marks.iter().enumerate() {
        let dashes = (0..20).map(|i| {
            let from = y_max * f64::from(i) / 20.0;
            PathElement::new(
                vec![(m.at_secs, from), (m.at_secs, from + y_max / 40.0)],
                MARK.stroke_width(1),
            )
        });
        c.draw_series(dashes)?;
        // The label a few pixels right of its line, each lower than the
        // one before so that close marks do not overprint.
        let label_y = y_max * (0.97 - 0.06 * (i % 4) as f64);
        let label = EmptyElement::at((m.at_secs, label_y))
            + Text::new(m.label, (4, 0), ("sans-serif", 13).into_font().color(&MARK));
        c.draw_series(std::iter::once(label))?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()?;
    root.present()?;
    Ok(())
}

/// An axis number without trailing noise: 950, 2.5k, 1.5M, 0.25.
fn short_number(v: f64) -> String {
    let a = v.abs();
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if a >= 1e6 {
        format!("{}M", trim(format!("{:.2}", v / 1e6)))
    } else if a >= 1e3 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else if a >= 10.0 {
        format!("{v:.0}")
    } else {
        trim(format!("{v:.2}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::charts::{Line, Mark};

    #[test]
    fn numbers_are_short() {
        assert_eq!(short_number(0.0), "0");
        assert_eq!(short_number(0.25), "0.25");
        assert_eq!(short_number(2.5), "2.5");
        assert_eq!(short_number(950.0), "950");
        assert_eq!(short_number(2_500.0), "2.5k");
        assert_eq!(short_number(12_000.0), "12k");
        assert_eq!(short_number(1_500_000.0), "1.5M");
    }

    #[test]
    fn a_chart_becomes_an_svg_with_its_lines_title_and_marks() {
        let chart = Chart {
            file: "x.svg",
            title: "storm: things per second".to_string(),
            y_label: "things / s".to_string(),
            lines: vec![Line {
                name: "per second",
                points: vec![(0.5, 10.0), (1.0, 20.0), (1.5, 15.0)],
            }],
            marks: vec![Mark {
                at_secs: 1.0,
                label: "storm start",
            }],
        };
        let svg = render_svg(&chart).expect("drawn");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        for needle in [
            "storm: things per second",
            "things / s",
            TIME_AXIS,
            "storm start",
            "per second",
            "<polyline",
        ] {
            assert!(svg.contains(needle), "{needle} missing");
        }
    }
}
