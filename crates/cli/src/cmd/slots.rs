//! `slotbridge slots`: the bookable slots of a diary snapshot file (see docs/snapshot.md).
//!
//! Bad input (an unreadable file, invalid JSON, an invalid field) is one line on stderr and exit
//! status 2, and nothing on stdout.

use std::io::Write;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use slotbridge_domain::availability::{Slot, compute_slots, compute_slots_into};
use slotbridge_domain::snapshot::{Snapshot, ValidSnapshot};

use super::usage_error;

/// Arguments of `slotbridge slots`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The diary snapshot: a JSON file as documented in docs/snapshot.md.
    #[arg(long, value_name = "FILE")]
    snapshot: PathBuf,
    /// `json`: an array of {"practitioner","reason","start","end"}; `table`: for people.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Compute the slots N times and print the median computation time on stderr
    /// (`compute_us_median=…`, microseconds); the slots are still printed once.
    #[arg(long, value_name = "N")]
    bench: Option<NonZeroU32>,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Json,
    Table,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let file = args.snapshot.display();
    let text = match std::fs::read_to_string(&args.snapshot) {
        Ok(text) => text,
        Err(e) => {
            return Ok(usage_error(format_args!(
                "{file}: cannot read the snapshot: {e}"
            )));
        }
    };
    let snapshot = match Snapshot::from_json(&text) {
        Ok(snapshot) => snapshot,
        Err(e) => return Ok(usage_error(format_args!("{file}: {e}"))),
    };
    let valid = match snapshot.validate() {
        Ok(valid) => valid,
        Err(e) => return Ok(usage_error(format_args!("{file}: {e}"))),
    };

    let slots = match args.bench {
        Some(runs) => {
            let (slots, median_us) = bench(&valid, runs.get());
            eprintln!("compute_us_median={median_us:.1}");
            slots
        }
        None => compute_slots(&valid),
    };

    match print(args.format, &valid, &slots) {
        // A reader that stops early (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("writing the slots"),
        Ok(()) => Ok(ExitCode::SUCCESS),
    }
}

/// Writes the slots to stdout in `format`.
fn print(format: Format, valid: &ValidSnapshot, slots: &[Slot<'_>]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, slots)?;
            writeln!(out)?;
        }
        Format::Table => write_table(&mut out, valid, slots)?,
    }
    out.flush()
}

/// Computes the slots `runs` times; returns them and the median computation time in µs.
fn bench(valid: &ValidSnapshot, runs: u32) -> (Vec<Slot<'_>>, f64) {
    let mut slots = Vec::new();
    let mut times = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        let started = Instant::now();
        compute_slots_into(std::hint::black_box(valid), &mut slots);
        std::hint::black_box(&slots);
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    let mid = times.len() / 2;
    let median = if times.len() % 2 == 1 {
        times[mid]
    } else {
        (times[mid - 1] + times[mid]) / 2.0
    };
    (slots, median)
}

/// The `±HH:MM` offset at the end of an RFC 3339 instant.
fn offset_text(rfc3339: &str) -> String {
    rfc3339[rfc3339.len().saturating_sub(6)..].to_owned()
}

/// The slots as an aligned table in the practice's local time, with a summary line.
fn write_table(
    out: &mut impl Write,
    valid: &ValidSnapshot,
    slots: &[Slot<'_>],
) -> std::io::Result<()> {
    let label = |id: &str, name: Option<&str>| match name {
        Some(name) if !name.is_empty() => format!("{name} ({id})"),
        _ => id.to_owned(),
    };
    let rows: Vec<[String; 5]> = slots
        .iter()
        .map(|slot| {
            let start = slot.start_offset.to_datetime(slot.start);
            let end = slot.end_offset.to_datetime(slot.end);
            let end_time =
                if end.date() > start.date() && end.time() == jiff::civil::Time::midnight() {
                    "24:00".to_owned()
                } else {
                    end.time().strftime("%H:%M").to_string()
                };
            let practitioner = valid
                .practitioner_index(slot.practitioner)
                .map(|i| valid.practitioners()[i].name());
            let reason = valid
                .reason_index(slot.reason)
                .map(|i| valid.reasons()[i].name());
            [
                start.date().strftime("%a %Y-%m-%d").to_string(),
                format!("{}-{end_time}", start.time().strftime("%H:%M")),
                offset_text(&slot.start_rfc3339()),
                label(slot.practitioner, practitioner),
                label(slot.reason, reason),
            ]
        })
        .collect();
    let header = ["DATE", "TIME", "OFFSET", "PRACTITIONER", "REASON"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: [&str; 5]| -> std::io::Result<()> {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, header)?;
    for row in &rows {
        line(out, [&row[0], &row[1], &row[2], &row[3], &row[4]])?;
    }
    let first = valid
        .days()
        .first()
        .map(|d| d.date().to_string())
        .unwrap_or_default();
    writeln!(
        out,
        "{} slots over {} days from {first} ({}), stacking {}",
        slots.len(),
        valid.days().len(),
        valid.timezone_name(),
        if valid.stacking() { "on" } else { "off" },
    )
}
