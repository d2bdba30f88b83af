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

/// Runs `program` on `input` with `args` bound as `$name` variables.
pub fn run(program: &str, args: &[(String, Value)], input: &Value) -> Result<Value, JqError> {
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
    let var_names: Vec<String> = args.iter().map(|(k, _)| format!("${k}")).collect();
    let filter = Compiler::default()
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
        })?;

    let vals: Vec<Val> = args
        .iter()
        .map(|(_, v)| to_val(v))
        .collect::<Result<_, _>>()?;
    let ctx = Ctx::<data::JustLut<Val>>::new(&filter.lut, Vars::new(vals));
    let mut first = None;
    let mut count = 0;
    // Count extra outputs (up to a bound) so the error says how many there were.
    for out in filter
        .id
        .run((ctx, to_val(input)?))
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
    let text = first.to_string();
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| JqError::Runtime(format!("the result is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(JqError::NotObject(super::validate::snippet(&value)));
    }
    Ok(value)
}

fn to_val(v: &Value) -> Result<Val, JqError> {
    Val::deserialize(v).map_err(|e| JqError::Runtime(format!("cannot convert input: {e}")))
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
