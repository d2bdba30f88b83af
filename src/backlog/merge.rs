//! Diffs between two backlog documents by task id and field, and the merge of external edits.
//!
//! A [`Diff`] is exact: `apply(a, &diff(a, b))` reproduces `b` byte for byte (key order and
//! task order included), so the journal can store external edits compactly and `looper audit`
//! can replay them. It is also readable: removed tasks carry their full content (so they can
//! be restored), changed tasks list each field's before and after.
//!
//! The merge (DESIGN §4): Looper's update runs on the file as it is on disk; where an
//! external edit (base → disk) and Looper's update (disk → result) touch the same field of
//! the same task, the external edit wins. Before that, an external edit that would *complete*
//! work — a status set to `done`, or a project-done marker added — is refused for that field:
//! only Looper's corroboration, `looper done` and the review pass complete things.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::model::{PROJECT_DONE_TAG, has_tag};

/// A change to one field (of the document or of a task); `None` means absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// A task that appeared, with its position in the new document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddedTask {
    pub index: usize,
    pub task: Value,
}

/// The field changes of one task present on both sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskChange {
    pub id: String,
    pub fields: Vec<FieldChange>,
    /// The task's key order afterwards, when it is not the order the field changes imply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_order: Option<Vec<String>>,
}

/// The difference between two valid backlogs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diff {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<AddedTask>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<TaskChange>,
    /// The document's key order afterwards, when not implied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_order: Option<Vec<String>>,
    /// The task id order afterwards, when not implied by removals and insertions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_order: Option<Vec<String>>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        *self == Diff::default()
    }

    /// [`Diff::summary_lines`], each cut to `max` characters.
    pub fn summary_lines_cut(&self, max: usize) -> Vec<String> {
        self.summary_lines()
            .into_iter()
            .map(|line| crate::journal::human::one_line(&line, max))
            .collect()
    }

    /// One line per change, for people: `T3: status "todo" -> "doing"`.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.fields {
            out.push(format!("{}: {}", f.field, change_text(f)));
        }
        for a in &self.added {
            let title = a.task.get("title").and_then(Value::as_str).unwrap_or("");
            out.push(format!("{}: added \"{title}\"", task_id(&a.task)));
        }
        for r in &self.removed {
            let title = r.get("title").and_then(Value::as_str).unwrap_or("");
            out.push(format!("{}: removed \"{title}\"", task_id(r)));
        }
        for c in &self.changed {
            for f in &c.fields {
                out.push(format!("{}: {} {}", c.id, f.field, change_text(f)));
            }
            if c.fields.is_empty() && c.key_order.is_some() {
                out.push(format!("{}: fields reordered", c.id));
            }
        }
        if self.task_order.is_some() {
            out.push("tasks reordered".to_string());
        }
        out
    }
}

fn change_text(f: &FieldChange) -> String {
    let show = |v: &Option<Value>| {
        v.as_ref()
            .map_or("(absent)".to_string(), super::validate::snippet)
    };
    format!("{} -> {}", show(&f.before), show(&f.after))
}

fn task_id(task: &Value) -> &str {
    task.get("id").and_then(Value::as_str).unwrap_or("")
}

/// Whether `doc` has a task with `task`'s id.
fn has_id(doc: &Value, task: &Value) -> bool {
    tasks(doc).iter().any(|t| task_id(t) == task_id(task))
}

fn tasks(doc: &Value) -> &[Value] {
    doc.get("tasks")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn obj(v: &Value) -> Option<&Map<String, Value>> {
    v.as_object()
}

/// Field changes from `a` to `b` (two objects), in `b`'s key order then removals.
fn field_changes(a: &Map<String, Value>, b: &Map<String, Value>, skip: &str) -> Vec<FieldChange> {
    let mut out = Vec::new();
    for (k, vb) in b {
        if k == skip {
            continue;
        }
        if a.get(k) != Some(vb) {
            out.push(FieldChange {
                field: k.clone(),
                before: a.get(k).cloned(),
                after: Some(vb.clone()),
            });
        }
    }
    for (k, va) in a {
        if k != skip && !b.contains_key(k) {
            out.push(FieldChange {
                field: k.clone(),
                before: Some(va.clone()),
                after: None,
            });
        }
    }
    out
}

fn apply_fields(target: &mut Map<String, Value>, changes: &[FieldChange]) {
    for c in changes {
        match &c.after {
            Some(v) => {
                target.insert(c.field.clone(), v.clone());
            }
            None => {
                target.shift_remove(&c.field);
            }
        }
    }
}

fn reorder(target: &mut Map<String, Value>, order: &[String]) {
    let mut old = std::mem::take(target);
    for k in order {
        if let Some(v) = old.shift_remove(k) {
            target.insert(k.clone(), v);
        }
    }
    // Anything not named keeps its relative order at the end (never dropped).
    target.extend(old);
}

fn keys(m: &Map<String, Value>) -> Vec<String> {
    m.keys().cloned().collect()
}

/// The exact difference from `a` to `b` (both valid backlogs).
pub fn diff(a: &Value, b: &Value) -> Diff {
    let empty = Map::new();
    let (ma, mb) = (obj(a).unwrap_or(&empty), obj(b).unwrap_or(&empty));
    let mut d = Diff {
        fields: field_changes(ma, mb, "tasks"),
        ..Diff::default()
    };

    let (ta, tb) = (tasks(a), tasks(b));
    let a_ids: std::collections::HashMap<&str, &Value> =
        ta.iter().map(|t| (task_id(t), t)).collect();
    let b_ids: std::collections::HashSet<&str> = tb.iter().map(task_id).collect();
    d.removed = ta
        .iter()
        .filter(|t| !b_ids.contains(task_id(t)))
        .cloned()
        .collect();
    for (index, t) in tb.iter().enumerate() {
        match a_ids.get(task_id(t)) {
            None => d.added.push(AddedTask {
                index,
                task: t.clone(),
            }),
            // Most tasks are untouched: comparing costs no allocation, a field diff does.
            Some(old) if *old == t => {}
            Some(old) => {
                let (mo, mn) = (obj(old).unwrap_or(&empty), obj(t).unwrap_or(&empty));
                let fields = field_changes(mo, mn, "");
                let mut implied = mo.clone();
                apply_fields(&mut implied, &fields);
                let key_order = (keys(&implied) != keys(mn)).then(|| keys(mn));
                if !fields.is_empty() || key_order.is_some() {
                    d.changed.push(TaskChange {
                        id: task_id(t).to_string(),
                        fields,
                        key_order,
                    });
                }
            }
        }
    }
    // Would the implied result have the same task order and document key order? Work on ids
    // and keys only: cloning whole documents here would dominate every update.
    let removed: std::collections::HashSet<&str> = d.removed.iter().map(task_id).collect();
    let mut implied_ids: Vec<&str> = ta
        .iter()
        .map(task_id)
        .filter(|id| !removed.contains(id))
        .collect();
    for a in &d.added {
        let at = a.index.min(implied_ids.len());
        implied_ids.insert(at, task_id(&a.task));
    }
    let b_order: Vec<&str> = tb.iter().map(task_id).collect();
    if implied_ids != b_order {
        d.task_order = Some(b_order.iter().map(ToString::to_string).collect());
    }
    let mut implied_keys: Vec<&str> = ma
        .keys()
        .map(String::as_str)
        .filter(|k| mb.contains_key(*k) || *k == "tasks")
        .collect();
    for k in mb.keys() {
        if !ma.contains_key(k) && k != "tasks" {
            implied_keys.push(k);
        }
    }
    if !ma.contains_key("tasks") && !implied_keys.contains(&"tasks") && !tb.is_empty() {
        implied_keys.push("tasks");
    }
    if implied_keys
        .iter()
        .copied()
        .ne(mb.keys().map(String::as_str))
    {
        d.key_order = Some(keys(mb));
    }
    d
}

/// Applies everything but the explicit orders.
fn apply_unordered(a: &Value, d: &Diff) -> Value {
    let mut doc = obj(a).cloned().unwrap_or_default();
    apply_fields(&mut doc, &d.fields);
    let removed: std::collections::HashSet<&str> = d.removed.iter().map(task_id).collect();
    let mut list: Vec<Value> = tasks(a)
        .iter()
        .filter(|t| !removed.contains(task_id(t)))
        .cloned()
        .collect();
    let index: std::collections::HashMap<String, usize> = list
        .iter()
        .enumerate()
        .map(|(i, t)| (task_id(t).to_string(), i))
        .collect();
    for c in &d.changed {
        if let Some(&i) = index.get(&c.id)
            && let Some(m) = list[i].as_object_mut()
        {
            apply_fields(m, &c.fields);
            if let Some(order) = &c.key_order {
                reorder(m, order);
            }
        }
    }
    let mut added: Vec<&AddedTask> = d.added.iter().collect();
    added.sort_by_key(|a| a.index);
    for a in added {
        let at = a.index.min(list.len());
        list.insert(at, a.task.clone());
    }
    if doc.contains_key("tasks") || !list.is_empty() {
        doc.insert("tasks".into(), Value::Array(list));
    }
    Value::Object(doc)
}

/// Applies a diff made by [`diff`]: `apply(a, &diff(a, b)) == b`, byte for byte.
pub fn apply(a: &Value, d: &Diff) -> Value {
    let mut doc = apply_unordered(a, d);
    if let Some(m) = doc.as_object_mut() {
        if let Some(order) = &d.task_order
            && let Some(Value::Array(list)) = m.get_mut("tasks")
        {
            let mut pool: Vec<Option<Value>> = std::mem::take(list).into_iter().map(Some).collect();
            for id in order {
                if let Some(slot) = pool
                    .iter_mut()
                    .find(|s| s.as_ref().is_some_and(|t| task_id(t) == id))
                {
                    list.extend(slot.take());
                }
            }
            list.extend(pool.into_iter().flatten());
        }
        if let Some(order) = &d.key_order {
            reorder(m, order);
        }
    }
    doc
}

/// How big a diff is: one per field changed, task added or removed, order changed. Used to
/// find the version an external edit was made against (the one it differs least from).
pub fn weight(d: &Diff) -> usize {
    d.fields.len()
        + d.added.len()
        + d.removed.len()
        + d.changed
            .iter()
            .map(|c| c.fields.len().max(1))
            .sum::<usize>()
        + usize::from(d.task_order.is_some())
        + usize::from(d.key_order.is_some())
}

/// Whether an edit `d` of an older version into `disk` repeats what `latest` already has: a
/// task it adds or changes that `latest` holds exactly as `disk` does, or a task it removes
/// that `latest` no longer has. Someone who edited a copy of the older version would have had
/// to make, to the byte, a change Looper already took in or made (its timestamps included):
/// the copy edited was a later one. A task as one of the `remade` versions has it does not
/// count: a writer whose file Looper displaced may well make its edit again.
pub fn repeats(d: &Diff, disk: &Value, latest: &Value, remade: &[&Value]) -> bool {
    let in_latest = |id: &str| tasks(latest).iter().find(|t| task_id(t) == id);
    let remade_has = |task: &Value| {
        remade.iter().any(|v| {
            tasks(v)
                .iter()
                .any(|t| task_id(t) == task_id(task) && t == task)
        })
    };
    let added = d.added.iter().map(|a| &a.task);
    let changed = d
        .changed
        .iter()
        .filter_map(|c| tasks(disk).iter().find(|t| task_id(t) == c.id));
    added
        .chain(changed)
        .any(|task| in_latest(task_id(task)) == Some(task) && !remade_has(task))
        || d.removed
            .iter()
            .any(|t| in_latest(task_id(t)).is_none() && !remade.iter().any(|v| !has_id(v, t)))
}

/// Rebases an external edit made against an older version (`base` → `theirs`) onto
/// `latest`, a version Looper wrote after the editor read the file: the edit's document
/// fields, changed task fields, added and removed tasks are applied to `latest` by task id,
/// the edit winning where both changed a field. Looper's own changes since `base` are kept.
/// A task the edit added under an id that `latest` already has is the same task when the
/// titles match (the edit's fields win); otherwise it keeps its content under a fresh id
/// (`T7` → `T7-2`). Returns the result and the renames.
pub fn rebase(base: &Value, theirs: &Value, latest: &Value) -> (Value, Vec<(String, String)>) {
    let ext = diff(base, theirs);
    let mut out = latest.clone();
    let mut renamed = Vec::new();
    if let Some(m) = out.as_object_mut() {
        apply_fields(m, &ext.fields);
    }
    let their_tasks = tasks(theirs);
    let Some(list) = out.get_mut("tasks").and_then(Value::as_array_mut) else {
        return (out, renamed);
    };
    let removed: std::collections::HashSet<&str> = ext.removed.iter().map(task_id).collect();
    list.retain(|t| !removed.contains(task_id(t)));
    for c in &ext.changed {
        if let Some(m) = list
            .iter_mut()
            .find(|t| task_id(t) == c.id)
            .and_then(Value::as_object_mut)
        {
            apply_fields(m, &c.fields);
        }
    }
    for a in &ext.added {
        let mut task = a.task.clone();
        let id = task_id(&task).to_string();
        if let Some(existing) = list.iter_mut().find(|t| task_id(t) == id) {
            if *existing == task {
                continue;
            }
            // The same task (same title), which the editor's copy had in another state: its
            // fields win, Looper's other fields stay.
            if existing.get("title") == task.get("title") {
                if let (Some(m), Some(theirs)) = (existing.as_object_mut(), task.as_object()) {
                    m.extend(theirs.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                continue;
            }
            let taken = |c: &str| {
                list.iter().any(|t| task_id(t) == c) || their_tasks.iter().any(|t| task_id(t) == c)
            };
            // One of these is free: the two lists hold fewer ids than there are candidates.
            let fresh = (2..list.len() + their_tasks.len() + 3)
                .map(|n| format!("{id}-{n}"))
                .find(|c| !taken(c))
                .unwrap_or_default();
            if let Some(m) = task.as_object_mut() {
                m.insert("id".into(), Value::String(fresh.clone()));
            }
            renamed.push((id, fresh));
        }
        // After the task it follows in the edit, else at the end.
        let after = a
            .index
            .checked_sub(1)
            .and_then(|i| their_tasks.get(i))
            .map(task_id);
        let at = after
            .and_then(|p| list.iter().position(|t| task_id(t) == p))
            .map_or(list.len(), |i| i + 1);
        list.insert(at, task);
    }
    (out, renamed)
}

/// An external edit refused because only Looper may complete work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    pub id: String,
    pub field: String,
    /// What the external edit wanted.
    pub wanted: Value,
    /// What was kept instead (`None`: the task was dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<Value>,
    pub reason: String,
}

impl Refusal {
    /// Whether it drops a project-done marker added outside Looper, rather than undoing a
    /// task's `done`.
    pub fn drops_marker(&self) -> bool {
        self.field == "task"
    }
}

fn is_done(t: &Value) -> bool {
    t.get("status").and_then(Value::as_str) == Some("done")
}

/// Refuses the parts of an external edit (`base` → `disk`) that complete work: a status set
/// to `done` reverts to its previous value (`todo` for a new task); an added project-done
/// marker is dropped. Returns the accepted document and what was refused.
pub fn refuse_completion(base: &Value, disk: &Value) -> (Value, Vec<Refusal>) {
    let base_tasks: std::collections::HashMap<&str, &Value> =
        tasks(base).iter().map(|t| (task_id(t), t)).collect();
    let mut refusals = Vec::new();
    let mut out = disk.clone();
    let Some(list) = out.get_mut("tasks").and_then(Value::as_array_mut) else {
        return (out, refusals);
    };
    list.retain(|t| {
        let new_marker = is_done(t)
            && has_tag(t, PROJECT_DONE_TAG)
            && !base_tasks
                .get(task_id(t))
                .is_some_and(|b| is_done(b) && has_tag(b, PROJECT_DONE_TAG));
        if new_marker {
            refusals.push(Refusal {
                id: task_id(t).to_string(),
                field: "task".into(),
                wanted: t.clone(),
                kept: None,
                reason: "only the review pass may add the project-done marker".into(),
            });
        }
        !new_marker
    });
    for t in list.iter_mut() {
        let id = task_id(t).to_string();
        let before = base_tasks.get(id.as_str());
        let was_done = before.is_some_and(|b| is_done(b));
        if is_done(t) && !was_done {
            let kept = before
                .and_then(|b| b.get("status").cloned())
                .unwrap_or_else(|| Value::String("todo".into()));
            if let Some(m) = t.as_object_mut() {
                m.insert("status".into(), kept.clone());
            }
            refusals.push(Refusal {
                id,
                field: "status".into(),
                wanted: Value::String("done".into()),
                kept: Some(kept),
                reason: "a task becomes done only through Looper's checks or `looper done ID --reason TEXT`".into(),
            });
        }
    }
    (out, refusals)
}

/// A field both the external edit and Looper's update changed; the external edit won.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// Task id, or `None` for a document-level field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub field: String,
    /// The external edit's value (kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theirs: Option<Value>,
    /// Looper's value (dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ours: Option<Value>,
}

fn set_field(m: &mut Map<String, Value>, field: &str, v: Option<&Value>) {
    match v {
        Some(v) => {
            m.insert(field.to_string(), v.clone());
        }
        None => {
            m.shift_remove(field);
        }
    }
}

/// Resolves conflicts between an external edit (`base` → `theirs`) and Looper's update
/// (`theirs` → `result`): where both changed the same field of the same task (or the same
/// document field), `theirs` wins. A task the external edit changed and the update removed is
/// kept. Deterministic, so `looper audit` can replay it.
pub fn resolve_conflicts(base: &Value, theirs: &Value, result: &Value) -> (Value, Vec<Conflict>) {
    let ext = diff(base, theirs);
    let ours = diff(theirs, result);
    let mut out = result.clone();
    let mut conflicts = Vec::new();

    for f in &ours.fields {
        if ext.fields.iter().any(|e| e.field == f.field) {
            if let Some(m) = out.as_object_mut() {
                set_field(m, &f.field, f.before.as_ref());
            }
            conflicts.push(Conflict {
                id: None,
                field: f.field.clone(),
                theirs: f.before.clone(),
                ours: f.after.clone(),
            });
        }
    }
    for oc in &ours.changed {
        let Some(ec) = ext.changed.iter().find(|e| e.id == oc.id) else {
            continue;
        };
        for f in &oc.fields {
            if !ec.fields.iter().any(|e| e.field == f.field) {
                continue;
            }
            if let Some(t) = out
                .get_mut("tasks")
                .and_then(Value::as_array_mut)
                .and_then(|l| l.iter_mut().find(|t| task_id(t) == oc.id))
                .and_then(Value::as_object_mut)
            {
                set_field(t, &f.field, f.before.as_ref());
            }
            conflicts.push(Conflict {
                id: Some(oc.id.clone()),
                field: f.field.clone(),
                theirs: f.before.clone(),
                ours: f.after.clone(),
            });
        }
    }
    for removed in &ours.removed {
        let id = task_id(removed);
        if ext.changed.iter().any(|e| e.id == id)
            || ext.added.iter().any(|a| task_id(&a.task) == id)
        {
            let pos = tasks(theirs)
                .iter()
                .position(|t| task_id(t) == id)
                .unwrap_or(usize::MAX);
            if let Some(list) = out.get_mut("tasks").and_then(Value::as_array_mut) {
                list.insert(pos.min(list.len()), removed.clone());
            }
            conflicts.push(Conflict {
                id: Some(id.to_string()),
                field: "task".into(),
                theirs: Some(removed.clone()),
                ours: None,
            });
        }
    }
    (out, conflicts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backlog::format::to_pretty_string;
    use proptest::prelude::*;
    use serde_json::json;

    #[expect(
        clippy::needless_pass_by_value,
        reason = "reads best with json! literals"
    )]
    fn doc(tasks: Value) -> Value {
        json!({"schema_version": 1, "source_files": [], "tasks": tasks})
    }

    #[test]
    fn diff_apply_roundtrip_simple() {
        let a = doc(
            json!([{"id": "T1", "title": "a", "priority": 1, "status": "todo"},
                           {"id": "T2", "title": "b", "priority": 1, "status": "todo"}]),
        );
        let b = json!({"tasks": [{"status": "doing", "id": "T2", "title": "b", "priority": 2},
                                 {"id": "T3", "title": "c", "priority": 1, "status": "todo"}],
                      "source_files": ["x"], "schema_version": 1});
        let d = diff(&a, &b);
        assert_eq!(to_pretty_string(&apply(&a, &d)), to_pretty_string(&b));
        assert_eq!(d.removed.len(), 1);
        assert_eq!(d.added.len(), 1);
        let lines = d.summary_lines();
        assert!(
            lines.contains(&"T2: status \"todo\" -> \"doing\"".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"T1: removed \"a\"".to_string()),
            "{lines:?}"
        );
    }

    #[test]
    fn external_done_is_refused_and_marker_dropped() {
        let base = doc(json!([{"id": "T1", "title": "a", "priority": 1, "status": "todo"}]));
        let disk = doc(
            json!([{"id": "T1", "title": "a2", "priority": 1, "status": "done"},
                              {"id": "PROJECT-DONE", "title": "done", "priority": 5, "status": "done", "tags": ["project-done"]},
                              {"id": "T2", "title": "new", "priority": 1, "status": "done"}]),
        );
        let (kept, refusals) = refuse_completion(&base, &disk);
        assert_eq!(refusals.len(), 3);
        let expected = doc(
            json!([{"id": "T1", "title": "a2", "priority": 1, "status": "todo"},
                                  {"id": "T2", "title": "new", "priority": 1, "status": "todo"}]),
        );
        assert_eq!(to_pretty_string(&kept), to_pretty_string(&expected));
    }

    #[test]
    fn conflicting_field_external_wins() {
        let base = doc(json!([{"id": "T1", "title": "a", "priority": 1, "status": "todo"}]));
        let theirs = doc(json!([{"id": "T1", "title": "a", "priority": 1, "status": "blocked"}]));
        let result = doc(
            json!([{"id": "T1", "title": "a", "priority": 1, "status": "doing", "notes": ["n"]}]),
        );
        let (out, conflicts) = resolve_conflicts(&base, &theirs, &result);
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].field, "status");
        assert_eq!(out["tasks"][0]["status"], json!("blocked"));
        assert_eq!(out["tasks"][0]["notes"], json!(["n"]));
    }

    #[test]
    fn a_stale_edit_is_rebased_onto_loopers_later_version() {
        let base = doc(
            json!([{"id": "T1", "title": "a", "priority": 1, "status": "todo"},
                              {"id": "T2", "title": "b", "priority": 1, "status": "todo"}]),
        );
        // Looper, meanwhile: T1 doing with a note, T3 added.
        let latest = doc(
            json!([{"id": "T1", "title": "a", "priority": 1, "status": "doing", "notes": ["n"]},
                   {"id": "T2", "title": "b", "priority": 1, "status": "todo"},
                   {"id": "T3", "title": "c", "priority": 1, "status": "todo"}]),
        );
        // The editor, from `base`: T1 retitled, T2 deleted, its own T3 added.
        let theirs = doc(
            json!([{"id": "T1", "title": "a2", "priority": 1, "status": "todo"},
                                {"id": "T3", "title": "mine", "priority": 2, "status": "todo"}]),
        );
        let (out, renamed) = rebase(&base, &theirs, &latest);
        let expected = doc(
            json!([{"id": "T1", "title": "a2", "priority": 1, "status": "doing", "notes": ["n"]},
                   {"id": "T3-2", "title": "mine", "priority": 2, "status": "todo"},
                   {"id": "T3", "title": "c", "priority": 1, "status": "todo"}]),
        );
        assert_eq!(to_pretty_string(&out), to_pretty_string(&expected));
        assert_eq!(renamed, vec![("T3".to_string(), "T3-2".to_string())]);
        assert!(weight(&diff(&base, &theirs)) < weight(&diff(&latest, &theirs)));
    }

    /// An edit of an older version repeats `latest` when a task it adds or changes is in
    /// `latest` byte for byte, or a task it removes is gone from `latest`; not otherwise.
    #[test]
    fn an_edit_repeats_latest_only_by_whole_tasks() {
        let t = |id: &str, title: &str| json!({"id": id, "title": title, "priority": 1, "status": "todo"});
        let old = doc(json!([t("T1", "a"), t("T2", "b")]));
        let latest = doc(json!([t("T1", "a"), t("T2", "b"), t("H1", "h")]));
        let repeats_of = |disk: &Value| repeats(&diff(&old, disk), disk, &latest, &[]);
        assert!(repeats_of(&doc(json!([
            t("T1", "a"),
            t("T2", "b"),
            t("H1", "h")
        ]))));
        assert!(!repeats_of(&doc(json!([
            t("T1", "a"),
            t("T2", "b"),
            t("H1", "other")
        ]))));
        assert!(!repeats_of(&doc(json!([t("T1", "a"), t("T2", "b2")]))));
        assert!(
            !repeats_of(&doc(json!([t("T1", "a")]))),
            "T2 is still in latest"
        );
        let latest = doc(json!([t("T1", "a2"), t("H1", "h")]));
        let repeats_of = |disk: &Value| repeats(&diff(&old, disk), disk, &latest, &[]);
        assert!(
            repeats_of(&doc(json!([t("T1", "a2"), t("T2", "b")]))),
            "T1 as latest has it"
        );
        assert!(
            repeats_of(&doc(json!([t("T1", "a")]))),
            "T2 is gone from latest too"
        );
        assert!(!repeats_of(&doc(json!([t("T1", "a3"), t("T2", "b")]))));
        // What a file Looper's write displaced held may be an edit made again: not counted.
        let remade = doc(json!([t("T1", "a2")]));
        let again = |disk: &Value| repeats(&diff(&old, disk), disk, &latest, &[&remade]);
        assert!(!again(&doc(json!([t("T1", "a2"), t("T2", "b")]))));
        assert!(
            !again(&doc(json!([t("T1", "a")]))),
            "the displaced file lacks T2 too"
        );
        assert!(
            again(&doc(json!([t("H1", "h"), t("T1", "a")]))),
            "H1 as latest has it"
        );
    }

    fn arb_task() -> impl Strategy<Value = Value> {
        (
            0u8..6,
            "[a-z]{0,4}",
            1u8..=5,
            0usize..4,
            prop::option::of(prop::collection::vec("[a-z]{1,3}", 0..3)),
            any::<bool>(),
        )
            .prop_map(|(id, title, p, s, tags, extra_first)| {
                let mut m = Map::new();
                if extra_first {
                    m.insert("details".into(), json!(title.clone()));
                }
                m.insert("id".into(), json!(format!("T{id}")));
                m.insert("title".into(), json!(title));
                m.insert("priority".into(), json!(p));
                m.insert(
                    "status".into(),
                    json!(["todo", "doing", "blocked", "done"][s]),
                );
                if let Some(tags) = tags {
                    m.insert("tags".into(), json!(tags));
                }
                Value::Object(m)
            })
    }

    fn arb_doc() -> impl Strategy<Value = Value> {
        (
            prop::collection::vec(arb_task(), 0..6),
            any::<bool>(),
            prop::collection::vec("[a-z]{1,3}", 0..3),
        )
            .prop_map(|(tasks, project_first, files)| {
                let mut seen = std::collections::HashSet::new();
                let tasks: Vec<Value> = tasks
                    .into_iter()
                    .filter(|t| seen.insert(t["id"].to_string()))
                    .collect();
                let mut m = Map::new();
                if project_first {
                    m.insert("project".into(), json!({"name": "p"}));
                }
                m.insert("schema_version".into(), json!(1));
                m.insert("source_files".into(), json!(files));
                m.insert("tasks".into(), Value::Array(tasks));
                Value::Object(m)
            })
    }

    proptest! {
        #[test]
        fn apply_of_diff_is_exact(a in arb_doc(), b in arb_doc()) {
            let d = diff(&a, &b);
            prop_assert_eq!(to_pretty_string(&apply(&a, &d)), to_pretty_string(&b));
            // The diff survives a trip through the journal.
            let back: Diff = serde_json::from_value(serde_json::to_value(&d).unwrap()).unwrap();
            prop_assert_eq!(back, d);
        }

        #[test]
        fn no_conflict_means_untouched_result(a in arb_doc(), b in arb_doc()) {
            // With no external change, conflict resolution never alters Looper's result.
            let (out, conflicts) = resolve_conflicts(&a, &a, &b);
            prop_assert!(conflicts.is_empty());
            prop_assert_eq!(to_pretty_string(&out), to_pretty_string(&b));
        }
    }
}
