//! The embedded jq engine (jaq). Every backlog mutation is a jq program plus named arguments
//! run here: parse → compile → run, exactly one object out.
//!
//! All jaq code lives in this file because jaq's API moves between major versions. Functions
//! that would make a program's result depend on anything but its input and arguments (`now`,
//! `env`, `input`, ...) are left out, so replaying a journaled update gives the same bytes.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;
use serde::Deserialize;
use serde_json::Value;

/// Why a jq program could not produce a new backlog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JqError {
    #[error("jq program does not parse: {0}")]
    Syntax(String),
    #[error("jq program does not compile: {0}")]
    Compile(String),
    #[error("jq program failed: {0}")]
    Runtime(String),
    #[error("jq program must output exactly one value, it output {0}")]
    Outputs(usize),
    #[error("jq program must output a JSON object (the backlog), it output {0}")]
    NotObject(String),
}

/// Functions that read the world outside the input: not allowed in backlog updates.
const IMPURE: &[&str] = &[
    "now",
    "env",
    "input",
    "inputs",
    "input_filename",
    "get_search_list",
    "input_line_number",
];

/// A compiled program, as the jaq engine runs it.
type Compiled = jaq_core::Filter<data::JustLut<Val>>;

/// How many compiled programs a thread keeps. Looper's own changes are a handful of constant
/// programs, so compiling each once per process is what the cache is for; a `looper update`
/// stream of distinct programs just starts over when it fills up.
const CACHE_SIZE: usize = 64;

/// Compiled programs by program text and variable names.
type Cache = std::collections::HashMap<(String, Vec<String>), std::rc::Rc<Compiled>>;

thread_local! {
    static COMPILED: std::cell::RefCell<Cache> = std::cell::RefCell::default();
}

/// Runs `program` on `input` with `args` bound as `$name` variables.
pub fn run(program: &str, args: &[(String, Value)], input: &Value) -> Result<Value, JqError> {
    let out = run_val(program, args, to_val(input))?;
    let value = from_val(&out, &mut true)?;
    if !value.is_object() {
        return Err(JqError::NotObject(super::validate::snippet(&value)));
    }
    Ok(value)
}

/// jaq's form of a backlog document, kept beside the document (see [`super::doc::Doc`]) so
/// consecutive updates neither convert the whole document into jaq's values nor back.
#[derive(Debug, Clone)]
pub struct Shadow(Val);

impl Shadow {
    /// The shadow of `value`, converted in full.
    pub fn of(value: &Value) -> Self {
        Self(to_val(value))
    }
}

/// What a program made of a document ([`Output::patch`], [`Output::patch_tasks`]).
pub struct Update {
    /// The result, as a JSON object.
    pub value: Value,
    /// The result's shadow, when it stands exactly for `value` (it does unless a number or
    /// string had to be read back through JSON text).
    pub shadow: Option<Shadow>,
    /// The indices of the tasks the program changed, when it changed nothing else: the same
    /// keys, the same number of tasks, everything else untouched. `None` for any other change.
    pub changed: Option<Vec<usize>>,
    /// The tasks as they were before, at the indices in `changed`.
    pub before: Vec<Value>,
}

/// Runs `program` on a document whose shadow is known. `input` is the document itself, owned:
/// the parts the program left alone (jaq shares them, so they are found by pointer) are moved
/// into the result as they are, and only what changed is converted back. The store takes the
/// same two steps itself ([`run_shadow`], then one of the patches), so that it can hand the
/// document over only when it no longer needs it; this is their whole for the tests.
#[cfg(test)]
pub fn run_update(
    program: &str,
    args: &[(String, Value)],
    input: Value,
    shadow: &Shadow,
) -> Result<Update, JqError> {
    let out = run_shadow(program, args, shadow)?;
    match out.changed_tasks(shadow, &input) {
        Some(changed) => out.patch_tasks(input, changed),
        None => out.patch(input, shadow),
    }
}

/// A program's result on a document's shadow, not yet made into a JSON value.
pub struct Output(Val);

/// Runs `program` on the document `shadow` stands for; the result is an object.
pub fn run_shadow(
    program: &str,
    args: &[(String, Value)],
    shadow: &Shadow,
) -> Result<Output, JqError> {
    let out = run_val(program, args, shadow.0.clone())?;
    if !matches!(out, Val::Obj(_)) {
        let value = from_val(&out, &mut true)?;
        return Err(JqError::NotObject(super::validate::snippet(&value)));
    }
    Ok(Output(out))
}

impl Output {
    /// The indices of the tasks the program changed, when it changed nothing else (the same
    /// keys, the same number of tasks, everything else shared) and `input` is the document
    /// `shadow` stands for. Only then does [`Self::patch_tasks`] apply, so a caller that
    /// still needs `input` afterwards can tell before it hands `input` over.
    pub fn changed_tasks(&self, shadow: &Shadow, input: &Value) -> Option<Vec<usize>> {
        let (Val::Obj(o), Val::Obj(n), Value::Object(map)) = (&shadow.0, &self.0, input) else {
            return None;
        };
        if jaq_json::Rc::ptr_eq(o, n) {
            return Some(Vec::new());
        }
        let same_keys = o.len() == n.len() && map.len() == o.len() && o.keys().eq(n.keys());
        if !same_keys {
            return None;
        }
        let mut indices = None;
        for ((key, nv), ov) in n.iter().zip(o.values()) {
            if same(ov, nv) {
                continue;
            }
            match (utf8_key(key), ov, nv, map.get("tasks")) {
                (Some("tasks"), Val::Arr(oa), Val::Arr(na), Some(Value::Array(items)))
                    if oa.len() == items.len() && na.len() == oa.len() =>
                {
                    indices = Some(
                        oa.iter()
                            .zip(na.iter())
                            .enumerate()
                            .filter(|(_, (ot, nt))| !same(ot, nt))
                            .map(|(i, _)| i)
                            .collect(),
                    );
                }
                _ => return None,
            }
        }
        Some(indices.unwrap_or_default())
    }

    /// The result made from `input` by replacing the tasks at `changed` (from
    /// [`Self::changed_tasks`] of the same shadow and `input`) with their new values.
    pub fn patch_tasks(self, mut input: Value, changed: Vec<usize>) -> Result<Update, JqError> {
        let mut exact = true;
        let mut before = Vec::with_capacity(changed.len());
        let new_tasks = match &self.0 {
            Val::Obj(n) => n.iter().find(|(k, _)| utf8_key(k) == Some("tasks")),
            _ => None,
        };
        if let (Some(Value::Array(items)), Some((_, Val::Arr(na)))) =
            (input.get_mut("tasks"), new_tasks)
        {
            for &i in &changed {
                before.push(std::mem::replace(
                    &mut items[i],
                    from_val(&na[i], &mut exact)?,
                ));
            }
        }
        debug_assert_eq!(before.len(), changed.len());
        Ok(Update {
            value: input,
            shadow: exact.then_some(Shadow(self.0)),
            changed: Some(changed),
            before,
        })
    }

    /// The result made from `input`, the document `shadow` stands for, whatever the program
    /// changed: what it left alone is moved over, the rest converted.
    pub fn patch(self, input: Value, shadow: &Shadow) -> Result<Update, JqError> {
        let mut exact = true;
        let (value, changed, before) = patch(input, &shadow.0, &self.0, &mut exact)?;
        Ok(Update {
            value,
            shadow: exact.then_some(Shadow(self.0)),
            changed,
            before,
        })
    }
}

/// The changed-task view of a patch: indices and the tasks they replaced.
type Patched = (Value, Option<Vec<usize>>, Vec<Value>);

/// `old` (whose jaq form is `old_val`) turned into `new_val`'s JSON value.
fn patch(
    mut old: Value,
    old_val: &Val,
    new_val: &Val,
    exact: &mut bool,
) -> Result<Patched, JqError> {
    let (Val::Obj(o), Val::Obj(n), Value::Object(map)) = (old_val, new_val, &mut old) else {
        return Ok((from_val(new_val, exact)?, None, Vec::new()));
    };
    if jaq_json::Rc::ptr_eq(o, n) {
        return Ok((old, Some(Vec::new()), Vec::new()));
    }
    let same_keys = o.len() == n.len() && map.len() == o.len() && o.keys().eq(n.keys());
    if !same_keys {
        return Ok((from_val(new_val, exact)?, None, Vec::new()));
    }
    // Indices of changed tasks; `other` when anything else changed (a key, added tasks).
    let mut indices = Vec::new();
    let mut other = false;
    let mut before = Vec::new();
    for ((key, nv), ov) in n.iter().zip(o.values()) {
        if same(ov, nv) {
            continue;
        }
        let Some(field) = utf8_key(key).and_then(|k| map.get_mut(k)) else {
            return Ok((from_val(new_val, exact)?, None, Vec::new()));
        };
        match (utf8_key(key), ov, nv, field) {
            (Some("tasks"), Val::Arr(oa), Val::Arr(na), Value::Array(items))
                if oa.len() == items.len() && na.len() >= oa.len() =>
            {
                for (i, (ot, nt)) in oa.iter().zip(na.iter()).enumerate() {
                    if !same(ot, nt) {
                        before.push(std::mem::replace(&mut items[i], from_val(nt, exact)?));
                        indices.push(i);
                    }
                }
                for nt in &na[oa.len()..] {
                    items.push(from_val(nt, exact)?);
                    other = true;
                }
            }
            (_, _, nv, field) => {
                *field = from_val(nv, exact)?;
                other = true;
            }
        }
    }
    if other {
        return Ok((old, None, Vec::new()));
    }
    Ok((old, Some(indices), before))
}

/// Whether two jaq values are known to be the same without looking inside: shared arrays and
/// objects by pointer, scalars of the same kind by value.
fn same(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Arr(x), Val::Arr(y)) => jaq_json::Rc::ptr_eq(x, y),
        (Val::Obj(x), Val::Obj(y)) => jaq_json::Rc::ptr_eq(x, y),
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Num(jaq_json::Num::Int(x)), Val::Num(jaq_json::Num::Int(y))) => x == y,
        (Val::TStr(x), Val::TStr(y)) => x == y,
        _ => false,
    }
}

/// Runs `program` on `input` and returns its one output.
fn run_val(program: &str, args: &[(String, Value)], input: Val) -> Result<Val, JqError> {
    let var_names: Vec<String> = args.iter().map(|(k, _)| format!("${k}")).collect();
    let filter = compiled(program, var_names)?;
    let vals: Vec<Val> = args.iter().map(|(_, v)| to_val(v)).collect();
    let ctx = Ctx::<data::JustLut<Val>>::new(&filter.lut, Vars::new(vals));
    let mut first = None;
    let mut count = 0;
    // Count extra outputs (up to a bound) so the error says how many there were.
    for out in filter.id.run((ctx, input)).map(unwrap_valr).take(10_000) {
        let val = out.map_err(|e| JqError::Runtime(e.to_string()))?;
        count += 1;
        if first.is_none() {
            first = Some(val);
        }
    }
    first.filter(|_| count == 1).ok_or(JqError::Outputs(count))
}

/// The compiled form of `program` with `var_names` bound, from the cache or compiled now.
fn compiled(program: &str, var_names: Vec<String>) -> Result<std::rc::Rc<Compiled>, JqError> {
    let key = (program.to_string(), var_names);
    if let Some(hit) = COMPILED.with_borrow(|cache| cache.get(&key).cloned()) {
        return Ok(hit);
    }
    let filter = std::rc::Rc::new(compile(program, &key.1)?);
    COMPILED.with_borrow_mut(|cache| {
        if cache.len() >= CACHE_SIZE {
            cache.clear();
        }
        cache.insert(key, std::rc::Rc::clone(&filter));
    });
    Ok(filter)
}

fn compile(program: &str, var_names: &[String]) -> Result<Compiled, JqError> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .filter(|(name, _, _)| !IMPURE.contains(name));
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let modules = loader
        .load(
            &arena,
            File {
                code: program,
                path: (),
            },
        )
        .map_err(|errs| JqError::Syntax(describe_load_errors(program, &errs)))?;
    Compiler::default()
        .with_funs(funs)
        .with_global_vars(var_names.iter().map(String::as_str))
        .compile(modules)
        .map_err(|errs| {
            let list: Vec<String> = errs
                .iter()
                .flat_map(|(_, es)| {
                    es.iter()
                        .map(|(name, u)| format!("undefined {} {name}", u.as_str()))
                })
                .collect();
            JqError::Compile(list.join("; "))
        })
}

/// A JSON value as jaq's value, walked directly (no text in between).
fn to_val(v: &Value) -> Val {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => match n.as_i64().and_then(|i| isize::try_from(i).ok()) {
            Some(i) => Val::Num(jaq_json::Num::Int(i)),
            // Large integers and floats: jaq's own reading keeps its number semantics.
            None => Val::deserialize(v).unwrap_or(Val::Null),
        },
        Value::String(s) => Val::utf8_str(s.clone().into_bytes()),
        Value::Array(items) => items.iter().map(to_val).collect(),
        Value::Object(map) => Val::obj(
            map.iter()
                .map(|(k, v)| (Val::utf8_str(k.clone().into_bytes()), to_val(v)))
                .collect(),
        ),
    }
}

/// jaq's value as a JSON value. Nulls, booleans, machine integers, UTF-8 strings, arrays and
/// objects with string keys are converted directly; anything else (floats, big or decimal
/// numbers, byte strings) goes through jaq's JSON text, so it reads exactly as jq prints it.
/// `exact` is cleared when a value went through text.
fn from_val(v: &Val, exact: &mut bool) -> Result<Value, JqError> {
    Ok(match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(jaq_json::Num::Int(i)) => match i64::try_from(*i) {
            Ok(i) => Value::from(i),
            Err(_) => via_text(v, exact)?,
        },
        Val::TStr(bytes) => match std::str::from_utf8(bytes) {
            Ok(s) => Value::String(s.to_owned()),
            Err(_) => via_text(v, exact)?,
        },
        Val::Arr(items) => Value::Array(
            items
                .iter()
                .map(|item| from_val(item, exact))
                .collect::<Result<_, _>>()?,
        ),
        Val::Obj(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (key, field) in map.iter() {
                let Some(key) = utf8_key(key) else {
                    return via_text(v, exact);
                };
                out.insert(key.to_owned(), from_val(field, exact)?);
            }
            Value::Object(out)
        }
        _ => via_text(v, exact)?,
    })
}

fn utf8_key(key: &Val) -> Option<&str> {
    match key {
        Val::TStr(bytes) => std::str::from_utf8(bytes).ok(),
        _ => None,
    }
}

fn via_text(v: &Val, exact: &mut bool) -> Result<Value, JqError> {
    *exact = false;
    serde_json::from_str(&v.to_string())
        .map_err(|e| JqError::Runtime(format!("the result is not JSON: {e}")))
}

fn describe_load_errors<P>(program: &str, errs: &jaq_core::load::Errors<&str, P>) -> String {
    use jaq_core::load::Error;
    let mut out = Vec::new();
    for (_, err) in errs {
        match err {
            Error::Io(items) => {
                out.extend(items.iter().map(|(path, msg)| format!("{path}: {msg}")));
            }
            Error::Lex(items) => out.extend(items.iter().map(|(expect, at)| {
                format!("expected {} at {}", expect.as_str(), position(program, at))
            })),
            Error::Parse(items) => out.extend(items.iter().map(|(expect, at)| {
                format!("expected {} at {}", expect.as_str(), position(program, at))
            })),
        }
    }
    out.join("; ")
}

/// "column N" (1-based) of `part` inside `whole`, plus the text found there.
fn position(whole: &str, part: &str) -> String {
    let span = jaq_core::load::span(whole, part);
    let found: String = part.chars().take(12).collect();
    if found.is_empty() {
        format!("end of program (column {})", span.start + 1)
    } else {
        format!("column {} (found \"{found}\")", span.start + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runs_with_args_and_keeps_key_order() {
        let input = json!({"z": 1, "a": {"y": 2, "b": 3}});
        let out = run(".a.c = $x | .z += 1", &[("x".into(), json!("v"))], &input).unwrap();
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"z":2,"a":{"y":2,"b":3,"c":"v"}}"#
        );
    }

    #[test]
    fn errors_are_described() {
        let input = json!({});
        assert!(matches!(run(".a |", &[], &input), Err(JqError::Syntax(_))));
        let e = run("$nope", &[], &input).unwrap_err();
        assert_eq!(e, JqError::Compile("undefined variable $nope".into()));
        assert_eq!(
            run(".[]", &[], &json!({"a": {}, "b": {}})).unwrap_err(),
            JqError::Outputs(2)
        );
        assert_eq!(run("empty", &[], &input).unwrap_err(), JqError::Outputs(0));
        assert!(matches!(run("1", &[], &input), Err(JqError::NotObject(_))));
        assert!(
            matches!(run("error(\"boom\")", &[], &input), Err(JqError::Runtime(m)) if m.contains("boom"))
        );
    }

    #[test]
    fn impure_functions_are_not_available() {
        assert!(matches!(
            run(".t = now", &[], &json!({})),
            Err(JqError::Compile(_))
        ));
        assert!(matches!(
            run(".e = env", &[], &json!({})),
            Err(JqError::Compile(_))
        ));
    }

    const STATUSES: [&str; 4] = ["todo", "doing", "blocked", "done"];

    /// Documents with a few tasks, some numbers that are not machine integers, some keys in
    /// odd places.
    fn arb_doc() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        (
            prop::collection::vec((1u8..5, any::<bool>(), 0usize..4), 0..6),
            any::<bool>(),
        )
            .prop_map(|(tasks, project)| {
                let tasks: Vec<Value> = tasks
                    .into_iter()
                    .enumerate()
                    .map(|(i, (p, float, s))| {
                        let mut t = json!({"id": format!("T{i}"), "title": format!("t{i}"), "priority": p,
                            "status": STATUSES[s]});
                        if float {
                            t["weight"] = json!(f64::from(p) / 4.0);
                        }
                        t
                    })
                    .collect();
                let mut doc = json!({"schema_version": 1, "tasks": tasks});
                if project {
                    doc["project"] = json!({"name": "p", "big": 18_446_744_073_709_551_615u64});
                }
                doc
            })
    }

    fn arb_change() -> impl proptest::strategy::Strategy<Value = (String, Vec<(String, Value)>)> {
        use proptest::prelude::*;
        let now = json!("2026-12-01T00:00:00Z");
        // `$at` is a hint that may be wrong: the programs must not depend on it.
        (0usize..12, 0usize..7, 0usize..8).prop_map(move |(kind, id, at)| {
            let id = json!(format!("T{id}"));
            let at = json!(at);
            let (program, args): (&str, Vec<(&str, Value)>) = match kind {
                0 => (
                    super::super::ops::SET_STATUS,
                    vec![
                        ("id", id),
                        ("at", at),
                        ("status", json!("doing")),
                        ("now", now.clone()),
                    ],
                ),
                1 => (
                    super::super::ops::COMPLETE,
                    vec![
                        ("id", id),
                        ("at", at),
                        ("note", json!("n")),
                        ("now", now.clone()),
                    ],
                ),
                2 => (
                    super::super::ops::ATTEMPT,
                    vec![
                        ("id", id),
                        ("note", json!("n")),
                        ("blocked", json!(false)),
                        ("blockers", json!([])),
                        ("limit", json!(3)),
                        ("now", now.clone()),
                    ],
                ),
                3 => (".", vec![]),
                4 => ("del(.tasks[0])", vec![]),
                5 => (
                    ".tasks += [{id: \"N\", title: \"n\", priority: 3, status: \"todo\"}]",
                    vec![],
                ),
                6 => (
                    ".schema_version = 1 | .source_files = [\"README.md\"]",
                    vec![],
                ),
                7 => (".tasks |= reverse", vec![]),
                8 => (
                    "if (.tasks | length) > 0 then .tasks[0].weight = 0.1 else . end",
                    vec![],
                ),
                9 => (".tasks |= map(.priority = .priority)", vec![]),
                10 => ("{tasks: .tasks, schema_version: .schema_version}", vec![]),
                _ => (".project.big += 1", vec![]),
            };
            (
                program.to_string(),
                args.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            )
        })
    }

    proptest::proptest! {
        /// A chain of updates through shadows gives the same documents as converting every
        /// time, and says exactly which tasks changed.
        #[test]
        fn shadowed_updates_match_full_conversion(
            doc in arb_doc(),
            changes in proptest::collection::vec(arb_change(), 1..5),
        ) {
            let mut full = doc.clone();
            let mut value = doc;
            let mut shadow = Shadow::of(&value);
            for (program, args) in &changes {
                let expected = run(program, args, &full);
                let got = run_update(program, args, value.clone(), &shadow);
                // Telling a tasks-only change apart first gives what patching in general gives.
                let general = run_shadow(program, args, &shadow).and_then(|out| out.patch(value.clone(), &shadow));
                if let (Ok(general), Ok(got)) = (&general, &got) {
                    proptest::prop_assert_eq!(&general.value, &got.value);
                    proptest::prop_assert_eq!(&general.changed, &got.changed);
                    proptest::prop_assert_eq!(&general.before, &got.before);
                    proptest::prop_assert_eq!(general.shadow.is_some(), got.shadow.is_some());
                }
                match (expected, got) {
                    (Err(e), Err(g)) => proptest::prop_assert_eq!(e, g),
                    (Ok(expected), Ok(got)) => {
                        proptest::prop_assert_eq!(&got.value, &expected);
                        if let Some(changed) = &got.changed {
                            let (old, new) = (value["tasks"].as_array().unwrap(), expected["tasks"].as_array().unwrap());
                            proptest::prop_assert_eq!(old.len(), new.len());
                            let really: Vec<usize> = (0..old.len()).filter(|&i| old[i] != new[i]).collect();
                            // Shared parts are unchanged; a rebuilt task may still be equal.
                            proptest::prop_assert!(really.iter().all(|i| changed.contains(i)));
                            let before: Vec<Value> = changed.iter().map(|&i| old[i].clone()).collect();
                            proptest::prop_assert_eq!(&got.before, &before);
                            let mut rest_old = value.clone();
                            let mut rest_new = expected.clone();
                            rest_old.as_object_mut().unwrap().remove("tasks");
                            rest_new.as_object_mut().unwrap().remove("tasks");
                            proptest::prop_assert_eq!(rest_old, rest_new);
                        }
                        if let Some(s) = &got.shadow {
                            proptest::prop_assert!(s.0 == Shadow::of(&expected).0);
                        }
                        shadow = got.shadow.unwrap_or_else(|| Shadow::of(&expected));
                        full = expected;
                        value = got.value;
                    }
                    (e, g) => proptest::prop_assert!(false, "full {e:?} but shadowed {:?}", g.map(|u| u.value)),
                }
            }
        }
    }

    #[test]
    fn std_functions_work() {
        let input = json!({"tasks": [{"id": "T2"}, {"id": "T10"}, {"id": "X"}]});
        let out = run(
            r#".n = ([.tasks[].id | select(test("^T[0-9]+$")) | .[1:] | tonumber] | max // 0)"#,
            &[],
            &input,
        )
        .unwrap();
        assert_eq!(out["n"], json!(10));
    }
}
