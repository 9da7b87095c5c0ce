//! Go `text/template` formatting for `ls --format` and `inspect --format`,
//! on the `gtmpl` crate, with the `json` and `prettyjson` functions the
//! original offered.

use gtmpl::{Context, Template, Value};
use std::collections::HashMap;

/// A parsed `--format` template.
pub struct GoTemplate {
    inner: Template,
}

impl std::fmt::Debug for GoTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoTemplate").finish_non_exhaustive()
    }
}

impl GoTemplate {
    /// Parse `text` as a Go template. Two things the template library cannot
    /// survive are refused up front: named templates (`define`, `template`,
    /// `block`: one that calls itself overflows the stack) and `printf` widths
    /// or precisions that are computed (`*`) or over [`MAX_WIDTH`].
    pub fn parse(text: &str) -> Result<Self, String> {
        check_limits(text)?;
        let mut inner = Template::default();
        inner.add_funcs(&[
            ("json", json as gtmpl::Func),
            ("prettyjson", prettyjson as gtmpl::Func),
        ]);
        // the library panics on some inputs the checks above do not foresee
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            inner
                .parse(text.to_string())
                .map_err(|e| format!("template parsing error: {e}"))
        }))
        .map_err(|_| "template parsing error: the template cannot be read".to_string())??;
        Ok(GoTemplate { inner })
    }

    /// Execute the template on `data`. A panic inside the template library
    /// becomes an error.
    pub fn render(&self, data: &Value) -> Result<String, String> {
        let ctx = Context::from(data.clone());
        let run = std::panic::AssertUnwindSafe(|| {
            self.inner.render(&ctx).map_err(|e| match e {
                gtmpl::error::ExecError::NoFiledFor(field, _) => {
                    format!("template: can't evaluate field {field}")
                }
                other => format!("template: {other}"),
            })
        });
        std::panic::catch_unwind(run).map_err(|_| "template: execution failed".to_string())?
    }
}

/// The widest `printf` field a template may ask for.
pub const MAX_WIDTH: u64 = 1000;

fn check_limits(text: &str) -> Result<(), String> {
    // an action left open at the end (`{{eq .`) sends the template library's
    // lexer into an endless loop
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let len = action_len(&rest[open + 2..])?;
        rest = &rest[open + 2 + len + 2..];
    }
    static NAMED: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    static VERB: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let named = NAMED.get_or_init(|| {
        regex::Regex::new(r"\{\{-?\s*(define|template|block)\b").expect("valid regex")
    });
    if let Some(m) = named.captures(text).and_then(|c| c.get(1)) {
        return Err(format!(
            "template: {{{{{}}}}} is not supported in --format",
            m.as_str()
        ));
    }
    let verb = VERB.get_or_init(|| {
        regex::Regex::new(r"%[-+# 0]*(\*|\d+)?(?:\.(\*|\d+))?").expect("valid regex")
    });
    for c in verb.captures_iter(text) {
        for part in [c.get(1), c.get(2)].into_iter().flatten() {
            let ok = part.as_str().parse::<u64>().is_ok_and(|n| n <= MAX_WIDTH);
            if !ok {
                return Err(format!(
                    "template: printf width or precision {:?} is not allowed (at most {MAX_WIDTH})",
                    part.as_str()
                ));
            }
        }
    }
    Ok(())
}

/// The length of the action that starts `text` (just after its `{{`), up to
/// its `}}` outside string literals. An action left open at the end (`{{eq .`,
/// or a string that swallows the `}}`) sends the template library's lexer
/// into an endless loop, and a non-ASCII character outside a string makes it
/// slice inside a character and panic (both found by fuzzing): refused.
fn action_len(text: &str) -> Result<usize, String> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '`' | '\'' => quote = Some(c),
            '}' if text[i..].starts_with("}}") => return Ok(i),
            c if !c.is_ascii() => {
                return Err(format!(
                    "template: {c:?} outside a string in an action is not supported"
                ))
            }
            _ => {}
        }
    }
    Err("template: unclosed action or string (\"{{\" without \"}}\")".into())
}

/// Split an `ls --format` value as the original did: the `table` prefix
/// (header row and column alignment) is removed, surrounding spaces are
/// trimmed, the two-character sequences `\t` and `\n` become a tab and a
/// newline, and a newline ends each row.
pub fn ls_format(format: &str) -> (String, bool) {
    let (rest, table) = match format.strip_prefix("table") {
        Some(r) => (r, true),
        None => (format, false),
    };
    let text = rest
        .trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n");
    (text + "\n", table)
}

/// A JSON value as template data: objects become maps (a missing key prints
/// `<no value>`, as with Go's `map[string]interface{}`).
pub fn from_json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or_default())
            }
        }
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(from_json).collect()),
        serde_json::Value::Object(o) => {
            Value::Map(o.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
        }
    }
}

/// A struct-like value: unknown fields are an error, as with a Go struct.
pub fn object(fields: Vec<(&str, Value)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<HashMap<_, _>>(),
    )
}

/// Template data back to JSON; map keys come out sorted, as Go's encoder writes them.
pub fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                serde_json::Value::from(i)
            } else if let Some(u) = n.as_u64() {
                serde_json::Value::from(u)
            } else {
                n.as_f64()
                    .map(serde_json::Value::from)
                    .unwrap_or(serde_json::Value::Null)
            }
        }
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Value::Object(m) | Value::Map(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), to_json(&m[k]));
            }
            serde_json::Value::Object(out)
        }
    }
}

fn one_arg(args: &[Value]) -> Result<&Value, gtmpl::FuncError> {
    match args {
        [v] => Ok(v),
        _ => Err(gtmpl::FuncError::ExactlyXArgs("json".into(), 1)),
    }
}

fn json(args: &[Value]) -> Result<Value, gtmpl::FuncError> {
    let v = to_json(one_arg(args)?);
    Ok(Value::String(go_json_compact(&v)))
}

fn prettyjson(args: &[Value]) -> Result<Value, gtmpl::FuncError> {
    let v = to_json(one_arg(args)?);
    let bytes = machine_core::config::to_go_json(&v).unwrap_or_default();
    Ok(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
}

/// `json.Marshal` output: compact, with `<`, `>`, `&`, U+2028 and U+2029
/// escaped (they can only occur inside strings).
pub fn go_json_compact(v: &serde_json::Value) -> String {
    let s = serde_json::to_string(v).unwrap_or_default();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// A duration in whole milliseconds as Go's `time.Duration` prints it
/// (`0s`, `12ms`, `1.5s`, `2m3.004s`).
pub fn go_duration_ms(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let total_s = ms / 1000;
    let frac = ms % 1000;
    let (h, m, s) = (total_s / 3600, (total_s / 60) % 60, total_s % 60);
    let mut secs = s.to_string();
    if frac != 0 {
        let f = format!("{frac:03}");
        secs.push('.');
        secs.push_str(f.trim_end_matches('0'));
    }
    if h > 0 {
        format!("{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{m}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_format_rules() {
        assert_eq!(
            ls_format("table {{.Name}}\\t{{.State}}"),
            ("{{.Name}}\t{{.State}}\n".into(), true)
        );
        assert_eq!(ls_format("{{.Name}}"), ("{{.Name}}\n".into(), false));
        assert_eq!(ls_format(" {{.Name}}\\n "), ("{{.Name}}\n\n".into(), false));
    }

    #[test]
    fn durations() {
        assert_eq!(go_duration_ms(0), "0s");
        assert_eq!(go_duration_ms(12), "12ms");
        assert_eq!(go_duration_ms(1500), "1.5s");
        assert_eq!(go_duration_ms(10_000), "10s");
        assert_eq!(go_duration_ms(123_004), "2m3.004s");
        assert_eq!(go_duration_ms(3_600_000), "1h0m0s");
    }

    #[test]
    fn templates_on_maps_and_objects() {
        let data = from_json(
            &serde_json::json!({"Name": "dev", "Driver": {"SSHPort": 22, "IPAddress": "10.0.0.1"}}),
        );
        let t =
            GoTemplate::parse("{{.Name}} {{.Driver.IPAddress}}:{{.Driver.SSHPort}} {{.Missing}}")
                .expect("parse");
        assert_eq!(
            t.render(&data).expect("render"),
            "dev 10.0.0.1:22 <no value>"
        );
        let t = GoTemplate::parse("{{json .Driver}}").expect("parse");
        assert_eq!(
            t.render(&data).expect("render"),
            r#"{"IPAddress":"10.0.0.1","SSHPort":22}"#
        );
        let o = object(vec![("Name", Value::from("x"))]);
        let t = GoTemplate::parse("{{.Nope}}").expect("parse");
        assert_eq!(
            t.render(&o).expect_err("struct field"),
            "template: can't evaluate field Nope"
        );
    }
}
