//! `looper report`: one self-contained HTML page (inline CSS and SVG, no script, no network)
//! drawn from the journal: a burndown of open tasks, a timeline of iterations coloured by
//! agent, tokens and cost per model, and every iteration with its details.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::backlog::doc::Counts;
use crate::journal::read::{self, Iteration};

/// One point of the burndown: the backlog when an iteration or a review pass ended.
#[derive(Debug, Clone)]
pub struct Point {
    pub run: String,
    pub label: String,
    pub counts: Counts,
    pub review: bool,
    /// The backlog as a run's first iteration found it.
    pub start: bool,
}

/// One run: when it started and how it ended.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub id: String,
    pub started: String,
    pub reason: Option<String>,
    pub exit_code: Option<i64>,
}

/// What the page shows, read from the journal.
#[derive(Debug, Default)]
pub struct Data {
    pub project: String,
    pub generated: String,
    pub counts: Option<Counts>,
    pub runs: Vec<Run>,
    pub iterations: Vec<Iteration>,
    pub points: Vec<Point>,
}

/// Reads every run of a project's journal, oldest first.
pub fn gather(runs_dir: &std::path::Path, prices: &crate::config::Prices) -> anyhow::Result<Data> {
    let mut data = Data::default();
    for file in read::run_files(runs_dir) {
        let mut run = Run::default();
        let mut started = false;
        let mut its = Vec::new();
        let mut fold = read::Fold::new(|it| its.push(it));
        read::stream(&file, |line| {
            if let read::Line::Record(r) = &line {
                take(r, &mut run, &mut started, &mut data.points);
            }
            fold.line(line);
        })?;
        fold.finish();
        if !run.id.is_empty() {
            data.runs.push(run);
        }
        data.iterations.extend(its.into_iter().map(|mut it| {
            it.estimate(prices);
            it
        }));
    }
    Ok(data)
}

/// Folds one record into the run's summary and the burndown.
fn take(r: &Value, run: &mut Run, started: &mut bool, points: &mut Vec<Point>) {
    let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let counts = || {
        r.get("backlog")
            .and_then(|b| serde_json::from_value::<Counts>(b.clone()).ok())
    };
    match r.get("type").and_then(Value::as_str).unwrap_or("") {
        "run.start" => {
            run.id = s("run");
            run.started = s("ts");
        }
        "run.end" => {
            run.reason = Some(s("reason"));
            run.exit_code = r.get("exit_code").and_then(Value::as_i64);
        }
        "iteration.start" if !*started => {
            *started = true;
            if let Some(counts) = counts() {
                points.push(Point {
                    run: s("run"),
                    label: "start".into(),
                    counts,
                    review: false,
                    start: true,
                });
            }
        }
        kind @ ("iteration.end" | "review.end") => {
            if let Some(counts) = counts() {
                points.push(Point {
                    run: s("run"),
                    label: s("label"),
                    counts,
                    review: kind == "review.end",
                    start: false,
                });
            }
        }
        _ => {}
    }
}

/// Colours for agent specs, in order of first use.
const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7",
];

/// Escapes text for HTML element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The anchor of an iteration's details.
fn anchor(it: &Iteration) -> String {
    let raw = format!("{}-{}", it.run, it.label);
    raw.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// The model part of an agent spec: `codex:gpt-5.4@high` → `codex:gpt-5.4`.
fn model_of(spec: &str) -> &str {
    spec.split('@').next().unwrap_or(spec)
}

/// The agent specs in order of first use, each with its colour.
fn colours(its: &[Iteration]) -> BTreeMap<&str, &'static str> {
    let mut map = BTreeMap::new();
    for it in its {
        let n = map.len();
        map.entry(it.agent.as_str())
            .or_insert(PALETTE[n % PALETTE.len()]);
    }
    map
}

const STYLE: &str = "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#1f2328;background:#fff}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
.sub{color:#59636e;margin-top:0}.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.card{border:1px solid #d0d7de;border-radius:6px;padding:.5rem .9rem;min-width:7.5rem}.card b{display:block;font-size:1.35rem}
.card span{color:#59636e;font-size:.8rem}table{border-collapse:collapse;width:100%;font-size:.85rem}
th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #eaeef2;vertical-align:top}th{background:#f6f8fa}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.done{color:#1a7f37;font-weight:600}.attempt{color:#cf222e;font-weight:600}
.other{color:#9a6700;font-weight:600}svg{display:block;margin:.5rem 0}svg text{font:11px system-ui,sans-serif;fill:#59636e}
.legend span{display:inline-block;margin-right:1rem}.sw{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin-right:.3rem;vertical-align:-1px}
section.it{border:1px solid #d0d7de;border-radius:6px;padding:.4rem .9rem;margin:.7rem 0}section.it h3{font-size:1rem;margin:.3rem 0}
pre{background:#f6f8fa;padding:.5rem;overflow-x:auto;font-size:.78rem;white-space:pre-wrap;word-break:break-word}
code{font-size:.82rem}.muted{color:#59636e}";

/// The whole page.
pub fn render(data: &Data) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Looper report: {p}</title><style>{STYLE}</style></head><body>\n\
         <h1>Looper report: {p}</h1><p class=\"sub\">generated {g} from {r} run{rs} and {i} iteration{is}</p>\n",
        p = esc(&data.project),
        g = esc(&data.generated),
        r = data.runs.len(),
        rs = if data.runs.len() == 1 { "" } else { "s" },
        i = data.iterations.len(),
        is = if data.iterations.len() == 1 { "" } else { "s" },
    );
    cards(data, &mut h);
    h.push_str("<h2 id=\"burndown\">Burndown: open tasks</h2>\n");
    burndown(&data.points, &mut h);
    h.push_str("<h2 id=\"timeline\">Timeline of iterations, by agent</h2>\n");
    timeline(data, &mut h);
    h.push_str("<h2 id=\"models\">Tokens and cost per model</h2>\n");
    models(&data.iterations, &mut h);
    h.push_str("<h2 id=\"runs\">Runs</h2>\n");
    runs(data, &mut h);
    h.push_str("<h2 id=\"iterations\">Iterations</h2>\n");
    table(&data.iterations, &mut h);
    for it in &data.iterations {
        details(it, &mut h);
    }
    h.push_str("</body></html>\n");
    h
}

fn cards(data: &Data, h: &mut String) {
    let its = &data.iterations;
    let done = its.iter().filter(|it| it.outcome == "done").count();
    let tokens: u64 = its
        .iter()
        .map(|it| it.tokens.input + it.tokens.output)
        .sum();
    let cost: Option<f64> = its.iter().filter_map(|it| it.cost_usd).reduce(|a, b| a + b);
    let estimated = its.iter().any(|it| it.cost_estimated);
    let ms: u64 = its.iter().filter_map(|it| it.duration_ms).sum();
    let reviews = data.points.iter().filter(|p| p.review).count();
    let mut cards: Vec<(String, &str)> = Vec::new();
    if let Some(c) = data.counts {
        cards.push((
            format!("{}/{}", c.done, c.open() + c.done),
            if c.project_done {
                "tasks done · project done"
            } else {
                "tasks done"
            },
        ));
    }
    let mut card = |value: String, what: &'static str| cards.push((value, what));
    card(its.len().to_string(), "iterations");
    card(done.to_string(), "iterations done");
    card((its.len() - done).to_string(), "not done (attempts)");
    card(reviews.to_string(), "review passes");
    card(tokens.to_string(), "tokens in + out");
    card(
        crate::term::cost(cost, estimated),
        "cost (as the CLIs report it, or estimated from [prices])",
    );
    card(crate::term::seconds(ms), "time in iterations");
    h.push_str("<div class=\"cards\">");
    for (value, what) in cards {
        let _ = write!(
            h,
            "<div class=\"card\"><b>{}</b><span>{}</span></div>",
            esc(&value),
            esc(what)
        );
    }
    h.push_str("</div>\n");
}

/// Scales `v` of `0..=max` onto `0..=span` pixels.
#[expect(clippy::cast_precision_loss, reason = "chart coordinates")]
fn scale(v: u64, max: u64, span: f64) -> f64 {
    if max == 0 {
        0.0
    } else {
        v as f64 * span / max as f64
    }
}

/// Opens a chart of `width` × `height` user units that scales to the page's width.
fn svg_open(h: &mut String, label: &str, width: f64, height: f64) {
    let _ = write!(
        h,
        "<svg class=\"chart\" role=\"img\" aria-label=\"{label}\" viewBox=\"0 0 {width} {height}\" width=\"100%\">"
    );
}

fn burndown(points: &[Point], h: &mut String) {
    if points.is_empty() {
        h.push_str("<p class=\"muted\">No iteration has ended yet.</p>\n");
        return;
    }
    let (width, height, left, top, bottom) = (1000.0, 260.0, 40.0, 12.0, 30.0);
    let plot_w = width - left - 12.0;
    let plot_h = height - top - bottom;
    let max = points
        .iter()
        .map(|p| p.counts.open() + p.counts.done)
        .max()
        .unwrap_or(1)
        .max(1);
    let last = points.len().max(2) - 1;
    let x_at = |i: usize| left + scale(i as u64, last as u64, plot_w);
    let y_at = |v: usize| top + plot_h - scale(v as u64, max as u64, plot_h);
    svg_open(h, "burndown of open tasks", width, height);
    // Gridlines and the y axis.
    for k in 0..=4 {
        let v = max * k / 4;
        let _ = write!(
            h,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eaeef2\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>",
            width - 12.0,
            left - 6.0,
            y_at(v) + 4.0,
            y = y_at(v)
        );
    }
    for (i, p) in points.iter().enumerate().filter(|(_, p)| p.start) {
        let _ = write!(
            h,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{top}\" y2=\"{:.1}\" stroke=\"#afb8c1\" stroke-dasharray=\"2 3\"/><text x=\"{:.1}\" y=\"{:.1}\">run {}</text>",
            top + plot_h,
            x_at(i) + 3.0,
            top + 10.0,
            esc(&p.run),
            x = x_at(i)
        );
    }
    let line = |f: &dyn Fn(&Counts) -> usize| {
        points
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1}", x_at(i), y_at(f(&p.counts))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = write!(
        h,
        "<polyline fill=\"none\" stroke=\"#8c959f\" stroke-dasharray=\"4 3\" stroke-width=\"1.5\" points=\"{}\"/>",
        line(&|c| c.open() + c.done)
    );
    let _ = write!(
        h,
        "<polyline fill=\"none\" stroke=\"#cf222e\" stroke-width=\"2.5\" points=\"{}\"/>",
        line(&Counts::open)
    );
    for (i, p) in points.iter().enumerate() {
        let (cx, cy) = (x_at(i), y_at(p.counts.open()));
        let title = esc(&format!(
            "{} {}: {} open of {}",
            p.run,
            p.label,
            p.counts.open(),
            p.counts.open() + p.counts.done
        ));
        if p.review {
            let _ = write!(
                h,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"8\" height=\"8\" transform=\"rotate(45 {cx:.1} {cy:.1})\" fill=\"#8250df\"><title>{title}</title></rect>",
                cx - 4.0,
                cy - 4.0
            );
        } else {
            let _ = write!(
                h,
                "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3\" fill=\"#cf222e\"><title>{title}</title></circle>"
            );
        }
    }
    let _ = writeln!(
        h,
        "<text x=\"{left}\" y=\"{}\">first</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">latest ({} steps)</text></svg>",
        height - 8.0,
        width - 12.0,
        height - 8.0,
        points.len()
    );
    h.push_str(
        "<p class=\"legend\"><span><i class=\"sw\" style=\"background:#cf222e\"></i>open tasks when a run starts and after each iteration</span>\
         <span><i class=\"sw\" style=\"background:#8250df\"></i>after a review pass</span>\
         <span><i class=\"sw\" style=\"background:#8c959f\"></i>all tasks</span></p>\n",
    );
}

/// Milliseconds from `from` to `to` (RFC 3339), 0 when either does not parse.
fn between(from: &str, to: &str) -> u64 {
    read::ms_between(from, to).unwrap_or(0)
}

/// A bar of the timeline: start and length in ms since its run started.
type Bar<'a> = (u64, u64, &'a Iteration);

fn timeline(data: &Data, h: &mut String) {
    if data.iterations.is_empty() {
        h.push_str("<p class=\"muted\">No iteration yet.</p>\n");
        return;
    }
    let colour = colours(&data.iterations);
    let start_of = |run: &str| {
        data.runs
            .iter()
            .find(|r| r.id == run)
            .map_or("", |r| r.started.as_str())
    };
    // Each run is a row; x is time since the run started.
    // Bars of (start ms, length ms, iteration), one row per run.
    let mut rows: Vec<(&str, Vec<Bar>)> = Vec::new();
    for it in &data.iterations {
        let at = between(start_of(&it.run), &it.started);
        let span = it.duration_ms.unwrap_or(0);
        match rows.last_mut() {
            Some((run, bars)) if *run == it.run => bars.push((at, span, it)),
            _ => rows.push((&it.run, vec![(at, span, it)])),
        }
    }
    let longest = rows
        .iter()
        .flat_map(|(_, bars)| bars.iter().map(|(at, span, _)| at + span))
        .max()
        .unwrap_or(1)
        .max(1);
    let (w, left, row) = (1000.0, 190.0, 26.0);
    let plot_w = w - left - 12.0;
    #[expect(clippy::cast_precision_loss, reason = "chart coordinates")]
    let ht = row * rows.len() as f64 + 24.0;
    let px = |ms: u64| scale(ms, longest, plot_w);
    svg_open(h, "timeline of iterations", w, ht);
    let mut y = 4.0;
    for (run, bars) in &rows {
        let _ = write!(h, "<text x=\"0\" y=\"{:.1}\">{}</text>", y + 15.0, esc(run));
        for (at, span, it) in bars {
            let stroke = if it.outcome == "done" {
                "none"
            } else {
                "#cf222e"
            };
            let _ = write!(
                h,
                "<a href=\"#{}\"><rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{}\" rx=\"2\" fill=\"{}\" stroke=\"{stroke}\" stroke-width=\"2\"><title>{}</title></rect></a>",
                anchor(it),
                left + px(*at),
                px(*span).max(3.0),
                row - 6.0,
                colour.get(it.agent.as_str()).copied().unwrap_or(PALETTE[0]),
                esc(&format!(
                    "{} {} on {} with {}: {} in {}",
                    it.run,
                    it.label,
                    it.task,
                    it.agent,
                    it.outcome,
                    it.duration_ms
                        .map_or_else(|| "-".into(), crate::term::seconds)
                ))
            );
        }
        y += row;
    }
    let _ = writeln!(
        h,
        "<text x=\"{left}\" y=\"{:.1}\">0 s</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} after the run started</text></svg>",
        ht - 4.0,
        w - 12.0,
        ht - 4.0,
        esc(&crate::term::seconds(longest))
    );
    h.push_str("<p class=\"legend\">");
    for (agent, c) in &colour {
        let _ = write!(
            h,
            "<span><i class=\"sw\" style=\"background:{c}\"></i>{}</span>",
            esc(agent)
        );
    }
    h.push_str(
        "<span><i class=\"sw\" style=\"border:2px solid #cf222e\"></i>not done (an attempt)</span></p>\n",
    );
}

fn models(its: &[Iteration], h: &mut String) {
    #[derive(Default)]
    struct Sum {
        iterations: usize,
        input: u64,
        cached: u64,
        output: u64,
        cost: Option<f64>,
        estimated: bool,
    }
    let mut by: BTreeMap<&str, Sum> = BTreeMap::new();
    for it in its {
        let s = by.entry(model_of(&it.agent)).or_default();
        s.iterations += 1;
        s.input += it.tokens.input;
        s.cached += it.tokens.cached;
        s.output += it.tokens.output;
        if let Some(c) = it.cost_usd {
            *s.cost.get_or_insert(0.0) += c;
        }
        s.estimated |= it.cost_estimated;
    }
    if by.is_empty() {
        h.push_str("<p class=\"muted\">No agent has run yet.</p>\n");
        return;
    }
    let max = by
        .values()
        .map(|s| s.input + s.output)
        .max()
        .unwrap_or(1)
        .max(1);
    let (w, left, row) = (1000.0, 190.0, 26.0);
    let plot_w = w - left - 120.0;
    #[expect(clippy::cast_precision_loss, reason = "chart coordinates")]
    let ht = row * by.len() as f64 + 4.0;
    let px = |v: u64| scale(v, max, plot_w);
    svg_open(h, "tokens per model", w, ht);
    let mut y = 4.0;
    for (model, s) in &by {
        let fresh = s.input.saturating_sub(s.cached);
        let mut x = left;
        let _ = write!(
            h,
            "<text x=\"0\" y=\"{:.1}\">{}</text>",
            y + 15.0,
            esc(model)
        );
        for (v, c, what) in [
            (fresh, "#4e79a7", "input"),
            (s.cached.min(s.input), "#a0cbe8", "cached input"),
            (s.output, "#f28e2b", "output"),
        ] {
            let _ = write!(
                h,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{}\" fill=\"{c}\"><title>{what}: {v}</title></rect>",
                px(v),
                row - 6.0
            );
            x += px(v);
        }
        let _ = write!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x + 6.0,
            y + 15.0,
            s.input + s.output
        );
        y += row;
    }
    h.push_str("</svg>\n<p class=\"legend\"><span><i class=\"sw\" style=\"background:#4e79a7\"></i>input</span><span><i class=\"sw\" style=\"background:#a0cbe8\"></i>cached input</span><span><i class=\"sw\" style=\"background:#f28e2b\"></i>output</span></p>\n");
    h.push_str("<table><tr><th>model</th><th class=\"n\">iterations</th><th class=\"n\">input</th><th class=\"n\">cached</th><th class=\"n\">output</th><th class=\"n\">cost</th></tr>\n");
    for (model, s) in &by {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(model),
            s.iterations,
            s.input,
            s.cached,
            s.output,
            crate::term::cost(s.cost, s.estimated)
        );
    }
    h.push_str("</table>\n");
}

fn runs(data: &Data, h: &mut String) {
    if data.runs.is_empty() {
        h.push_str("<p class=\"muted\">No run yet: <code>looper run</code> starts one.</p>\n");
        return;
    }
    h.push_str("<table><tr><th>run</th><th>started (UTC)</th><th class=\"n\">iterations</th><th>ended</th><th class=\"n\">exit</th></tr>\n");
    for r in &data.runs {
        let n = data.iterations.iter().filter(|it| it.run == r.id).count();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{n}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            esc(&r.id),
            esc(&r
                .started
                .replace('T', " ")
                .chars()
                .take(19)
                .collect::<String>()),
            esc(r.reason.as_deref().unwrap_or("running, or killed")),
            r.exit_code.map_or_else(|| "-".into(), |c| c.to_string())
        );
    }
    h.push_str("</table>\n");
}

fn outcome_class(outcome: &str) -> &'static str {
    match outcome {
        "done" => "done",
        "attempt" => "attempt",
        _ => "other",
    }
}

fn table(its: &[Iteration], h: &mut String) {
    if its.is_empty() {
        h.push_str("<p class=\"muted\">No iteration yet.</p>\n");
        return;
    }
    h.push_str("<table><tr><th>when (UTC)</th><th>run</th><th>step</th><th>task</th><th>agent</th><th>outcome</th><th class=\"n\">time</th><th class=\"n\">tokens</th><th class=\"n\">cost</th><th>commits</th></tr>\n");
    for it in its {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td><a href=\"#{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td><code>{}</code></td></tr>",
            esc(&it
                .started
                .replace('T', " ")
                .chars()
                .take(19)
                .collect::<String>()),
            esc(&it.run),
            anchor(it),
            esc(&it.label),
            esc(&it.task),
            esc(&it.agent),
            outcome_class(&it.outcome),
            esc(&it.outcome),
            it.duration_ms
                .map_or_else(|| "-".into(), crate::term::seconds),
            it.tokens.input + it.tokens.output,
            it.cost_usd
                .map_or_else(|| "-".into(), |c| format!("${c:.4}")),
            esc(&it
                .commits
                .iter()
                .map(|c| c.chars().take(8).collect::<String>())
                .collect::<Vec<_>>()
                .join(" "))
        );
    }
    h.push_str("</table>\n");
}

fn details(it: &Iteration, h: &mut String) {
    let _ = write!(
        h,
        "<section class=\"it\" id=\"{}\"><h3>{} of run {}: task {} · <span class=\"{}\">{}</span></h3>\n<p>agent <code>{}</code> · picked because {} · {} · tokens in {} (cached {}) out {}</p>\n",
        anchor(it),
        esc(&it.label),
        esc(&it.run),
        esc(&it.task),
        outcome_class(&it.outcome),
        esc(&it.outcome),
        esc(&it.agent),
        esc(&it.reason),
        it.duration_ms
            .map_or_else(|| "-".into(), crate::term::seconds),
        it.tokens.input,
        it.tokens.cached,
        it.tokens.output,
    );
    if let Some(note) = &it.note {
        let _ = writeln!(h, "<p>note: {}</p>", esc(note));
    }
    if !it.changed.is_empty() {
        let _ = writeln!(
            h,
            "<p>files changed: <code>{}</code></p>",
            esc(&it.changed.join(" "))
        );
    }
    if !it.commands.is_empty() {
        h.push_str("<details><summary>");
        let _ = write!(
            h,
            "{} commands the agent ran</summary><pre>",
            it.commands.len()
        );
        for c in &it.commands {
            let _ = writeln!(
                h,
                "$ {}  (exit {})",
                esc(&c.command),
                c.exit_code.map_or_else(|| "?".into(), |c| c.to_string())
            );
        }
        h.push_str("</pre></details>\n");
    }
    for g in &it.gates {
        let r = &g["result"];
        let _ = writeln!(
            h,
            "<p>gate ({}) <code>{}</code>: <span class=\"{}\">{}</span> (exit {})</p>",
            esc(g["phase"].as_str().unwrap_or("?")),
            esc(r["command"].as_str().unwrap_or("?")),
            if r["passed"] == true {
                "done"
            } else {
                "attempt"
            },
            if r["passed"] == true {
                "passed"
            } else {
                "failed"
            },
            r["exit_code"]
        );
    }
    if let Some(report) = &it.report {
        let text = serde_json::to_string_pretty(report.get("report").unwrap_or(report))
            .unwrap_or_default();
        let _ = writeln!(
            h,
            "<details><summary>report</summary><pre>{}</pre></details>",
            esc(&text)
        );
    }
    if let Some(text) = it
        .prompt
        .as_ref()
        .and_then(|p| p.get("text"))
        .and_then(Value::as_str)
    {
        let _ = writeln!(
            h,
            "<details><summary>prompt</summary><pre>{}</pre></details>",
            esc(text)
        );
    }
    h.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x' & \"y\")</script>"),
            "&lt;script&gt;alert(&#39;x&#39; &amp; &quot;y&quot;)&lt;/script&gt;"
        );
    }

    #[test]
    fn models_drop_the_effort() {
        assert_eq!(model_of("codex:gpt-5.4@xhigh"), "codex:gpt-5.4");
        assert_eq!(model_of("cmd:./agent.sh"), "cmd:./agent.sh");
    }

    #[test]
    fn between_reads_rfc3339() {
        assert_eq!(
            between("2026-11-30T10:00:00Z", "2026-11-30T10:00:01.5Z"),
            1500
        );
        assert_eq!(between("garbage", "2026-11-30T10:00:01Z"), 0);
    }
}
