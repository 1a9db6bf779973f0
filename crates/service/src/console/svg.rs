//! The week grid as a picture: one inline SVG per practitioner, a column per day, the hours down
//! the side, and a bar for each stretch of time covered by published slots. Presentation
//! attributes only (no inline styles), so the console's Content-Security-Policy holds.

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::SlotView;

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
