//! The console's pictures, inline SVG with a text alternative each. Presentation attributes
//! only (no inline styles), so the console's Content-Security-Policy holds.
//!
//! - The week grid: one per practitioner, a column per day, the hours down the side, and a bar
//!   for each stretch of time covered by published slots.
//! - The fleet view's hourly charts ([`hourly_bars`], [`hourly_lines`]): 24 hours across, a
//!   stacked bar per hour or a line per series.

use std::fmt::Write as _;

use maud::{Markup, html};

use crate::admin::{PractitionerWeek, WeekDay};

const LEFT: u32 = 46;
const TOP: u32 = 34;
const COLUMN: u32 = 84;
const HOUR: u32 = 30;

/// Minutes since midnight of `HH:MM` (`24:00` is 1440).
pub fn minutes(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
}

fn hhmm(m: u32) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// The day's published slots merged into stretches `(start, end, slots)`, in minutes.
pub fn stretches(day: &WeekDay) -> Vec<(u32, u32, usize)> {
    let mut spans: Vec<(u32, u32)> = day
        .slots
        .iter()
        .filter_map(|s| Some((minutes(&s.start)?, minutes(&s.end)?)))
        .filter(|(a, b)| a < b)
        .collect();
    spans.sort_unstable();
    let mut out: Vec<(u32, u32, usize)> = Vec::new();
    for (a, b) in spans {
        match out.last_mut() {
            Some(last) if a <= last.1 => {
                last.1 = last.1.max(b);
                last.2 += 1;
            }
            _ => out.push((a, b, 1)),
        }
    }
    out
}

/// The hours the grids show: the published stretches of every practitioner, widened to whole
/// hours; 08:00 to 18:00 when nothing is published.
pub fn hour_range(practitioners: &[PractitionerWeek]) -> (u32, u32) {
    let all: Vec<(u32, u32, usize)> = practitioners
        .iter()
        .flat_map(|p| p.days.iter().flat_map(stretches))
        .collect();
    let first = all.iter().map(|s| s.0).min().unwrap_or(8 * 60);
    let last = all.iter().map(|s| s.1).max().unwrap_or(18 * 60);
    let from = (first / 60).min(8);
    let to = last.div_ceil(60).max(from + 1).clamp(18, 24);
    (from, to)
}

fn weekday_label(date: &str) -> String {
    date.parse::<jiff::civil::Date>()
        .map(|d| {
            let wd = match d.weekday() {
                jiff::civil::Weekday::Monday => "Mon",
                jiff::civil::Weekday::Tuesday => "Tue",
                jiff::civil::Weekday::Wednesday => "Wed",
                jiff::civil::Weekday::Thursday => "Thu",
                jiff::civil::Weekday::Friday => "Fri",
                jiff::civil::Weekday::Saturday => "Sat",
                jiff::civil::Weekday::Sunday => "Sun",
            };
            format!("{wd} {}", d.day())
        })
        .unwrap_or_else(|_| date.to_owned())
}

/// One practitioner's week as an SVG picture with a text alternative.
pub fn week_grid(p: &PractitionerWeek, hours: (u32, u32), today: &str) -> Markup {
    let (from, to) = hours;
    let width = LEFT + COLUMN * u32::try_from(p.days.len()).unwrap_or(7) + 8;
    let height = TOP + HOUR * (to - from) + 8;
    let y = |m: u32| TOP + (m.saturating_sub(from * 60)) * HOUR / 60;
    let total: usize = p.days.iter().map(|d| d.slots.len()).sum();
    let title_id = format!(
        "grid-{}",
        p.id.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    );
    let summary = p
        .days
        .iter()
        .map(|d| {
            let s = stretches(d);
            if d.closed {
                format!("{}: closed", weekday_label(&d.date))
            } else if s.is_empty() {
                format!("{}: none", weekday_label(&d.date))
            } else {
                format!(
                    "{}: {}",
                    weekday_label(&d.date),
                    s.iter()
                        .map(|(a, b, _)| format!("{}–{}", hhmm(*a), hhmm(*b)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    html! {
        svg class="week-grid" xmlns="http://www.w3.org/2000/svg" role="img"
            viewBox={"0 0 " (width) " " (height)} aria-labelledby=(title_id)
            data-slots=(total) {
            title id=(title_id) { (p.name) ": " (total) " published slots. " (summary) }
            // Hour lines and labels.
            @for h in from..=to {
                line x1=(LEFT - 4) x2=(width - 8) y1=(y(h * 60)) y2=(y(h * 60))
                    stroke="#d0d7de" stroke-width="1" {}
                text x=(LEFT - 8) y=(y(h * 60) + 4) text-anchor="end" font-size="11"
                    fill="#57606a" { (format!("{h:02}:00")) }
            }
            @for (i, d) in p.days.iter().enumerate() {
                @let x = LEFT + COLUMN * u32::try_from(i).unwrap_or(0);
                @let is_today = d.date == today;
                text x=(x + COLUMN / 2) y="20" text-anchor="middle" font-size="12"
                    font-weight=(if is_today { "bold" } else { "normal" }) fill="#24292f" {
                    (weekday_label(&d.date))
                }
                rect x=(x + 2) y=(TOP) width=(COLUMN - 4) height=(HOUR * (to - from))
                    fill=(if d.closed { "#eaeef2" } else if is_today { "#f6f8fa" } else { "#ffffff" })
                    stroke="#d0d7de" stroke-width="1" {}
                @if d.closed {
                    text x=(x + COLUMN / 2) y=(TOP + 18) text-anchor="middle" font-size="11"
                        fill="#57606a" { "closed" }
                }
                @for (a, b, n) in stretches(d) {
                    rect class="stretch" x=(x + 8) y=(y(a)) width=(COLUMN - 16)
                        height=((y(b) - y(a)).max(2)) rx="3" fill="#1a7f64" {
                        title { (weekday_label(&d.date)) " " (hhmm(a)) "–" (hhmm(b)) ": " (n) " slots" }
                    }
                }
                @for s in &d.slots {
                    @if let Some(m) = minutes(&s.start) {
                        line x1=(x + 8) x2=(x + 14) y1=(y(m)) y2=(y(m)) stroke="#ffffff"
                            stroke-width="1" {}
                    }
                }
            }
        }
    }
}

/// One series of an hourly chart: its name, colour and a value per hour (`None`: no value).
pub struct Series<'a> {
    /// Shown in the legend and the text alternative.
    pub name: &'a str,
    /// Fill or stroke colour.
    pub color: &'a str,
    /// One value per hour, oldest first.
    pub values: Vec<Option<f64>>,
}

const CHART_LEFT: u32 = 46;
const CHART_TOP: u32 = 12;
const CHART_BAR: u32 = 20;
const CHART_HEIGHT: u32 = 120;

/// The smallest 1, 2 or 5 × 10ⁿ at or above `v` (the top of a chart's scale); 1 for nothing.
pub fn nice_ceiling(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * mag)
}

fn number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

/// The frame shared by the hourly charts: scale lines and labels, hour labels every 6 hours,
/// and the legend below.
fn chart_frame(
    hours: &[String],
    top: f64,
    unit: &str,
    series: &[Series<'_>],
) -> (u32, u32, Markup) {
    let n = u32::try_from(hours.len()).unwrap_or(24).max(1);
    let width = CHART_LEFT + CHART_BAR * n + 8;
    let base = CHART_TOP + CHART_HEIGHT;
    let height = base + 44;
    let frame = html! {
        @for (frac, label) in [(0.0, number(0.0)), (0.5, number(top / 2.0)), (1.0, number(top))] {
            @let y = base - (f64::from(CHART_HEIGHT) * frac) as u32;
            line x1=(CHART_LEFT - 4) x2=(width - 8) y1=(y) y2=(y) stroke="#d0d7de" stroke-width="1" {}
            text x=(CHART_LEFT - 8) y=(y + 4) text-anchor="end" font-size="11" fill="#57606a" {
                (label) @if frac == 1.0 && !unit.is_empty() { " " (unit) }
            }
        }
        @for (i, h) in hours.iter().enumerate() {
            @if i % 6 == 0 {
                text x=(CHART_LEFT + CHART_BAR * u32::try_from(i).unwrap_or(0)) y=(base + 14)
                    font-size="11" fill="#57606a" { (h) }
            }
        }
        @for (i, s) in series.iter().enumerate() {
            @let x = CHART_LEFT + 130 * u32::try_from(i).unwrap_or(0);
            rect x=(x) y=(base + 26) width="10" height="10" fill=(s.color) {}
            text x=(x + 14) y=(base + 35) font-size="11" fill="#24292f" { (s.name) }
        }
    };
    (width, height, frame)
}

fn alternative(title: &str, hours: &[String], series: &[Series<'_>], unit: &str) -> String {
    let parts: Vec<String> = series
        .iter()
        .map(|s| {
            let given: Vec<f64> = s.values.iter().flatten().copied().collect();
            if given.is_empty() {
                format!("{}: none", s.name)
            } else if unit.is_empty() {
                format!("{}: {} in all", s.name, number(given.iter().sum()))
            } else {
                let max = given.iter().copied().fold(0.0, f64::max);
                format!("{}: at most {} {unit}", s.name, number(max))
            }
        })
        .collect();
    format!(
        "{title}, {} to now, per hour. {}.",
        hours.first().map_or("", String::as_str),
        parts.join("; ")
    )
}

/// Counts per hour as stacked bars, one colour per series; the hours are labelled `HH:00`.
pub fn hourly_bars(id: &str, title: &str, hours: &[String], series: &[Series<'_>]) -> Markup {
    let totals: Vec<f64> = (0..hours.len())
        .map(|i| {
            series
                .iter()
                .filter_map(|s| s.values.get(i).copied().flatten())
                .sum()
        })
        .collect();
    let top = nice_ceiling(totals.iter().copied().fold(0.0, f64::max));
    let (width, height, frame) = chart_frame(hours, top, "", series);
    let base = f64::from(CHART_TOP + CHART_HEIGHT);
    let scale = f64::from(CHART_HEIGHT) / top;
    // (x, y, height, series, value, hour) of each bar piece, stacked from the base up.
    let mut pieces = Vec::new();
    for (i, hour) in hours.iter().enumerate() {
        let x = CHART_LEFT + CHART_BAR * u32::try_from(i).unwrap_or(0) + 2;
        let mut y = base;
        for s in series {
            let v = s.values.get(i).copied().flatten().unwrap_or(0.0);
            if v > 0.0 {
                let h = (v * scale).max(1.0);
                y -= h;
                pieces.push((x, y, h, s, v, hour));
            }
        }
    }
    let title_id = format!("{id}-title");
    html! {
        svg class="chart" id=(id) xmlns="http://www.w3.org/2000/svg" role="img"
            viewBox={"0 0 " (width) " " (height)} aria-labelledby=(title_id)
            data-total=(number(totals.iter().sum())) {
            title id=(title_id) { (alternative(title, hours, series, "")) }
            (frame)
            @for (x, y, h, s, v, hour) in pieces {
                rect class="bar" x=(x) y=(format!("{y:.1}")) width=(CHART_BAR - 4)
                    height=(format!("{h:.1}")) fill=(s.color) data-series=(s.name) {
                    title { (hour) ": " (number(v)) " " (s.name) }
                }
            }
        }
    }
}

/// Values per hour as lines, one per series, with a dot for each hour that has a value (gaps
/// where it has none); `unit` labels the scale.
pub fn hourly_lines(
    id: &str,
    title: &str,
    unit: &str,
    hours: &[String],
    series: &[Series<'_>],
) -> Markup {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied())
        .fold(0.0, f64::max);
    let top = nice_ceiling(max);
    let (width, height, frame) = chart_frame(hours, top, unit, series);
    let base = f64::from(CHART_TOP + CHART_HEIGHT);
    let scale = f64::from(CHART_HEIGHT) / top;
    let point = |i: usize, v: f64| {
        (
            f64::from(CHART_LEFT + CHART_BAR * u32::try_from(i).unwrap_or(0) + CHART_BAR / 2),
            base - v * scale,
        )
    };
    // Each series as one path of runs of consecutive hours with a value.
    let paths: Vec<String> = series
        .iter()
        .map(|s| {
            let mut d = String::new();
            let mut pen = false;
            for (i, v) in s.values.iter().enumerate() {
                match v {
                    Some(v) => {
                        let (x, y) = point(i, *v);
                        let _ = write!(d, "{}{x:.1},{y:.1} ", if pen { "L" } else { "M" });
                        pen = true;
                    }
                    None => pen = false,
                }
            }
            d.trim_end().to_owned()
        })
        .collect();
    let title_id = format!("{id}-title");
    html! {
        svg class="chart" id=(id) xmlns="http://www.w3.org/2000/svg" role="img"
            viewBox={"0 0 " (width) " " (height)} aria-labelledby=(title_id) {
            title id=(title_id) { (alternative(title, hours, series, unit)) }
            (frame)
            @for (s, d) in series.iter().zip(&paths) {
                path class="line" d=(d) fill="none" stroke=(s.color) stroke-width="2"
                    data-series=(s.name) {}
                @for (i, v) in s.values.iter().enumerate() {
                    @if let Some(v) = v {
                        @let (x, y) = point(i, *v);
                        circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="2.5" fill=(s.color) {
                            title { (hours.get(i).map_or("", String::as_str)) ": " (s.name) " " (number(*v)) " " (unit) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::SlotView;

    fn hours(n: usize) -> Vec<String> {
        (0..n).map(|h| format!("{:02}:00", h % 24)).collect()
    }

    #[test]
    fn the_scale_tops_at_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(7.5), 10.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(0.3), 0.5);
    }

    #[test]
    fn stacked_bars_draw_one_rect_per_nonzero_value_and_say_the_totals() {
        let series = [
            Series {
                name: "confirmed",
                color: "#1a7f64",
                values: vec![Some(3.0), Some(0.0), Some(1.0)],
            },
            Series {
                name: "rejected",
                color: "#bf8700",
                values: vec![Some(1.0), None, Some(0.0)],
            },
        ];
        let svg = hourly_bars("b", "Bookings", &hours(3), &series).into_string();
        assert_eq!(svg.matches("class=\"bar\"").count(), 3, "{svg}");
        assert!(svg.contains("data-total=\"5\""), "{svg}");
        assert!(
            svg.contains(
                "Bookings, 00:00 to now, per hour. confirmed: 4 in all; rejected: 1 in all."
            ),
            "{svg}"
        );
        // The tallest hour (4) under a scale topped at 5: 4/5 of the 120 px.
        assert!(svg.contains("height=\"72.0\""), "{svg}");
    }

    #[test]
    fn lines_break_where_an_hour_has_no_value() {
        let series = [Series {
            name: "p99",
            color: "#cf222e",
            values: vec![Some(2.0), None, Some(4.0), Some(5.0)],
        }];
        let svg = hourly_lines("l", "Freshness", "s", &hours(4), &series).into_string();
        assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
        let d = svg
            .split(" d=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("");
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_eq!(d.matches('L').count(), 1, "{d}");
        assert!(svg.contains("p99: at most 5 s"), "{svg}");
    }

    fn day(slots: &[(&str, &str)]) -> WeekDay {
        WeekDay {
            date: "2026-04-06".into(),
            closed: false,
            slots: slots
                .iter()
                .map(|(a, b)| SlotView {
                    start: (*a).into(),
                    end: (*b).into(),
                    reason: "R".into(),
                })
                .collect(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn overlapping_slots_merge_into_stretches_and_gaps_split_them() {
        let d = day(&[
            ("09:00", "09:30"),
            ("09:15", "09:45"),
            ("09:30", "10:00"),
            ("13:00", "13:30"),
        ]);
        assert_eq!(stretches(&d), vec![(540, 600, 3), (780, 810, 1)]);
    }

    #[test]
    fn the_grid_draws_one_bar_per_stretch_and_names_the_hours_in_its_title() {
        let p = PractitionerWeek {
            id: "P1".into(),
            name: "Dr Do Good".into(),
            days: vec![day(&[("09:00", "09:30"), ("13:00", "13:30")])],
        };
        let svg = week_grid(&p, hour_range(std::slice::from_ref(&p)), "2026-04-06").into_string();
        assert_eq!(svg.matches("class=\"stretch\"").count(), 2, "{svg}");
        assert!(svg.contains("Mon 6: 09:00–09:30, 13:00–13:30"), "{svg}");
        assert!(svg.contains("data-slots=\"2\""), "{svg}");
    }

    #[test]
    fn the_hour_range_covers_early_and_late_slots() {
        let p = PractitionerWeek {
            id: "P1".into(),
            name: "P".into(),
            days: vec![day(&[("07:10", "07:40"), ("19:30", "20:00")])],
        };
        assert_eq!(hour_range(&[p]), (7, 20));
        assert_eq!(hour_range(&[]), (8, 18));
    }
}
