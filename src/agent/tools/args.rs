//! Reading a tool call's JSON arguments: strict about required fields and their types,
//! lenient about everything else (unknown fields are ignored, and numbers or booleans sent
//! as strings are accepted, since models do that), with messages that name the field and
//! what was expected so the model can correct its call.

use serde_json::{Map, Value};

/// The arguments of one call.
pub struct Args {
    fields: Map<String, Value>,
}

impl Args {
    /// Accepts an object, `null` (no arguments), or a string holding a JSON object (some
    /// models encode the arguments twice).
    pub fn parse(arguments: &Value) -> Result<Args, String> {
        match arguments {
            Value::Object(fields) => Ok(Args { fields: fields.clone() }),
            Value::Null => Ok(Args { fields: Map::new() }),
            Value::String(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(fields)) => Ok(Args { fields }),
                _ => Err(format!(
                    "arguments must be a JSON object, got a string that is not one: {}",
                    preview(text)
                )),
            },
            other => Err(format!("arguments must be a JSON object, got {}", kind(other))),
        }
    }

    fn present(&self, field: &str) -> Option<&Value> {
        self.fields.get(field).filter(|value| !value.is_null())
    }

    pub fn string(&self, field: &str) -> Result<String, String> {
        match self.present(field) {
            None => Err(format!("missing required field `{field}` (a string)")),
            Some(value) => as_string(field, value),
        }
    }

    pub fn opt_string(&self, field: &str) -> Result<Option<String>, String> {
        self.present(field).map(|value| as_string(field, value)).transpose()
    }

    pub fn opt_u64(&self, field: &str) -> Result<Option<u64>, String> {
        let Some(value) = self.present(field) else { return Ok(None) };
        let number = match value {
            Value::Number(n) => n
                .as_u64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64)),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        number
            .map(Some)
            .ok_or_else(|| format!("`{field}` must be a non-negative integer, got {}", kind(value)))
    }

    pub fn opt_bool(&self, field: &str) -> Result<Option<bool>, String> {
        let Some(value) = self.present(field) else { return Ok(None) };
        match value {
            Value::Bool(b) => Ok(Some(*b)),
            Value::String(s) if s == "true" => Ok(Some(true)),
            Value::String(s) if s == "false" => Ok(Some(false)),
            other => Err(format!("`{field}` must be true or false, got {}", kind(other))),
        }
    }
}

fn as_string(field: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        other => Err(format!("`{field}` must be a string, got {}", kind(other))),
    }
}

/// How a value is named in a message: its type, and a short preview of it.
fn kind(value: &Value) -> String {
    let name = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    format!("{name} ({})", preview(&value.to_string()))
}

fn preview(text: &str) -> String {
    let mut chars = text.chars();
    let short: String = chars.by_ref().take(60).collect();
    if chars.next().is_some() { format!("{short}…") } else { short }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_required_and_optional_fields() {
        let args =
            Args::parse(&json!({"path": "a.rs", "offset": 3, "flag": true, "extra": 1})).unwrap();
        assert_eq!(args.string("path").unwrap(), "a.rs");
        assert_eq!(args.opt_u64("offset").unwrap(), Some(3));
        assert_eq!(args.opt_u64("limit").unwrap(), None);
        assert_eq!(args.opt_bool("flag").unwrap(), Some(true));
        assert_eq!(args.opt_string("missing").unwrap(), None);
    }

    #[test]
    fn is_lenient_with_numbers_and_booleans_sent_as_strings_and_with_null() {
        let args = Args::parse(&json!({"offset": "12", "limit": 5.0, "all": "true", "path": null}))
            .unwrap();
        assert_eq!(args.opt_u64("offset").unwrap(), Some(12));
        assert_eq!(args.opt_u64("limit").unwrap(), Some(5));
        assert_eq!(args.opt_bool("all").unwrap(), Some(true));
        assert_eq!(args.opt_string("path").unwrap(), None);
    }

    #[test]
    fn accepts_arguments_encoded_twice() {
        let args = Args::parse(&json!("{\"path\": \"x\"}")).unwrap();
        assert_eq!(args.string("path").unwrap(), "x");
        assert!(Args::parse(&Value::Null).is_ok());
    }

    #[test]
    fn errors_name_the_field_and_what_was_expected() {
        let args = Args::parse(&json!({"path": 7, "offset": -1, "all": "yes"})).unwrap();
        assert_eq!(args.string("path").unwrap_err(), "`path` must be a string, got a number (7)");
        assert_eq!(
            args.string("content").unwrap_err(),
            "missing required field `content` (a string)"
        );
        assert!(args.opt_u64("offset").unwrap_err().contains("non-negative integer"));
        assert!(args.opt_bool("all").unwrap_err().contains("true or false"));
        let err = Args::parse(&json!([1, 2])).err().unwrap();
        assert_eq!(err, "arguments must be a JSON object, got an array ([1,2])");
        assert!(Args::parse(&json!("not json")).err().unwrap().contains("not one: not json"));
    }
}
