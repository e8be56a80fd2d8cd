//! Docker's Go templates (`--format`, the log `tag` option): gtmpl with the functions
//! Docker adds (json, join, lower, upper), and JSON values as template data.

use std::collections::HashMap;

use gtmpl::{Context, FuncError, Template, Value};
use serde_json::Value as Json;

/// An empty template with Docker's functions.
pub fn new() -> Template {
    let mut template = Template::default();
    template.add_func("json", json_func);
    template.add_func("join", join_func);
    template.add_func("lower", lower_func);
    template.add_func("upper", upper_func);
    template
}

/// Parses and renders `text` over `data` in one go.
pub fn render(text: &str, data: &Json) -> Result<String, String> {
    let mut t = new();
    t.parse(text).map_err(|e| e.to_string())?;
    t.render(&Context::from(to_value(data)))
        .map_err(|e| e.to_string())
}

/// Converts JSON into a template value (objects become maps keyed like Docker's fields).
pub fn to_value(j: &Json) -> Value {
    match j {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(u)) => Value::from(u),
            _ => Value::from(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => Value::String(s.clone()),
        Json::Array(a) => Value::Array(a.iter().map(to_value).collect()),
        Json::Object(o) => Value::Map(
            o.iter()
                .map(|(k, v)| (k.clone(), to_value(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

fn to_json(v: &Value) -> Json {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Json::from(i)
            } else if let Some(u) = n.as_u64() {
                Json::from(u)
            } else {
                serde_json::Number::from_f64(n.as_f64().unwrap_or(0.0))
                    .map(Json::Number)
                    .unwrap_or(Json::Null)
            }
        }
        Value::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Value::Object(m) | Value::Map(m) => {
            let sorted: std::collections::BTreeMap<_, _> =
                m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect();
            Json::Object(sorted.into_iter().collect())
        }
    }
}

fn json_func(args: &[Value]) -> Result<Value, FuncError> {
    let v = args.first().map(to_json).unwrap_or(Json::Null);
    Ok(Value::String(v.to_string()))
}

fn join_func(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [Value::Array(items), Value::String(sep)] => Ok(Value::String(
            items
                .iter()
                .map(|i| match i {
                    Value::String(s) => s.clone(),
                    other => to_json(other).to_string(),
                })
                .collect::<Vec<_>>()
                .join(sep),
        )),
        _ => Err(FuncError::Generic(
            "join takes a list and a separator".into(),
        )),
    }
}

fn string_func(args: &[Value], f: fn(&str) -> String) -> Result<Value, FuncError> {
    match args.first() {
        Some(Value::String(s)) => Ok(Value::String(f(s))),
        _ => Err(FuncError::Generic("expected a string".into())),
    }
}

fn lower_func(args: &[Value]) -> Result<Value, FuncError> {
    string_func(args, str::to_lowercase)
}

fn upper_func(args: &[Value]) -> Result<Value, FuncError> {
    string_func(args, str::to_uppercase)
}
