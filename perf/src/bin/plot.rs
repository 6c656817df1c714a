//! `migratory-plot`: draws one PNG bar chart per workload of a `perf/run` result file
//! (`perf/results/latest.json`): one bar per measured system with its rate and latency
//! percentiles, plus a chart of the wire ceiling (with the engine's packet rate under rpc
//! next to it). Text uses a system TrueType font (DejaVu Sans, as Debian ships it);
//! without one the bars are drawn unlabelled.
use std::path::{Path, PathBuf};

use clap::Parser;
use migratory_perf::cli;
use plotters::prelude::*;
use plotters::style::FontStyle;
use serde_json::Value;

const BIN: &str = "migratory-plot";
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];
const WIDTH: u32 = 1000;
const ROW: u32 = 64;
const LEFT: i32 = 150;
const RIGHT_MARGIN: i32 = 40;
/// Bar colours by system, in a fixed order so a system keeps its colour across charts.
const SYSTEMS: &[(&str, RGBColor)] = &[
    ("engine", RGBColor(0x1f, 0x77, 0xb4)),
    ("smoltcp", RGBColor(0x2c, 0xa0, 0x2c)),
    ("linux", RGBColor(0xff, 0x7f, 0x0e)),
    ("wire", RGBColor(0x7f, 0x7f, 0x7f)),
];

/// PNG charts of a perf/run result.
#[derive(Debug, Parser)]
#[command(name = BIN, version)]
struct Args {
    /// The result file.
    #[arg(long, default_value = "perf/results/latest.json")]
    input: PathBuf,
    /// Where to write WORKLOAD.png (default: the input's folder).
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

/// One bar.
struct Bar {
    system: String,
    value: f64,
    label: String,
}

fn main() {
    let args: Args = cli::parse_or_exit(BIN);
    std::process::exit(run(&args));
}

fn run(args: &Args) -> i32 {
    let text = match std::fs::read_to_string(&args.input) {
        Ok(t) => t,
        Err(e) => {
            return cli::usage_error(
                BIN,
                format_args!("cannot read {}: {e}", args.input.display()),
            )
        }
    };
    let doc: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            return cli::usage_error(
                BIN,
                format_args!("{} is not JSON: {e}", args.input.display()),
            )
        }
    };
    let out_dir = args
        .out_dir
        .clone()
        .or_else(|| args.input.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let fonts = load_font();
    if !fonts {
        eprintln!(
            "{BIN}: no TrueType font found (install fonts-dejavu-core); charts will have no text"
        );
    }
    let footer = footer(&doc);
    let mut written = Vec::new();

    if let Some(w) = doc.get("wire_ceiling").filter(|w| w.is_object()) {
        let pps = w.get("pps").and_then(Value::as_f64).unwrap_or(0.0);
        let size = w.get("size").and_then(Value::as_u64).unwrap_or(0);
        let mut bars = vec![Bar {
            system: "wire".into(),
            value: pps,
            label: format!("{}pps{}", cli::si(pps), latency_text(w)),
        }];
        // The engine's packet rate under rpc, against the same ceiling.
        if let Some(e) = doc.get("engine_vs_wire").filter(|e| e.is_object()) {
            let v = e.get("engine_pps").and_then(Value::as_f64).unwrap_or(0.0);
            let ratio = e.get("ratio").and_then(Value::as_f64).unwrap_or(0.0);
            bars.push(Bar {
                system: "engine".into(),
                value: v,
                label: format!(
                    "{}pps into the engine under rpc ({:.0}% of the wire)",
                    cli::si(v),
                    ratio * 100.0
                ),
            });
        }
        let title =
            format!("wire ceiling: L2 reflector over net_memif, {size} B frames (packets/s)");
        match draw(&out_dir.join("wire.png"), &title, &footer, &bars, fonts) {
            Ok(p) => written.push(p),
            Err(e) => return cli::failure(BIN, e),
        }
    }
    let Some(workloads) = doc.get("workloads").and_then(Value::as_object) else {
        return cli::usage_error(
            BIN,
            format_args!("{} has no \"workloads\" object", args.input.display()),
        );
    };
    for (name, w) in workloads {
        let unit = w.get("unit").and_then(Value::as_str).unwrap_or("rate");
        let mut bars = Vec::new();
        if let Some(systems) = w.get("systems").and_then(Value::as_object) {
            for (sys, r) in systems {
                let Some(v) = r.get(unit).and_then(Value::as_f64) else {
                    continue;
                };
                let value_text = if unit == "gbps" {
                    format!("{v:.2} Gbit/s")
                } else {
                    format!("{}{unit}", cli::si(v))
                };
                bars.push(Bar {
                    system: sys.clone(),
                    value: v,
                    label: format!("{value_text}{}", latency_text(r)),
                });
            }
        }
        bars.sort_by_key(|b| {
            SYSTEMS
                .iter()
                .position(|(s, _)| *s == b.system)
                .unwrap_or(SYSTEMS.len())
        });
        let desc = w.get("description").and_then(Value::as_str).unwrap_or("");
        let title = format!("{name}: {desc} ({unit})");
        match draw(
            &out_dir.join(format!("{name}.png")),
            &title,
            &footer,
            &bars,
            fonts,
        ) {
            Ok(p) => written.push(p),
            Err(e) => return cli::failure(BIN, e),
        }
    }
    for p in written {
        println!("{BIN}: wrote {}", p.display());
    }
    0
}

fn latency_text(r: &Value) -> String {
    match (
        r.get("p50_us").and_then(Value::as_f64),
        r.get("p99_us").and_then(Value::as_f64),
    ) {
        (Some(p50), Some(p99)) => format!("   p50 {}  p99 {}", us(p50), us(p99)),
        _ => String::new(),
    }
}

fn us(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.1} us")
    }
}

fn footer(doc: &Value) -> String {
    let m = doc.get("machine");
    let cpu = m
        .and_then(|m| m.get("cpu_model"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    let cores = m
        .and_then(|m| m.get("cores"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let commit = doc.get("commit").and_then(Value::as_str).unwrap_or("?");
    let date = doc.get("generated").and_then(Value::as_str).unwrap_or("?");
    let quick = if doc.get("quick").and_then(Value::as_bool) == Some(true) {
        ", --quick"
    } else {
        ""
    };
    format!(
        "{cpu}, {cores} cores; commit {}; {date}{quick}",
        &commit[..commit.len().min(12)]
    )
}

fn load_font() -> bool {
    for path in FONTS {
        if let Ok(bytes) = std::fs::read(path) {
            // The font must live as long as plotters' registry: the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

fn draw(
    path: &Path,
    title: &str,
    footer: &str,
    bars: &[Bar],
    fonts: bool,
) -> Result<PathBuf, String> {
    let rows = bars.len().max(1) as u32;
    let height = 110 + ROW * rows;
    let err = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let font = |size: u32| ("sans-serif", size).into_font();
    if fonts {
        root.draw(&Text::new(
            title.to_owned(),
            (16, 14),
            font(20).color(&BLACK),
        ))
        .map_err(|e| err(&e))?;
        root.draw(&Text::new(
            footer.to_owned(),
            (16, height as i32 - 26),
            font(13).color(&RGBColor(0x60, 0x60, 0x60)),
        ))
        .map_err(|e| err(&e))?;
    }
    let max = bars.iter().map(|b| b.value).fold(0.0f64, f64::max);
    let span = (WIDTH as i32 - LEFT - RIGHT_MARGIN) as f64;
    if bars.is_empty() && fonts {
        root.draw(&Text::new(
            "no system measured".to_owned(),
            (LEFT, 60),
            font(16).color(&BLACK),
        ))
        .map_err(|e| err(&e))?;
    }
    for (i, b) in bars.iter().enumerate() {
        let top = 56 + i as i32 * ROW as i32;
        let colour = SYSTEMS
            .iter()
            .find(|(s, _)| *s == b.system)
            .map_or(RGBColor(0x94, 0x67, 0xbd), |(_, c)| *c);
        let len = if max > 0.0 {
            (b.value / max * span * 0.62) as i32
        } else {
            0
        };
        root.draw(&Rectangle::new(
            [(LEFT, top), (LEFT + len.max(1), top + ROW as i32 - 22)],
            colour.filled(),
        ))
        .map_err(|e| err(&e))?;
        if fonts {
            root.draw(&Text::new(
                b.system.clone(),
                (16, top + 12),
                font(17).color(&BLACK),
            ))
            .map_err(|e| err(&e))?;
            root.draw(&Text::new(
                b.label.clone(),
                (LEFT + len + 10, top + 12),
                font(15).color(&BLACK),
            ))
            .map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))?;
    Ok(path.to_path_buf())
}
