//! NUL characters in text inputs. PostgreSQL cannot store `\0` in text (error 22021), so
//! every text a client sends is checked for it before it reaches a statement: the HTTP layer
//! checks whole bodies and query strings (`http::input`), report intake each report on its own.

use std::fmt::Write as _;

use serde_json::Value;

/// Where a JSON value holds a string (or an object key) with a NUL: `note`, `location.crs`,
/// `items[2].description`. `None` when there is none.
pub fn nul_path(value: &Value) -> Option<String> {
    fn walk(value: &Value, path: &mut String) -> bool {
        match value {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().enumerate().any(|(i, v)| {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                let found = walk(v, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            Value::Object(map) => map.iter().any(|(k, v)| {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&k.replace('\0', "\\u0000"));
                let found = k.contains('\0') || walk(v, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = String::new();
    walk(value, &mut path).then(|| if path.is_empty() { "body".to_string() } else { path })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_path_names_the_field_that_holds_the_nul() {
        assert_eq!(nul_path(&json!({"a": 1, "note": "x\u{0}y"})).as_deref(), Some("note"));
        assert_eq!(nul_path(&json!({"location": {"crs": "wgs\u{0}"}})).as_deref(), Some("location.crs"));
        assert_eq!(nul_path(&json!({"items": [{}, {"d": "\u{0}"}]})).as_deref(), Some("items[1].d"));
        assert_eq!(nul_path(&json!("\u{0}")).as_deref(), Some("body"));
        assert_eq!(nul_path(&json!({"fine": "\\u0000 is text here"})), None);
    }
}
