//! Sign-ins per day as an SVG bar chart, drawn on the server (no script, no external file).
//! Only numbers and fixed text go into it, so it is safe to embed as markup.

use std::fmt::Write;

use reauth_actors::admin::stats::DayCount;

const W: f64 = 640.0;
const H: f64 = 180.0;
const PAD_L: f64 = 40.0;
const PAD_B: f64 = 24.0;
const PAD_T: f64 = 10.0;

/// The chart; its `<title>`/`aria-label` summarise it for screen readers (the page also has
/// the numbers as a table).
pub fn sign_ins(days: &[DayCount], accent: &str) -> String {
    let max = days.iter().map(|d| d.count).max().unwrap_or(0).max(1);
    // A round top for the axis: 1, 2, 5, 10, 20, 50, …
    let mut top = 1i64;
    while top < max {
        top = match top.to_string().chars().next() {
            Some('1') => top * 2,
            Some('2') => top / 2 * 5,
            _ => top * 2,
        };
    }
    let total: i64 = days.iter().map(|d| d.count).sum();
    let n = days.len().max(1) as f64;
    let plot_w = W - PAD_L - 8.0;
    let plot_h = H - PAD_B - PAD_T;
    let slot = plot_w / n;
    let bar = (slot * 0.7).max(1.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="Sign-ins per day over the last {} days: {total} in total" xmlns="http://www.w3.org/2000/svg">"#,
        days.len()
    );
    let _ = write!(
        s,
        "<title>Sign-ins per day ({total} in {} days)</title>",
        days.len()
    );
    // Grid lines with labels at 0, half and top.
    for (v, label) in [(0, 0), (top / 2, top / 2), (top, top)] {
        let y = PAD_T + plot_h - plot_h * (v as f64) / (top as f64);
        let _ = write!(
            s,
            r##"<line x1="{PAD_L}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#d1d5db" stroke-width="1"/><text x="{}" y="{:.1}" font-size="14" text-anchor="end" fill="#374151">{label}</text>"##,
            W - 8.0,
            PAD_L - 6.0,
            y + 4.0
        );
    }
    for (i, d) in days.iter().enumerate() {
        let h = plot_h * (d.count as f64) / (top as f64);
        let x = PAD_L + slot * (i as f64) + (slot - bar) / 2.0;
        let y = PAD_T + plot_h - h;
        let day = chrono::DateTime::from_timestamp_millis(d.day)
            .map(|t| t.format("%b %-d").to_string())
            .unwrap_or_default();
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}" fill="{accent}" rx="2"><title>{day}: {}</title></rect>"#,
            d.count
        );
        // A date under every few bars.
        let every = (days.len() / 4).max(1);
        let last = i + 1 == days.len();
        // A regular label too close to the last one's would overlap it.
        let near_last = !last && days.len() - 1 - i < every;
        if (i % every == 0 && !near_last) || last {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{}" font-size="14" text-anchor="middle" fill="#374151">{day}</text>"##,
                x + bar / 2.0,
                H - 6.0
            );
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_a_bar_per_day_and_says_the_total() {
        let days: Vec<DayCount> = (0..14)
            .map(|i| DayCount {
                day: 1_764_806_400_000 + i * 86_400_000,
                count: i % 3,
            })
            .collect();
        let svg = sign_ins(&days, "#1d4ed8");
        assert_eq!(svg.matches("<rect").count(), 14);
        assert!(svg.contains("13 in total"), "{svg}");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
