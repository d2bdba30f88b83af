//! Task selection (DESIGN §3), deterministic: the lowest-id `doing` task; else the
//! highest-priority `todo` task whose dependencies are all `done`; else a `blocked` task whose
//! `attempts` are below the retry limit (its dependencies done too). Ties break on priority,
//! then on the natural id order (`T2` < `T10`).

use std::cmp::Ordering;
use std::collections::HashMap;

use super::model::{Status, TaskView};

/// Natural order of ids: digit runs compare as numbers, the rest as text (`T2` < `T10`).
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let ord = na
                    .len()
                    .cmp(&nb.len())
                    .then_with(|| na.cmp(nb))
                    .then(da.cmp(&db));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let nz = digits
        .iter()
        .position(|&c| c != b'0')
        .unwrap_or(digits.len());
    &digits[nz..]
}

/// Why a task was selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It was `doing` (left by a crash or an earlier stop): resume it.
    Resume,
    /// The best `todo` task with its dependencies done.
    Next,
    /// A `blocked` task retried under the retry limit.
    Retry,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Resume => "resume",
            Reason::Next => "next",
            Reason::Retry => "retry",
        }
    }
}

/// Picks the next task to work on, or `None` when only review is left.
pub fn select<'a>(tasks: &[TaskView<'a>], retry_limit: u32) -> Option<(TaskView<'a>, Reason)> {
    // Only dependencies need the map (a thousand hashed ids per iteration otherwise).
    let done: HashMap<&str, bool> = if tasks.iter().any(|t| !t.depends_on.is_empty()) {
        tasks
            .iter()
            .map(|t| (t.id, t.status == Status::Done))
            .collect()
    } else {
        HashMap::new()
    };
    let deps_done = |t: &TaskView<'_>| {
        t.depends_on
            .iter()
            .all(|d| done.get(d).copied().unwrap_or(false))
    };
    let by_id = |a: &&TaskView<'a>, b: &&TaskView<'a>| natural_cmp(a.id, b.id);
    let by_priority = |a: &&TaskView<'a>, b: &&TaskView<'a>| {
        a.priority
            .cmp(&b.priority)
            .then_with(|| natural_cmp(a.id, b.id))
    };

    if let Some(t) = tasks
        .iter()
        .filter(|t| t.status == Status::Doing)
        .min_by(by_id)
    {
        return Some((t.clone(), Reason::Resume));
    }
    if let Some(t) = tasks
        .iter()
        .filter(|t| t.status == Status::Todo && deps_done(t))
        .min_by(by_priority)
    {
        return Some((t.clone(), Reason::Next));
    }
    tasks
        .iter()
        .filter(|t| t.status == Status::Blocked && t.attempts < retry_limit && deps_done(t))
        .min_by(by_priority)
        .map(|t| (t.clone(), Reason::Retry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    #[test]
    fn natural() {
        let mut ids = vec!["T10", "T2", "T1", "A", "T02", "T2a", "T2b", "t1", ""];
        ids.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            ids,
            vec!["", "A", "T1", "T2", "T2a", "T2b", "T02", "T10", "t1"]
        );
    }

    fn views(v: &Value) -> Vec<TaskView<'_>> {
        v.as_array()
            .unwrap()
            .iter()
            .enumerate()
            .filter_map(|(i, t)| TaskView::from_value(i, t))
            .collect()
    }

    fn task(id: &str, p: u8, status: &str, deps: &[&str], attempts: u32) -> Value {
        json!({"id": id, "title": id, "priority": p, "status": status, "depends_on": deps, "attempts": attempts})
    }

    #[test]
    fn doing_first_then_todo_then_blocked() {
        let t = json!([
            task("T10", 1, "doing", &[], 0),
            task("T2", 5, "doing", &[], 0),
            task("T1", 1, "todo", &[], 0)
        ]);
        let (s, r) = select(&views(&t), 3).unwrap();
        assert_eq!((s.id, r), ("T2", Reason::Resume));

        let t = json!([
            task("T1", 3, "todo", &[], 0),
            task("T2", 1, "todo", &["T3"], 0),
            task("T3", 2, "todo", &[], 0)
        ]);
        assert_eq!(select(&views(&t), 3).unwrap().0.id, "T3");

        let t = json!([
            task("T1", 1, "blocked", &[], 3),
            task("T2", 2, "blocked", &[], 1),
            task("T3", 1, "done", &[], 0)
        ]);
        let (s, r) = select(&views(&t), 3).unwrap();
        assert_eq!((s.id, r), ("T2", Reason::Retry));

        let t = json!([
            task("T1", 1, "blocked", &[], 3),
            task("T3", 1, "done", &[], 0)
        ]);
        assert!(select(&views(&t), 3).is_none());
    }

    /// A reference model written the slow, obvious way.
    fn model(tasks: &[(String, u8, Status, Vec<String>, u32)], limit: u32) -> Option<String> {
        let done = |id: &String| tasks.iter().any(|t| &t.0 == id && t.2 == Status::Done);
        let mut doing: Vec<_> = tasks.iter().filter(|t| t.2 == Status::Doing).collect();
        doing.sort_by(|a, b| natural_cmp(&a.0, &b.0));
        if let Some(t) = doing.first() {
            return Some(t.0.clone());
        }
        for status in [Status::Todo, Status::Blocked] {
            let mut c: Vec<_> = tasks
                .iter()
                .filter(|t| t.2 == status && t.3.iter().all(done))
                .filter(|t| status == Status::Todo || t.4 < limit)
                .collect();
            c.sort_by(|a, b| a.1.cmp(&b.1).then(natural_cmp(&a.0, &b.0)));
            if let Some(t) = c.first() {
                return Some(t.0.clone());
            }
        }
        None
    }

    proptest! {
        #[test]
        fn selection_matches_model(
            raw in prop::collection::vec((1u8..=5, 0usize..4, prop::collection::vec(0usize..12, 0..3), 0u32..5), 0..12),
            limit in 0u32..5,
        ) {
            let tasks: Vec<(String, u8, Status, Vec<String>, u32)> = raw
                .iter()
                .enumerate()
                .map(|(i, (p, s, deps, a))| {
                    let deps = deps.iter().filter(|d| **d < raw.len() && **d != i).map(|d| format!("T{}", d + 1)).collect();
                    (format!("T{}", i + 1), *p, Status::ALL[*s], deps, *a)
                })
                .collect();
            let json_tasks = Value::Array(tasks.iter().map(|t| {
                let deps: Vec<&str> = t.3.iter().map(String::as_str).collect();
                task(&t.0, t.1, t.2.as_str(), &deps, t.4)
            }).collect());
            let got = select(&views(&json_tasks), limit).map(|(t, _)| t.id.to_string());
            prop_assert_eq!(got, model(&tasks, limit));
        }

        #[test]
        fn natural_cmp_is_a_total_order(a in "[A-Z]{0,2}[0-9]{0,3}[a-z]{0,1}", b in "[A-Z]{0,2}[0-9]{0,3}[a-z]{0,1}", c in "[A-Z]{0,2}[0-9]{0,3}") {
            prop_assert_eq!(natural_cmp(&a, &b), natural_cmp(&b, &a).reverse());
            if natural_cmp(&a, &b) == Ordering::Less && natural_cmp(&b, &c) == Ordering::Less {
                prop_assert_eq!(natural_cmp(&a, &c), Ordering::Less);
            }
            prop_assert_eq!(natural_cmp(&a, &b) == Ordering::Equal, a == b);
        }
    }
}
