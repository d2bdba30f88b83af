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
    let var_names: Vec<String> = args.iter().map(|(k, _)| format!("${k}")).collect();
    let filter = compiled(program, var_names)?;
    let vals: Vec<Val> = args.iter().map(|(_, v)| to_val(v)).collect();
    let ctx = Ctx::<data::JustLut<Val>>::new(&filter.lut, Vars::new(vals));
    let mut first = None;
    let mut count = 0;
    // Count extra outputs (up to a bound) so the error says how many there were.
    for out in filter
        .id
        .run((ctx, to_val(input)))
        .map(unwrap_valr)
        .take(10_000)
    {
        let val = out.map_err(|e| JqError::Runtime(e.to_string()))?;
        count += 1;
        if first.is_none() {
            first = Some(val);
        }
    }
    let Some(first) = first.filter(|_| count == 1) else {
        return Err(JqError::Outputs(count));
    };
    let value = from_val(&first)?;
    if !value.is_object() {
        return Err(JqError::NotObject(super::validate::snippet(&value)));
    }
    Ok(value)
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
fn from_val(v: &Val) -> Result<Value, JqError> {
    Ok(match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(jaq_json::Num::Int(i)) => match i64::try_from(*i) {
            Ok(i) => Value::from(i),
            Err(_) => via_text(v)?,
        },
        Val::TStr(bytes) => match std::str::from_utf8(bytes) {
            Ok(s) => Value::String(s.to_owned()),
            Err(_) => via_text(v)?,
        },
        Val::Arr(items) => Value::Array(items.iter().map(from_val).collect::<Result<_, _>>()?),
        Val::Obj(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (key, field) in map.iter() {
                let Some(key) = utf8_key(key) else {
                    return via_text(v);
                };
                out.insert(key.to_owned(), from_val(field)?);
            }
            Value::Object(out)
        }
        _ => via_text(v)?,
    })
}

fn utf8_key(key: &Val) -> Option<&str> {
    match key {
        Val::TStr(bytes) => std::str::from_utf8(bytes).ok(),
        _ => None,
    }
}

fn via_text(v: &Val) -> Result<Value, JqError> {
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
