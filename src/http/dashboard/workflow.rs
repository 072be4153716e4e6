//! The workflow pages: `GET /dashboard/workflows` (newest first, 50 a page, or fewer within
//! the listings' byte budget, each with its steps' counts by state) and
//! `GET /dashboard/workflows/{id}`: the steps drawn as a graph (inline SVG, server-rendered:
//! one node per step with its name, job id and state, coloured by state, each a link to the
//! job's page; an edge from each step to the steps that wait for it;
//! laid out by [`graph`](super::graph)), the steps as a table (as `porter workflows show`), and
//! a cancel button posting `POST /dashboard/workflows/{id}/cancel` (the checks of every
//! dashboard action: origin, then token), which cancels as `porter workflows cancel` does.
//!
//! # Large workflows
//! A workflow may have up to [`MAX_STEPS`](crate::workflow::MAX_STEPS) steps; a browser would
//! choke on an SVG of that many nodes, and nobody can read one. So the graph draws the first
//! [`DRAWN_STEPS`] steps (insertion order: every drawn step's parents inside the workflow are
//! drawn too, as a step waits only for earlier ones) and at most [`LAYER_WIDTH`] nodes a layer:
//! a wider layer shows its first `LAYER_WIDTH - 1` steps and one box counting the others (the
//! edges to and from them go to that box). The page says when it left steps out; the table
//! below lists every step, [`STEPS_SHOWN`] a page.
//!
//! Step names and kinds are the user's text: maud escapes them in text and attributes alike,
//! and control characters are shown as `\u{fffd}` in the graph's labels, so a name cannot end
//! an SVG `<text>` or an attribute.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup};

use super::{
    error_page, graph, layout, nav_header, problem_page, readable, refusal, time, AppState,
};
use crate::http::listing;
use crate::job::JobState;
use crate::workflow::{StepPage, StepParents, WorkflowDetail, WorkflowStep};

/// Workflows listed a page.
pub const WORKFLOWS_SHOWN: u32 = 50;
/// Steps listed a page in a workflow's table.
pub const STEPS_SHOWN: usize = 100;
/// Steps drawn in the graph at most: the first ones inserted.
pub const DRAWN_STEPS: usize = 200;
/// Nodes drawn in one layer at most (the last one counting the layer's other steps).
pub const LAYER_WIDTH: usize = 16;
/// Edges drawn at most, those between adjacent layers first: the drawn steps may wait for
/// each other in every pair (19,900 edges for 200 steps).
pub const MAX_DRAWN_EDGES: usize = 1000;
/// Characters of parents' names a step's "after" cell shows before it counts the rest.
const AFTER_CHARS: usize = 80;
/// The room for a step's name in its node, in ems of its 12 px font: the box less 8 px each
/// side (the whole name is the node's tooltip and in the table).
const LABEL_EMS: f64 = (NODE_W - 16) as f64 / 12.0;

const NODE_W: i64 = 170;
const NODE_H: i64 = 40;
const GAP_X: i64 = 20;
const GAP_Y: i64 = 48;
const MARGIN: i64 = GAP_X;

/// A state's fill and outline in the graph and its legend.
pub fn colours(state: JobState) -> (&'static str, &'static str) {
    match state {
        JobState::Pending => ("#f4f4f5", "#a1a1aa"),
        JobState::Available => ("#dbeafe", "#2563eb"),
        JobState::Scheduled => ("#ede9fe", "#7c3aed"),
        JobState::Running => ("#fef3c7", "#d97706"),
        JobState::Retryable => ("#ffedd5", "#ea580c"),
        JobState::Completed => ("#dcfce7", "#16a34a"),
        JobState::Cancelled => ("#e4e4e7", "#52525b"),
        JobState::Discarded => ("#fee2e2", "#dc2626"),
    }
}

/// The states in the order the legend and counts show them: as a step goes.
const STATES: [JobState; 8] = [
    JobState::Pending,
    JobState::Scheduled,
    JobState::Available,
    JobState::Running,
    JobState::Retryable,
    JobState::Completed,
    JobState::Cancelled,
    JobState::Discarded,
];

/// A query's value by key.
fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Counts by state as one cell, `completed 2, pending 1` (a workflow's steps, a batch's
/// members), or `none` when there are none.
pub(super) fn state_counts(counts: &BTreeMap<JobState, i64>, none: &str) -> Markup {
    html! {
        @if counts.is_empty() {
            span.muted { (none) }
        }
        @for (i, s) in STATES.iter().filter(|s| counts.contains_key(s)).enumerate() {
            @if i > 0 { ", " }
            span.count data-state=(s.as_str()) style=(format!("border-bottom: 3px solid {}", colours(*s).1)) {
                (s.as_str()) " " (counts[s])
            }
        }
    }
}

/// `GET /dashboard/workflows?before_id=`.
pub(super) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(refused) = readable(&state, &headers) {
        return refused;
    }
    let paging = match Paging::from_query(&state, "/dashboard/workflows", query.as_deref()) {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    // Bounded in bytes as `GET /admin/workflows` is: another program's names can be long.
    let budget = state.config.max_list_bytes;
    let shown = Some(WORKFLOWS_SHOWN);
    let (workflows, next) =
        match listing::workflows_page(&state.client, shown, budget, paging.before_id).await {
            Ok(page) => page,
            Err(e) => return error_page(&state, e),
        };
    let refresh = state.config.dashboard_refresh.as_secs().max(1);
    let url = paging.url();
    let body = html! {
        (nav_header(&state, &headers, "Workflows"))
        @if workflows.is_empty() {
            p.muted #no-workflows { "No workflows." }
        } @else {
            table #workflows {
                thead { tr { th.n { "id" } th { "name" } th { "created" } th.n { "steps" } th { "states" } } }
                tbody {
                    @for w in &workflows {
                        tr #(format!("workflow-{}", w.id)) data-workflow-id=(w.id) data-finished=(w.finished()) {
                            td.n { a href=(format!("/dashboard/workflows/{}", w.id)) { (w.id) } }
                            td { a href=(format!("/dashboard/workflows/{}", w.id)) { (shortened(&w.name, LISTED_NAME_CHARS)) } }
                            td { (time(Some(w.created_at))) }
                            td.n { (w.total) }
                            td.states { (state_counts(&w.counts, "no steps left")) }
                        }
                    }
                }
            }
        }
        (paging.links(next))
    };
    Html(layout("porter: workflows", Some((refresh, &url)), body).into_string()).into_response()
}

/// Where a listing page starts: below `before_id` (from the query; refused unless a whole
/// number), newest first, and its links to the first and the next page.
pub(super) struct Paging {
    base: &'static str,
    pub(super) before_id: Option<i64>,
}

impl Paging {
    /// The page `query` asks for, or the 400 page that refuses it.
    pub(super) fn from_query(
        state: &AppState,
        base: &'static str,
        query: Option<&str>,
    ) -> Result<Self, Box<Response>> {
        let before_id = match query_value(query, "before_id").map(|v| v.parse::<i64>()) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => {
                return Err(Box::new(problem_page(
                    state,
                    StatusCode::BAD_REQUEST,
                    "before_id is an id, a whole number",
                )))
            }
        };
        Ok(Paging { base, before_id })
    }

    /// This page's own URL (where it reloads itself).
    pub(super) fn url(&self) -> String {
        match self.before_id {
            Some(id) => format!("{}?before_id={id}", self.base),
            None => self.base.to_string(),
        }
    }

    /// "First page" when this is not the first, and "Next page" when `next` (the last id
    /// shown) has more after it.
    pub(super) fn links(&self, next: Option<i64>) -> Markup {
        html! {
            p {
                @if self.before_id.is_some() {
                    a #first-page href=(self.base) { "First page" } " "
                }
                @if let Some(last) = next {
                    a #next-page href=(format!("{}?before_id={last}", self.base)) { "Next page" }
                }
            }
        }
    }
}

/// A one-time notice after a cancel: counts only, so the URL cannot put text on the page.
fn cancel_notice(query: Option<&str>) -> Option<String> {
    let n = |key| query_value(query, key)?.parse::<u64>().ok();
    let (cancelled, stopping) = (n("steps_cancelled")?, n("steps_stopping")?);
    Some(format!(
        "Workflow cancelled: {cancelled} steps cancelled, {stopping} running steps asked to stop."
    ))
}

/// `GET /dashboard/workflows/{id}?page=`.
pub(super) async fn page(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(refused) = readable(&state, &headers) {
        return refused;
    }
    let Ok(Path(id)) = path else {
        return problem_page(
            &state,
            StatusCode::BAD_REQUEST,
            "a workflow id is a whole number, as in /dashboard/workflows/7",
        );
    };
    let page = match query_value(query.as_deref(), "page").map(|v| v.parse::<usize>()) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        Some(_) => {
            return problem_page(
                &state,
                StatusCode::BAD_REQUEST,
                "page is a whole number from 1",
            )
        }
    };
    // The first steps for the graph, and the page's for the table: two bounded reads, however
    // many steps the workflow has.
    // Each step's parents are read only as far as the page shows them: for the graph, those
    // among the drawn steps; for the table, the first, as far as a cell names them, with how
    // many there are (a page of 200 steps each after 10,000 jobs read 2,000,000 edges, every
    // refresh).
    let drawn = StepPage {
        limit: Some(DRAWN_STEPS as u32),
        parents: StepParents::InPage,
        ..StepPage::all()
    };
    let listed = StepPage {
        offset: u32::try_from((page - 1).saturating_mul(STEPS_SHOWN)).unwrap_or(u32::MAX),
        limit: Some(STEPS_SHOWN as u32),
        parents: StepParents::First(AFTER_CHARS as u32),
        ..StepPage::all()
    };
    let (wf, listed) = match (
        state.client.workflow_page(id, drawn).await,
        state.client.workflow_page(id, listed).await,
    ) {
        (Ok(Some(wf)), Ok(Some(listed))) => (wf, listed),
        (Ok(None), _) | (_, Ok(None)) => {
            return problem_page(
                &state,
                StatusCode::NOT_FOUND,
                &format!("no workflow {id} (it goes once retention deleted its last step)"),
            )
        }
        (Err(e), _) | (_, Err(e)) => return error_page(&state, e),
    };
    let pages = (listed.workflow.total as usize)
        .div_ceil(STEPS_SHOWN)
        .max(1);
    if page > pages {
        return problem_page(
            &state,
            StatusCode::NOT_FOUND,
            &format!(
                "no page {page} of workflow {id}: its {} steps fill {pages} {} of {STEPS_SHOWN}",
                listed.workflow.total,
                if pages == 1 { "page" } else { "pages" }
            ),
        );
    }
    let refresh = state.config.dashboard_refresh.as_secs().max(1);
    let url = match page {
        1 => format!("/dashboard/workflows/{id}"),
        p => format!("/dashboard/workflows/{id}?page={p}"),
    };
    let w = &wf.workflow;
    let body = html! {
        (nav_header(&state, &headers, &format!("Workflow {id}")))
        @if let Some(text) = cancel_notice(query.as_deref()) {
            p { span.notice #notice { (text) } }
        }
        section #workflow data-workflow-id=(w.id) data-finished=(w.finished()) {
            dl.fields {
                dt { "name" } dd #name { (w.name) }
                dt { "created" } dd { (time(Some(w.created_at))) }
                dt { "steps" } dd #total { (w.total) }
                dt { "states" } dd #states { (state_counts(&w.counts, "no steps left")) }
            }
            @if !w.finished() {
                form.inline method="post" action=(format!("/dashboard/workflows/{id}/cancel")) {
                    button type="submit" class="cancel" data-workflow-id=(id) { "Cancel workflow" }
                }
                span.muted { " cancels every unfinished step; running steps are asked to stop" }
            }
        }
        section #graph {
            h2 { "Steps as a graph" }
            (draw(&wf))
        }
        section #steps {
            h2 { "Steps" }
            (steps_table(&listed, page))
        }
    };
    Html(
        layout(
            &format!("porter: workflow {id}"),
            Some((refresh, &url)),
            body,
        )
        .into_string(),
    )
    .into_response()
}

/// `POST /dashboard/workflows/{id}/cancel`: back to the workflow's page with the counts.
pub(super) async fn cancel(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(page) = refusal(&state, &headers, &body) {
        return page;
    }
    let Ok(Path(id)) = path else {
        return problem_page(
            &state,
            StatusCode::BAD_REQUEST,
            "a workflow id is a whole number",
        );
    };
    match state.client.cancel_workflow(id).await {
        Ok(out) => Redirect::to(&format!(
            "/dashboard/workflows/{id}?steps_cancelled={}&steps_stopping={}",
            out.cancelled, out.cancel_requested
        ))
        .into_response(),
        Err(e) => error_page(&state, e),
    }
}

/// The steps, a page of [`STEPS_SHOWN`]: `wf` holds page `page`'s steps and the counts of
/// all of them.
fn steps_table(wf: &WorkflowDetail, page: usize) -> Markup {
    let total = usize::try_from(wf.workflow.total).unwrap_or(0);
    let pages = total.div_ceil(STEPS_SHOWN).max(1);
    let shown = wf.steps.iter().take(STEPS_SHOWN);
    let id = wf.workflow.id;
    html! {
        @if pages > 1 {
            p.muted #steps-page { "Page " (page) " of " (pages) " (" (STEPS_SHOWN) " steps a page)." }
        }
        table #steps-table {
            thead { tr { th { "step" } th.n { "job" } th { "kind" } th { "state" } th.n { "attempts" } th { "finalized" } th { "after" } } }
            tbody {
                @for s in shown {
                    tr.step data-job-id=(s.job_id) data-state=(s.state.as_str()) {
                        td { (shortened(&s.step, LISTED_NAME_CHARS)) }
                        td.n { a href=(format!("/dashboard/jobs/{}", s.job_id)) { (s.job_id) } }
                        td { (shortened(&s.kind, LISTED_NAME_CHARS)) }
                        td { (s.state.as_str()) }
                        td.n { (s.attempt) }
                        td { (time(s.finalized_at)) }
                        td { @if s.after.is_empty() { span.muted { "-" } } @else { (after_cell(&s.after, s.parents_total)) } }
                    }
                }
            }
        }
        p {
            @if page > 1 {
                a #previous-steps href=(format!("/dashboard/workflows/{id}?page={}#steps", page - 1)) { "Previous steps" } " "
            }
            @if page < pages {
                a #next-steps href=(format!("/dashboard/workflows/{id}?page={}#steps", page + 1)) { "Next steps" }
            }
        }
    }
}

/// A step's parents, by name, as far as [`AFTER_CHARS`] go (the first one cut to fit), and how
/// many more (of `total` when only some were read): a fan-in step may wait for 10,000 steps.
fn after_cell(after: &[String], total: Option<u64>) -> String {
    let mut cell = String::new();
    let mut used = 0;
    let mut named = 0;
    for name in after {
        let (chars, sep) = (name.chars().count(), if named == 0 { "" } else { ", " });
        let room = AFTER_CHARS - used;
        if named > 0 && chars + sep.len() > room {
            break;
        }
        cell.push_str(sep);
        if chars > room {
            cell.extend(name.chars().take(room - 1));
            cell.push('…');
        } else {
            cell.push_str(name);
        }
        used += sep.len() + chars.min(room);
        named += 1;
    }
    let total = total.map_or(after.len(), |t| t as usize).max(after.len());
    if named < total {
        cell.push_str(&format!(" and {} more", total - named));
    }
    cell
}

/// Most characters of a name (a workflow's, a step's, a kind) the list pages and a workflow's
/// page show: a name porter writes is at most 255 bytes, but another program's may be
/// megabytes, and a page's byte budget counts it as JSON, where HTML writes `&` in five. (Until
/// 7 Dec a workflow's page wrote its steps' names and kinds whole, three times each.)
pub(super) const LISTED_NAME_CHARS: usize = 255;

/// `text`'s first `max` characters, and `…` when it has more: a name in a list, which its own
/// page shows whole.
pub(super) fn shortened(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// A node of the drawing: a step, or the box counting a wide layer's other steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Node {
    Step(usize),
    More(usize),
}

/// A label that cannot break the SVG nor reorder what it shows: control characters, U+FFFE,
/// U+FFFF and the marks that reorder text replaced, at most `max` characters.
pub(super) fn label(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        // What XML 1.0 does not allow (control characters, U+FFFE, U+FFFF: a Rust string
        // holds no surrogate) and the marks that reorder text (`reorders_text`:
        // `\u{202e}evil.exe` drawn as `exe.live`).
        .map(|c| {
            if c.is_control()
                || matches!(c, '\u{fffe}' | '\u{ffff}')
                || crate::http::reorders_text(c)
            {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// A step's name as its node draws it: [`label`]'s text, cut with `…` to [`LABEL_EMS`] by
/// [`ems`]. (Until 7 Dec it was cut at 22 characters whatever their width, and 22 `w` ran
/// 60 px past the box.)
fn node_label(text: &str) -> String {
    let shown = label(text, usize::MAX);
    if shown.chars().map(ems).sum::<f64>() <= LABEL_EMS {
        return shown;
    }
    let mut used = ems('…');
    let mut out: String = shown
        .chars()
        .take_while(|&c| {
            used += ems(c);
            used <= LABEL_EMS
        })
        .collect();
    out.push('…');
    out
}

/// A character's width in ems, as wide as the usual sans-serif fonts draw it or wider
/// (DejaVu Sans, the widest of them: `m` 0.97, `w` 0.82, `#` and `=` 0.84, `a` 0.61, `i`
/// 0.28); any character beyond ASCII is taken as a whole em or more (CJK's are one em).
fn ems(c: char) -> f64 {
    match c {
        'm' | 'w' | 'M' | 'W' | '@' | '%' => 1.0,
        // The symbols as wide as capitals (until a review of 7 Dec taken as 0.66).
        '#' | '&' | '+' | '<' | '=' | '>' | '^' | '~' => 0.85,
        'f' | 'i' | 'j' | 'l' | 'r' | 't' | 'I' | ' ' | '.' | ',' | ':' | ';' | '\'' | '|'
        | '!' | '(' | ')' | '[' | ']' | '-' => 0.45,
        'A'..='Z' => 0.8,
        _ if c.is_ascii() => 0.66,
        _ => 1.05,
    }
}

/// The edges (parent index, child index) among the first `n` steps, found by the parents' job
/// ids (`after_ids`; a job outside the workflow is not drawn). Not by name: a step may be
/// named like an outside job (`job N`).
fn step_edges(steps: &[WorkflowStep], n: usize) -> Vec<(usize, usize)> {
    let index: BTreeMap<i64, usize> = steps[..n]
        .iter()
        .enumerate()
        .map(|(i, s)| (s.job_id, i))
        .collect();
    let mut edges = Vec::new();
    for (child, s) in steps[..n].iter().enumerate() {
        for parent in &s.after_ids {
            if let Some(&p) = index.get(parent) {
                if p != child {
                    edges.push((p, child));
                }
            }
        }
    }
    edges
}

/// The graph as inline SVG, with its legend: `wf` holds the workflow's first steps (as many
/// as are drawn, [`DRAWN_STEPS`]) and its counts of all of them.
fn draw(wf: &WorkflowDetail) -> Markup {
    let steps = &wf.steps;
    if steps.is_empty() {
        return html! { p.muted { "No steps left to draw (retention deleted them)." } };
    }
    let n = steps.len().min(DRAWN_STEPS);
    let total = usize::try_from(wf.workflow.total)
        .unwrap_or(0)
        .max(steps.len());
    let edges = step_edges(steps, n);
    let layer = graph::layers(n, &edges);
    let rows = graph::order(&layer, &edges);

    // Wide layers: the first LAYER_WIDTH - 1 steps, then one box for the rest.
    let mut node_of = vec![Node::Step(0); n];
    let mut drawn: Vec<Vec<Node>> = Vec::with_capacity(rows.len());
    let mut hidden: BTreeMap<usize, usize> = BTreeMap::new();
    for (l, row) in rows.iter().enumerate() {
        let mut nodes = Vec::new();
        for (i, &v) in row.iter().enumerate() {
            if row.len() > LAYER_WIDTH && i >= LAYER_WIDTH - 1 {
                node_of[v] = Node::More(l);
                *hidden.entry(l).or_default() += 1;
            } else {
                node_of[v] = Node::Step(v);
                nodes.push(Node::Step(v));
            }
        }
        if hidden.contains_key(&l) {
            nodes.push(Node::More(l));
        }
        drawn.push(nodes);
    }
    let widest = drawn.iter().map(Vec::len).max().unwrap_or(1) as i64;
    let width = 2 * MARGIN + widest * (NODE_W + GAP_X) - GAP_X;
    let height = 2 * MARGIN + drawn.len() as i64 * (NODE_H + GAP_Y) - GAP_Y;
    let mut at: BTreeMap<Node, (i64, i64)> = BTreeMap::new();
    for (l, nodes) in drawn.iter().enumerate() {
        let indent = (widest - nodes.len() as i64) * (NODE_W + GAP_X) / 2;
        for (i, node) in nodes.iter().enumerate() {
            let x = MARGIN + indent + i as i64 * (NODE_W + GAP_X);
            let y = MARGIN + l as i64 * (NODE_H + GAP_Y);
            at.insert(*node, (x, y));
        }
    }
    let layer_of = |node: Node| match node {
        Node::Step(v) => layer[v],
        Node::More(l) => l,
    };
    let lines: BTreeSet<(Node, Node)> = edges
        .iter()
        .map(|&(p, c)| (node_of[p], node_of[c]))
        .collect();
    let all_lines = lines.len();
    let lines: BTreeSet<(Node, Node)> = if all_lines > MAX_DRAWN_EDGES {
        let mut by_span: Vec<(Node, Node)> = lines.into_iter().collect();
        by_span.sort_by_key(|&(from, to)| (layer_of(to).abs_diff(layer_of(from)), from, to));
        by_span.into_iter().take(MAX_DRAWN_EDGES).collect()
    } else {
        lines
    };
    // Each layer's boxes by their left edge, for the edges that pass it by.
    let lefts: Vec<Vec<i64>> = drawn
        .iter()
        .map(|nodes| nodes.iter().map(|node| at[node].0).collect())
        .collect();
    let routes: Vec<(Node, Vec<(usize, i64)>)> = lines
        .iter()
        .map(|&(from, to)| (from, passes(at[&from], at[&to], layer_of(from), &lefts)))
        .collect();
    let lanes = lanes(&routes, |node| at[&node].0);
    let paths: Vec<String> = lines
        .iter()
        .zip(&routes)
        .map(|(&(from, to), (_, passed))| {
            let through: Vec<(usize, i64)> = passed
                .iter()
                .map(|&(layer, gap)| (layer, lanes[&(layer, gap, from)]))
                .collect();
            edge_path(at[&from], at[&to], &through)
        })
        .collect();
    let end = |node: Node| match node {
        Node::Step(v) => steps[v].job_id.to_string(),
        Node::More(l) => format!("more-{l}"),
    };
    let left_out = total - n;
    let collapsed: usize = hidden.values().sum();
    html! {
        @if left_out > 0 || collapsed > 0 || all_lines > lines.len() {
            p.muted #graph-note {
                @if left_out > 0 {
                    "The graph shows the first " (n) " of " (total) " steps (a step's parents come before it, so each drawn step's parents are drawn). "
                }
                @if collapsed > 0 {
                    "Layers wider than " (LAYER_WIDTH) " steps show their first " (LAYER_WIDTH - 1) " and a box counting the others (" (collapsed) " steps). "
                }
                @if all_lines > lines.len() {
                    "It draws " (lines.len()) " of " (all_lines) " edges, those between adjacent layers first. "
                }
                "The table below lists every step."
            }
        }
        div.graph style="overflow: auto; max-width: 100%; border: 1px solid #ddd; background: #fff" {
            svg #workflow-graph xmlns="http://www.w3.org/2000/svg" width=(width) height=(height)
                viewBox=(format!("0 0 {width} {height}")) role="img"
                aria-label=(format!("workflow {}: {} steps", wf.workflow.id, total)) {
                defs {
                    marker #arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                        path d="M 0 0 L 10 5 L 0 10 z" fill="#888" {}
                    }
                }
                g.edges {
                    @for ((from, to), d) in lines.iter().zip(&paths) {
                        path.edge data-from=(end(*from)) data-to=(end(*to)) d=(d)
                            fill="none" stroke="#888" stroke-width="1.2" marker-end="url(#arrow)" {}
                    }
                }
                g.nodes {
                    @for (node, (x, y)) in &at {
                        @match node {
                            Node::Step(v) => {
                                @let s = &steps[*v];
                                @let (fill, stroke) = colours(s.state);
                                a.node href=(format!("/dashboard/jobs/{}", s.job_id)) data-job-id=(s.job_id)
                                    data-step=(label(&s.step, LISTED_NAME_CHARS)) data-state=(s.state.as_str()) data-layer=(layer[*v]) {
                                    title { (label(&s.step, LISTED_NAME_CHARS)) " (" (label(&s.kind, LISTED_NAME_CHARS)) "): job " (s.job_id) ", " (s.state.as_str()) }
                                    rect x=(x) y=(y) width=(NODE_W) height=(NODE_H) rx="6" fill=(fill) stroke=(stroke) stroke-width="1.5" {}
                                    // The lines are cut to fit (node_label), and clipped to the
                                    // box should a font draw them wider still.
                                    clipPath id=(format!("clip-{v}")) {
                                        rect x=(x + 8) y=(y) width=(NODE_W - 16) height=(NODE_H) {}
                                    }
                                    g clip-path=(format!("url(#clip-{v})")) {
                                        text x=(x + 8) y=(y + 16) font-size="12" fill="#222" { (node_label(&s.step)) }
                                        text x=(x + 8) y=(y + 32) font-size="11" fill="#555" { "#" (s.job_id) " · " (s.state.as_str()) }
                                    }
                                }
                            }
                            Node::More(l) => {
                                g.more data-layer=(l) data-hidden=(hidden[l]) {
                                    rect x=(x) y=(y) width=(NODE_W) height=(NODE_H) rx="6" fill="#fafafa" stroke="#aaa" stroke-dasharray="4 3" {}
                                    text x=(x + 8) y=(y + 24) font-size="12" fill="#555" { "+" (hidden[l]) " more steps (table)" }
                                }
                            }
                        }
                    }
                }
            }
        }
        ul.legend #legend style="list-style: none; padding: 0; display: flex; gap: 1rem; flex-wrap: wrap" {
            @for s in STATES {
                @let (fill, stroke) = colours(s);
                li data-state=(s.as_str()) {
                    span style=(format!("display: inline-block; width: 1em; height: 1em; vertical-align: middle; background: {fill}; border: 2px solid {stroke}; border-radius: 3px")) {}
                    " " (s.as_str())
                }
            }
        }
    }
}

/// The layers an edge from the box at `from` (in layer `from_layer`) down to the box at `to`
/// passes between them, each with the gap it takes there (`lefts`: each layer's boxes by left
/// edge): the gap nearest its straight line, so that it passes no box (until 7 Dec it was drawn
/// straight behind the boxes between, and read as an edge of one of them). A gap is given by
/// its centre's x.
fn passes(
    from: (i64, i64),
    to: (i64, i64),
    from_layer: usize,
    lefts: &[Vec<i64>],
) -> Vec<(usize, i64)> {
    let (x1, x2) = (from.0 + NODE_W / 2, to.0 + NODE_W / 2);
    let between = usize::try_from((to.1 - from.1 - NODE_H - GAP_Y) / (NODE_H + GAP_Y)).unwrap_or(0);
    (1..=between)
        .map(|k| {
            let row = &lefts[from_layer + k];
            let line = x1 + (x2 - x1) * k as i64 / (between as i64 + 1);
            let gaps = row
                .first()
                .map(|&x| x - GAP_X / 2)
                .into_iter()
                .chain(row.iter().map(|&x| x + NODE_W + GAP_X / 2));
            (
                from_layer + k,
                gaps.min_by_key(|g| (g - line).abs()).unwrap_or(line),
            )
        })
        .collect()
}

/// Where in a gap each edge goes down, by the gaps `passes` chose: the edges of one parent on
/// one line, those of different parents side by side, left to right as their parents are (until
/// a review of 7 Dec they shared one line and split below it, so a child read as another
/// parent's). Keyed by (layer, gap, parent); at most a gap's width less a margin apart.
fn lanes(
    routes: &[(Node, Vec<(usize, i64)>)],
    x_of: impl Fn(Node) -> i64,
) -> BTreeMap<(usize, i64, Node), i64> {
    let mut by_gap: BTreeMap<(usize, i64), BTreeSet<(i64, Node)>> = BTreeMap::new();
    for (from, passed) in routes {
        for &(layer, gap) in passed {
            by_gap
                .entry((layer, gap))
                .or_default()
                .insert((x_of(*from), *from));
        }
    }
    let mut lanes = BTreeMap::new();
    for ((layer, gap), parents) in by_gap {
        let n = parents.len() as i64;
        // 4 px apart, closer when many; never nearer a box than 2 px.
        let room = GAP_X / 2 - 2;
        let step = (2 * room / n.max(1)).clamp(0, 4);
        for (i, (_, parent)) in parents.into_iter().enumerate() {
            let offset = (2 * i as i64 - (n - 1)) * step / 2;
            lanes.insert((layer, gap, parent), gap + offset.clamp(-room, room));
        }
    }
    lanes
}

/// The SVG path of an edge from the box at `from` down to the box at `to`, going down each
/// layer between at the x given (`through`: layer, x).
fn edge_path(from: (i64, i64), to: (i64, i64), through: &[(usize, i64)]) -> String {
    let (x1, y1) = (from.0 + NODE_W / 2, from.1 + NODE_H);
    let (x2, y2) = (to.0 + NODE_W / 2, to.1);
    let mut d = format!("M {x1} {y1}");
    // A curve leaving and entering upright, within the empty band between two layers.
    let bend = |d: &mut String, (xa, ya): (i64, i64), (xb, yb): (i64, i64)| {
        let mid = (ya + yb) / 2;
        d.push_str(&format!(" C {xa} {mid} {xb} {mid} {xb} {yb}"));
    };
    let mut at = (x1, y1);
    for &(layer, x) in through {
        let top = MARGIN + layer as i64 * (NODE_H + GAP_Y);
        bend(&mut d, at, (x, top));
        d.push_str(&format!(" L {x} {}", top + NODE_H));
        at = (x, top + NODE_H);
    }
    bend(&mut d, at, (x2, y2));
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::WorkflowRow;

    fn step(name: &str, id: i64, state: JobState, after: &[(&str, i64)]) -> WorkflowStep {
        WorkflowStep {
            step: name.to_string(),
            job_id: id,
            kind: "noop".to_string(),
            state,
            attempt: 0,
            attempted_at: None,
            finalized_at: None,
            after: after.iter().map(|(s, _)| s.to_string()).collect(),
            after_ids: after.iter().map(|(_, id)| *id).collect(),
            parents_total: None,
        }
    }

    fn detail(steps: Vec<WorkflowStep>) -> WorkflowDetail {
        WorkflowDetail {
            workflow: WorkflowRow {
                id: 1,
                name: "w".to_string(),
                created_at: chrono::Utc::now(),
                total: steps.len() as i64,
                counts: BTreeMap::new(),
            },
            steps,
            next_after_id: None,
        }
    }

    #[test]
    fn labels_lose_control_characters_and_length() {
        assert_eq!(label("a\u{1}b\nc", 10), "a\u{fffd}b\u{fffd}c");
        assert_eq!(
            label("\u{202e}evil.exe\u{202c}", 20),
            "\u{fffd}evil.exe\u{fffd}"
        );
        assert_eq!(
            label("x\u{2066}y\u{1b}\u{9b}", 20),
            "x\u{fffd}y\u{fffd}\u{fffd}"
        );
        assert_eq!(label("abcdef", 3), "abc…");
        // Nor the two characters XML 1.0 leaves out that are not control characters (found
        // by review: a step named so made the page's SVG not well-formed).
        assert_eq!(label("a\u{fffe}b\u{ffff}", 10), "a\u{fffd}b\u{fffd}");
        assert_eq!(
            label("\u{200e}\u{200f}\u{61c}", 10),
            "\u{fffd}\u{fffd}\u{fffd}"
        );
    }

    #[test]
    fn a_huge_fan_out_draws_a_bounded_graph() {
        let mut steps = vec![step("root", 1, JobState::Completed, &[])];
        for i in 0..10_000 {
            steps.push(step(
                &format!("child-{i}"),
                i + 2,
                JobState::Available,
                &[("root", 1)],
            ));
        }
        let html = draw(&detail(steps)).into_string();
        assert_eq!(html.matches("<a class=\"node\"").count(), LAYER_WIDTH);
        assert!(html.contains(&format!("data-hidden=\"{}\"", DRAWN_STEPS - LAYER_WIDTH)));
        assert!(html.contains("first 200 of 10001 steps"), "{html}");
        assert!(html.len() < 100_000, "{} bytes", html.len());
    }

    /// The boxes drawn (`rect` of each node: x, y, and its job id) and the edges' paths
    /// (`data-from`, `data-to`, `d`) of a drawing.
    type Boxes = Vec<(f64, f64, String)>;
    type Paths = Vec<(String, String, String)>;

    fn drawn(html: &str) -> (Boxes, Paths) {
        let attr = |tag: &str, name: &str| -> String {
            let start = tag.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
            tag[start..].split('"').next().unwrap().to_string()
        };
        let boxes = html
            .split("<a class=\"node\"")
            .skip(1)
            .map(|node| {
                let rect = node.split("<rect").nth(1).unwrap();
                let num = |name| attr(rect, name).parse::<f64>().unwrap();
                (num("x"), num("y"), attr(node, "data-job-id"))
            })
            .collect();
        let paths = html
            .split("<path class=\"edge\"")
            .skip(1)
            .map(|tag| (attr(tag, "data-from"), attr(tag, "data-to"), attr(tag, "d")))
            .collect();
        (boxes, paths)
    }

    /// Points along a path of `M`, `L` and `C` commands (absolute, as `draw` writes them).
    fn along(d: &str) -> Vec<(f64, f64)> {
        let mut words = d.split_whitespace();
        let mut at = (0.0, 0.0);
        let mut points = Vec::new();
        let num = |words: &mut std::str::SplitWhitespace| -> f64 {
            words.next().unwrap().parse().unwrap()
        };
        while let Some(command) = words.next() {
            match command {
                "M" => at = (num(&mut words), num(&mut words)),
                "L" => {
                    let to = (num(&mut words), num(&mut words));
                    for i in 0..=50 {
                        let t = f64::from(i) / 50.0;
                        points.push((at.0 + (to.0 - at.0) * t, at.1 + (to.1 - at.1) * t));
                    }
                    at = to;
                }
                "C" => {
                    let c: Vec<f64> = (0..6).map(|_| num(&mut words)).collect();
                    for i in 0..=50 {
                        let t = f64::from(i) / 50.0;
                        let u = 1.0 - t;
                        let w = [u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t];
                        points.push((
                            w[0] * at.0 + w[1] * c[0] + w[2] * c[2] + w[3] * c[4],
                            w[0] * at.1 + w[1] * c[1] + w[2] * c[3] + w[3] * c[5],
                        ));
                    }
                    at = (c[4], c[5]);
                }
                other => panic!("command {other} in {d}"),
            }
        }
        points
    }

    #[test]
    fn an_edge_that_skips_layers_goes_around_the_steps_between() {
        // Until 7 Dec an edge from a layer to one further down was drawn straight through
        // the boxes between, so it read as an edge of the step it passed behind: here a -> d
        // through b (and c), and a -> e through b, c and d.
        let steps = vec![
            step("a", 1, JobState::Completed, &[]),
            step("b", 2, JobState::Completed, &[("a", 1)]),
            step("c", 3, JobState::Running, &[("b", 2)]),
            step("d", 4, JobState::Pending, &[("c", 3), ("a", 1)]),
            step("e", 5, JobState::Pending, &[("d", 4), ("a", 1), ("b", 2)]),
            step("f", 6, JobState::Available, &[]),
            step("g", 7, JobState::Pending, &[("f", 6), ("b", 2)]),
            step("h", 8, JobState::Pending, &[("g", 7), ("a", 1)]),
        ];
        let html = draw(&detail(steps)).into_string();
        let (boxes, paths) = drawn(&html);
        assert_eq!(boxes.len(), 8);
        assert_eq!(paths.len(), 11, "{html}");
        for (from, to, d) in &paths {
            for (x, y) in along(d) {
                for (bx, by, id) in &boxes {
                    let inside = x > *bx + 0.5
                        && x < *bx + NODE_W as f64 - 0.5
                        && y > *by + 0.5
                        && y < *by + NODE_H as f64 - 0.5;
                    assert!(
                        !inside || id == from || id == to,
                        "edge {from} -> {to} passes through step {id}'s box at ({x:.0}, {y:.0}): {d}"
                    );
                }
            }
        }
    }

    /// The upright stretches of a path (`L` after a point straight above): x, from y, to y.
    fn uprights(d: &str) -> Vec<(i64, i64, i64)> {
        let words: Vec<&str> = d.split_whitespace().collect();
        let mut out = Vec::new();
        for (i, w) in words.iter().enumerate() {
            if *w == "L" {
                let (x0, y0): (i64, i64) =
                    (words[i - 2].parse().unwrap(), words[i - 1].parse().unwrap());
                let (x1, y1): (i64, i64) =
                    (words[i + 1].parse().unwrap(), words[i + 2].parse().unwrap());
                assert_eq!(x0, x1, "{d}");
                out.push((x0, y0, y1));
            }
        }
        out
    }

    #[test]
    fn edges_of_different_parents_do_not_share_a_gap_line() {
        // From a review of 7 Dec: 1 -> 24 and 25 -> 26 went down one gap on one line, and split
        // below it, so 26 read as a child of 1. Here a, x and y each have an edge through the
        // gap beside b (to c, z and w).
        let steps = vec![
            step("a", 1, JobState::Completed, &[]),
            step("x", 2, JobState::Completed, &[]),
            step("y", 3, JobState::Completed, &[]),
            step("b", 4, JobState::Completed, &[("a", 1)]),
            step("c", 5, JobState::Pending, &[("b", 4), ("a", 1)]),
            step("z", 6, JobState::Pending, &[("b", 4), ("x", 2)]),
            step("w", 7, JobState::Pending, &[("b", 4), ("y", 3)]),
        ];
        let html = draw(&detail(steps)).into_string();
        let (boxes, paths) = drawn(&html);
        assert_eq!(boxes.len(), 7);
        let skipping: Vec<_> = paths.iter().filter(|(_, _, d)| d.contains(" L ")).collect();
        assert_eq!(skipping.len(), 3, "{html}");
        for (i, (from, to, d)) in skipping.iter().enumerate() {
            for (other_from, other_to, other) in &skipping[i + 1..] {
                if from == other_from {
                    continue;
                }
                for (x, y0, y1) in uprights(d) {
                    for (ox, oy0, oy1) in uprights(other) {
                        assert!(
                            x != ox || y1 <= oy0 || oy1 <= y0,
                            "{from} -> {to} and {other_from} -> {other_to} share x = {x}: {d} / {other}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn each_node_clips_to_its_own_box_even_when_two_steps_name_one_job() {
        // Only hand-written rows can list one job as two steps; the clips are the nodes' own.
        let steps = vec![
            step("a", 5, JobState::Completed, &[]),
            step("b", 5, JobState::Completed, &[]),
        ];
        let html = draw(&detail(steps)).into_string();
        for v in 0..2 {
            assert_eq!(
                html.matches(&format!(r#"id="clip-{v}""#)).count(),
                1,
                "{html}"
            );
            assert_eq!(
                html.matches(&format!("url(#clip-{v})")).count(),
                1,
                "{html}"
            );
        }
    }

    #[test]
    fn an_outside_parent_is_not_drawn() {
        let steps = vec![
            step("a", 5, JobState::Completed, &[("job 3", 3)]),
            step("b", 6, JobState::Pending, &[("a", 5)]),
        ];
        assert_eq!(step_edges(&steps, 2), vec![(0, 1)]);
    }

    #[test]
    fn a_step_named_like_an_outside_job_is_not_drawn_as_its_parent() {
        // Step "job 3" (job 5) beside step "b" (job 6), which waits for job 3 outside the
        // workflow: both read "job 3" in `after`, and only the ids tell them apart.
        let parts = crate::store::WorkflowParts {
            row: WorkflowRow {
                id: 1,
                name: "w".to_string(),
                created_at: chrono::Utc::now(),
                total: 0,
                counts: BTreeMap::new(),
            },
            jobs: [(5, "job 3"), (6, "b")]
                .into_iter()
                .map(|(id, name)| crate::store::workflow::WorkflowJobRow {
                    id,
                    step: name.to_string(),
                    kind: "noop".to_string(),
                    state: JobState::Pending,
                    attempt: 0,
                    attempted_at: None,
                    finalized_at: None,
                })
                .collect(),
            counts: vec![(JobState::Pending, 2)],
            edges: vec![(6, 3, None)],
            parents_total: BTreeMap::new(),
        };
        let detail = parts.detail();
        assert_eq!(detail.steps[1].after, vec!["job 3".to_string()]);
        assert_eq!(step_edges(&detail.steps, 2), vec![]);
    }
}
