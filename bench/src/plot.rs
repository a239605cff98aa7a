//! `--plot FILE.svg`: a picture of a scenario's run, drawn as plain SVG (no
//! plotting crate: two kinds of chart do not justify one).
//!
//! - **Latency by percentile**: the scenario's latency histogram (all runs
//!   merged) as a percentile curve, the percentile on a log axis (0 %, 90 %,
//!   99 %, 99.9 % … equally spaced, as HdrHistogram plots do) and the latency
//!   on a log axis, with p50, p99, p99.9 and the maximum written beside it.
//! - **Throughput over time** (throughput scenarios): acknowledged items per
//!   second in 100 ms buckets, one line per run, so a stall or a slow start
//!   shows where a median hides it.
//! - **Time series** (`soak`): one panel per quantity sampled over a long run
//!   (memory, descriptors, latency, queue depth), one line per series, from
//!   zero so a slow climb is seen at its true size, with the warm-up marked.
//!
//! Scenarios hand over what they measured ([`latency`], [`Timeline`] and
//! [`throughput_run`]); `report::emit` writes the file once the run is done.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

const WIDTH: f64 = 900.0;
const PANEL_HEIGHT: f64 = 400.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"];

/// Width of one throughput bucket.
const BUCKET: Duration = Duration::from_millis(100);

static OUTPUT: OnceLock<PathBuf> = OnceLock::new();
static DRAWN: Mutex<Drawn> =
    Mutex::new(Drawn { latency: None, runs: Vec::new(), unit: String::new(), series: Vec::new(), marker: None });

struct Drawn {
    latency: Option<(String, Histogram<u64>)>,
    runs: Vec<Vec<(f64, f64)>>,
    unit: String,
    series: Vec<Panel>,
    /// A time (s) marked on every time-series panel, with its label.
    marker: Option<(f64, String)>,
}

/// One time-series panel: its title and its lines (label, (seconds, value)).
struct Panel {
    title: String,
    lines: Vec<(String, Vec<(f64, f64)>)>,
}

/// Height of one time-series panel (several are stacked).
const SERIES_HEIGHT: f64 = 260.0;

/// Where the picture goes (`--plot`); unset, nothing is kept or drawn.
pub fn set_output(path: PathBuf) {
    let _ = OUTPUT.set(path);
}

pub fn wanted() -> bool {
    OUTPUT.get().is_some()
}

/// The scenario's latency, all runs merged; `label` says what was timed.
pub fn latency(label: &str, h: &Histogram<u64>) {
    if wanted() {
        lock().latency = Some((label.to_string(), h.clone()));
    }
}

/// One run's throughput over time, `unit` naming what is counted per second.
pub fn throughput_run(unit: &str, timeline: &Timeline) {
    if wanted() {
        let mut d = lock();
        d.unit = unit.to_string();
        d.runs.push(timeline.per_second());
    }
}

/// A time-series panel: `lines` of (label, (seconds, value)) under `title`.
pub fn series(title: &str, lines: Vec<(String, Vec<(f64, f64)>)>) {
    if wanted() {
        lock().series.push(Panel { title: title.to_string(), lines });
    }
}

/// Marks `at` seconds (e.g. the warm-up's end) on every time-series panel.
pub fn mark(at: f64, label: &str) {
    if wanted() {
        lock().marker = Some((at, label.to_string()));
    }
}

fn lock() -> std::sync::MutexGuard<'static, Drawn> {
    DRAWN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts events in 100 ms buckets from `start` (cheap enough for every ack:
/// one relaxed atomic add; events outside the span are not counted).
pub struct Timeline {
    start: Instant,
    counts: Vec<AtomicU64>,
}

impl Timeline {
    pub fn new(start: Instant, span: Duration) -> Timeline {
        let buckets = (span.as_secs_f64() / BUCKET.as_secs_f64()).ceil() as usize;
        Timeline { start, counts: (0..buckets.max(1)).map(|_| AtomicU64::new(0)).collect() }
    }

    pub fn record(&self, at: Instant) {
        self.add(at, 1);
    }

    /// `n` events at `at`.
    pub fn add(&self, at: Instant, n: u64) {
        let Some(since) = at.checked_duration_since(self.start) else { return };
        let i = (since.as_micros() / BUCKET.as_micros()) as usize;
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// (seconds from start at the bucket's middle, events per second).
    pub fn per_second(&self) -> Vec<(f64, f64)> {
        let width = BUCKET.as_secs_f64();
        self.counts
            .iter()
            .enumerate()
            .map(|(i, c)| ((i as f64 + 0.5) * width, c.load(Ordering::Relaxed) as f64 / width))
            .collect()
    }
}

/// Writes the picture, if one was asked for: `title` heads it, `subtitle`
/// says where and how it was measured.
pub fn write(title: &str, subtitle: &str) -> Result<(), String> {
    let Some(path) = OUTPUT.get() else { return Ok(()) };
    let d = lock();
    if d.latency.is_none() && d.runs.is_empty() && d.series.is_empty() {
        return Err(format!("--plot: scenario `{title}` measured nothing to draw"));
    }
    let svg = render(title, subtitle, &d);
    std::fs::write(path, svg).map_err(|e| format!("--plot {}: {e}", path.display()))?;
    eprintln!("plot written to {}", path.display());
    Ok(())
}

fn render(title: &str, subtitle: &str, d: &Drawn) -> String {
    let panels = usize::from(d.latency.is_some()) + usize::from(!d.runs.is_empty());
    let height = 40.0 + panels as f64 * PANEL_HEIGHT + d.series.len() as f64 * SERIES_HEIGHT;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    s += &text(WIDTH / 2.0, 22.0, "middle", 16.0, &format!("converger-bench {title}"));
    s += &text(WIDTH / 2.0, 40.0, "middle", 11.0, subtitle);
    let mut top = 40.0;
    if let Some((label, h)) = &d.latency {
        s += &latency_panel(top, label, h);
        top += PANEL_HEIGHT;
    }
    if !d.runs.is_empty() {
        s += &throughput_panel(top, &d.unit, &d.runs);
        top += PANEL_HEIGHT;
    }
    for panel in &d.series {
        s += &series_panel(top, panel, d.marker.as_ref());
        top += SERIES_HEIGHT;
    }
    s += "</svg>\n";
    s
}

/// The plot area of a panel starting at `top`: (x0, y0, x1, y1), y0 the top.
fn area(top: f64) -> (f64, f64, f64, f64) {
    (LEFT, top + TOP, WIDTH - RIGHT, top + PANEL_HEIGHT - BOTTOM)
}

fn latency_panel(top: f64, label: &str, h: &Histogram<u64>) -> String {
    let (x0, y0, x1, y1) = area(top);
    let mut s = text((x0 + x1) / 2.0, top + TOP - 12.0, "middle", 13.0, &format!("Latency by percentile: {label}"));
    // Decades of the percentile axis: as many nines as the sample count supports.
    let count = h.len().max(1) as f64;
    let decades = count.log10().ceil().clamp(1.0, 6.0);
    let qx = |q: f64| x0 + (x1 - x0) * ((1.0 / (1.0 - q)).log10() / decades).min(1.0);
    let (lo, hi) = (h.min().max(1) as f64, h.max().max(1) as f64);
    let (ylo, yhi) = (lo.log10().floor(), (hi.log10().ceil()).max(lo.log10().floor() + 1.0));
    let vy = |us: f64| y1 - (y1 - y0) * ((us.max(1.0).log10() - ylo) / (yhi - ylo));
    s += &frame(x0, y0, x1, y1);
    for k in 0..=decades as i32 {
        let q = 1.0 - 10f64.powi(-k);
        let x = qx(q);
        s += &grid_v(x, y0, y1);
        s += &text(x, y1 + 18.0, "middle", 11.0, &percent(q));
    }
    s += &text((x0 + x1) / 2.0, y1 + 38.0, "middle", 12.0, "percentile");
    for e in ylo as i32..=yhi as i32 {
        let y = vy(10f64.powi(e));
        s += &grid_h(x0, x1, y);
        s += &text(x0 - 8.0, y + 4.0, "end", 11.0, &duration(10f64.powi(e)));
    }
    let steps = 400;
    let points: Vec<(f64, f64)> = (0..=steps)
        .map(|i| {
            let x = decades * i as f64 / steps as f64;
            let q = (1.0 - 10f64.powf(-x)).min(1.0 - 1.0 / (count * 10.0));
            (qx(q), vy(h.value_at_quantile(q) as f64))
        })
        .collect();
    s += &polyline(&points, COLORS[0]);
    let notes = [
        ("p50", h.value_at_quantile(0.5)),
        ("p90", h.value_at_quantile(0.9)),
        ("p99", h.value_at_quantile(0.99)),
        ("p99.9", h.value_at_quantile(0.999)),
        ("max", h.max()),
    ];
    for (i, (name, v)) in notes.iter().enumerate() {
        s += &text(x1 + 14.0, y0 + 16.0 + 18.0 * i as f64, "start", 12.0, &format!("{name}: {}", duration(*v as f64)));
    }
    s += &text(x1 + 14.0, y0 + 16.0 + 18.0 * notes.len() as f64, "start", 11.0, &format!("{} samples", h.len()));
    s
}

fn throughput_panel(top: f64, unit: &str, runs: &[Vec<(f64, f64)>]) -> String {
    let (x0, y0, x1, y1) = area(top);
    let mut s = text((x0 + x1) / 2.0, top + TOP - 12.0, "middle", 13.0, &format!("Throughput over time: {unit}"));
    let tmax = runs.iter().flat_map(|r| r.last().map(|p| p.0 + 0.05)).fold(1.0, f64::max);
    let vmax = runs.iter().flatten().map(|p| p.1).fold(1.0, f64::max);
    let (step, ymax) = nice_step(vmax * 1.1);
    let tx = |t: f64| x0 + (x1 - x0) * t / tmax;
    let vy = |v: f64| y1 - (y1 - y0) * v / ymax;
    s += &frame(x0, y0, x1, y1);
    let tstep = nice_step(tmax).0;
    let mut t = 0.0;
    while t <= tmax + 1e-9 {
        s += &grid_v(tx(t), y0, y1);
        s += &text(tx(t), y1 + 18.0, "middle", 11.0, &format!("{t}"));
        t += tstep;
    }
    s += &text((x0 + x1) / 2.0, y1 + 38.0, "middle", 12.0, "seconds into the measured run");
    let mut v = 0.0;
    while v <= ymax + 1e-9 {
        s += &grid_h(x0, x1, vy(v));
        s += &text(x0 - 8.0, vy(v) + 4.0, "end", 11.0, &count(v));
        v += step;
    }
    for (i, run) in runs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, f64)> = run.iter().map(|&(t, v)| (tx(t), vy(v))).collect();
        s += &polyline(&points, color);
        let mean = run.iter().map(|p| p.1).sum::<f64>() / run.len().max(1) as f64;
        let y = y0 + 16.0 + 18.0 * i as f64;
        s += &swatch(x1 + 14.0, y - 4.0, color);
        s += &text(x1 + 40.0, y, "start", 12.0, &format!("run {}: mean {}/s", i + 1, count(mean)));
    }
    s
}

fn series_panel(top: f64, panel: &Panel, marker: Option<&(f64, String)>) -> String {
    let (x0, y0, x1, y1) = (LEFT, top + 40.0, WIDTH - RIGHT, top + SERIES_HEIGHT - 45.0);
    let mut s = text((x0 + x1) / 2.0, top + 28.0, "middle", 13.0, &panel.title);
    let points = || panel.lines.iter().flat_map(|l| l.1.iter());
    let tmax = points().map(|p| p.0).fold(1.0, f64::max);
    // Minutes on the axis once the run is long enough for seconds to crowd it.
    let (scale, unit) = if tmax > 600.0 { (60.0, "minutes") } else { (1.0, "seconds") };
    let tmax = tmax / scale;
    let (step, ymax) = nice_step(points().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.1);
    let tx = |t: f64| x0 + (x1 - x0) * (t / scale) / tmax;
    let vy = |v: f64| y1 - (y1 - y0) * v / ymax;
    s += &frame(x0, y0, x1, y1);
    let tstep = nice_step(tmax).0;
    let mut t = 0.0;
    while t <= tmax + 1e-9 {
        s += &grid_v(x0 + (x1 - x0) * t / tmax, y0, y1);
        s += &text(x0 + (x1 - x0) * t / tmax, y1 + 16.0, "middle", 11.0, &trim(t));
        t += tstep;
    }
    s += &text((x0 + x1) / 2.0, y1 + 34.0, "middle", 12.0, &format!("{unit} into the run"));
    let mut v = 0.0;
    while v <= ymax + 1e-9 {
        s += &grid_h(x0, x1, vy(v));
        s += &text(x0 - 8.0, vy(v) + 4.0, "end", 11.0, &count(v));
        v += step;
    }
    if let Some((at, label)) = marker {
        let x = tx(*at);
        s += &format!(
            "<line x1=\"{x:.1}\" y1=\"{y0}\" x2=\"{x:.1}\" y2=\"{y1}\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>\n"
        );
        s += &text(x + 4.0, y0 + 12.0, "start", 10.0, label);
    }
    for (i, (label, line)) in panel.lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        s += &polyline(&line.iter().map(|&(t, v)| (tx(t), vy(v))).collect::<Vec<_>>(), color);
        let y = y0 + 16.0 + 18.0 * i as f64;
        s += &swatch(x1 + 14.0, y - 4.0, color);
        let last = line.last().map_or(String::new(), |p| format!(" (end {})", count(p.1)));
        s += &text(x1 + 40.0, y, "start", 12.0, &format!("{label}{last}"));
    }
    s
}

/// A 1-2-5 step for an axis up to `max`, and the axis' end (a multiple of it).
fn nice_step(max: f64) -> (f64, f64) {
    let raw = max.max(1e-9) / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    (step, (max / step).ceil() * step)
}

fn percent(q: f64) -> String {
    if q <= 0.0 {
        return "0%".into();
    }
    let nines = (1.0 / (1.0 - q)).log10().round() as usize;
    format!("{:.*}%", nines.saturating_sub(2), q * 100.0)
}

/// Microseconds for people: µs, ms or s.
fn duration(us: f64) -> String {
    if us >= 1e6 {
        format!("{} s", trim(us / 1e6))
    } else if us >= 1e3 {
        format!("{} ms", trim(us / 1e3))
    } else {
        format!("{} µs", trim(us))
    }
}

fn count(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn text(x: f64, y: f64, anchor: &str, size: f64, body: &str) -> String {
    let body = body.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!("<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\" font-size=\"{size}\">{body}</text>\n")
}

fn frame(x0: f64, y0: f64, x1: f64, y1: f64) -> String {
    format!(
        "<rect x=\"{x0}\" y=\"{y0}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n",
        x1 - x0,
        y1 - y0
    )
}

fn grid_v(x: f64, y0: f64, y1: f64) -> String {
    format!("<line x1=\"{x:.1}\" y1=\"{y0}\" x2=\"{x:.1}\" y2=\"{y1}\" stroke=\"#ddd\"/>\n")
}

fn grid_h(x0: f64, x1: f64, y: f64) -> String {
    format!("<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{x1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\n")
}

fn polyline(points: &[(f64, f64)], color: &str) -> String {
    let pts: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    format!("<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>\n", pts.join(" "))
}

/// A legend's short line in a series' colour, starting at (`x`, `y`).
fn swatch(x: f64, y: f64, color: &str) -> String {
    format!("<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{color}\" stroke-width=\"2\"/>\n", x + 20.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_labels_show_their_nines() {
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.9), "90%");
        assert_eq!(percent(0.99), "99%");
        assert_eq!(percent(0.999), "99.9%");
        assert_eq!(percent(0.9999), "99.99%");
    }

    #[test]
    fn axes_step_by_one_two_or_five() {
        assert_eq!(nice_step(11.0), (2.0, 12.0));
        assert_eq!(nice_step(9500.0).0, 2000.0);
        assert_eq!(duration(1500.0), "1.5 ms");
        assert_eq!(duration(250.0), "250 µs");
        assert_eq!(count(12_340.0), "12.3k");
    }

    #[test]
    fn a_timeline_counts_per_bucket_and_the_picture_is_well_formed_svg() {
        let start = Instant::now();
        let t = Timeline::new(start, Duration::from_secs(1));
        for i in 0..50 {
            t.record(start + Duration::from_millis(i * 10));
        }
        t.record(start + Duration::from_secs(5));
        let per = t.per_second();
        assert_eq!(per.len(), 10);
        assert_eq!(per[0].1, 100.0, "10 events in the first 100 ms");
        assert_eq!(per[9].1, 0.0, "outside the span: not counted");
        let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        for v in 1..10_000u64 {
            h.record(v * 10).expect("record");
        }
        let d = Drawn {
            latency: Some(("publish → ack".into(), h)),
            runs: vec![per],
            unit: "acks".into(),
            series: Vec::new(),
            marker: None,
        };
        let svg = render("rest-ingest", "here & now", &d);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("here &amp; now") && svg.contains("99.9%") && svg.contains("p99: "));
        assert_eq!(svg.matches("<polyline").count(), 2);
    }

    #[test]
    fn time_series_panels_stack_with_the_marker_and_minutes_for_long_runs() {
        let rss: Vec<(f64, f64)> = (0..360).map(|i| (i as f64 * 5.0, 80.0 + (i % 7) as f64)).collect();
        let fds: Vec<(f64, f64)> = rss.iter().map(|&(t, _)| (t, 50.0)).collect();
        let d = Drawn {
            latency: None,
            runs: Vec::new(),
            unit: String::new(),
            series: vec![
                Panel { title: "RSS (MiB)".into(), lines: vec![("server".into(), rss)] },
                Panel { title: "fds".into(), lines: vec![("open".into(), fds.clone()), ("conns".into(), fds)] },
            ],
            marker: Some((120.0, "warm-up ends".into())),
        };
        let svg = render("soak", "here", &d);
        assert!(svg.contains("height=\"560\"") && svg.contains("minutes into the run"), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert_eq!(svg.matches("warm-up ends").count(), 2);
        assert!(svg.contains("server (end 82)"));
    }
}
