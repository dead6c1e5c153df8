//! Claude Code's and Gemini CLI's settings files: JSON, edited in place with the user's
//! key order and indentation kept, since these are files people write by hand.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use super::{Change, Found, Hook, InstallError, is_cairn_command};

/// A JSON value whose objects keep their keys in the order of the file.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    /// Keys in file order; a key written twice keeps its first place and its last value,
    /// as the agents' own parsers read it.
    Object(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(text) => Some(text),
            _ => None,
        }
    }

    fn object(entries: Vec<(&str, Json)>) -> Json {
        Json::Object(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    fn string(text: &str) -> Json {
        Json::String(text.to_string())
    }
}

/// The value at `key` of `entries`, `empty` put there (last) when missing.
fn entry<'a>(entries: &'a mut Vec<(String, Json)>, key: &str, empty: Json) -> &'a mut Json {
    let index = match entries.iter().position(|(k, _)| k == key) {
        Some(index) => index,
        None => {
            entries.push((key.to_string(), empty));
            entries.len() - 1
        }
    };
    &mut entries[index].1
}

/// The handlers (`hooks` of each matcher group) of `event`'s groups, with their commands.
fn handlers(groups: &[Json]) -> impl Iterator<Item = (usize, usize, Option<&str>)> {
    groups.iter().enumerate().flat_map(|(group_index, group)| {
        let list = match group.get("hooks") {
            Some(Json::Array(list)) => list.as_slice(),
            _ => &[],
        };
        list.iter().enumerate().map(move |(index, handler)| {
            (group_index, index, handler.get("command").and_then(Json::as_str))
        })
    })
}

/// The top-level object of a settings file; an absent or empty file is an empty one.
fn parse(text: Option<&str>) -> Result<Vec<(String, Json)>, InstallError> {
    let text = text.unwrap_or("");
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let root: Json = serde_json::from_str(text).map_err(|err| InstallError::Parse {
        reason: format!("{err} (cairn reads plain JSON, without comments)"),
    })?;
    match root {
        Json::Object(entries) => Ok(entries),
        _ => Err(InstallError::Shape { path: "the top level".into() }),
    }
}

/// The `hooks` object's entries (event → matcher groups), created when missing.
fn events_mut(root: &mut Vec<(String, Json)>) -> Result<&mut Vec<(String, Json)>, InstallError> {
    match entry(root, "hooks", Json::Object(Vec::new())) {
        Json::Object(events) => Ok(events),
        _ => Err(InstallError::Shape { path: "hooks".into() }),
    }
}

pub(super) fn find(text: &str, agent_name: &str) -> Result<Found, InstallError> {
    let root = Json::Object(parse(Some(text))?);
    let events = match root.get("hooks") {
        None => return Ok(Found::default()),
        Some(Json::Object(events)) => events,
        Some(_) => return Err(InstallError::Shape { path: "hooks".into() }),
    };
    let mut found = Found::default();
    for (event, groups) in events {
        let Json::Array(groups) = groups else { continue };
        for (group, index, command) in handlers(groups) {
            if command.is_some_and(|command| is_cairn_command(command, agent_name)) {
                found.add(event, group, index);
            }
        }
    }
    Ok(found)
}

/// One matcher group holding cairn's handler for `hook`.
fn group(hook: &Hook, command: &str) -> Json {
    let mut handler = Vec::new();
    if let Some(name) = hook.name {
        handler.push(("name", Json::string(name)));
    }
    handler.push(("type", Json::string("command")));
    handler.push(("command", Json::string(command)));
    let mut group = Vec::new();
    if let Some(matcher) = hook.matcher {
        group.push(("matcher", Json::string(matcher)));
    }
    group.push(("hooks", Json::Array(vec![Json::object(handler)])));
    Json::object(group)
}

/// `text` with cairn's handler added for each of `hooks` not `present` already.
pub(super) fn install(
    text: Option<&str>,
    hooks: &[Hook],
    present: &Found,
    command: &str,
) -> Result<Change, InstallError> {
    let mut root = parse(text)?;
    let mut added = Vec::new();
    for hook in hooks.iter().filter(|hook| !present.has(hook.event)) {
        let Json::Array(groups) =
            entry(events_mut(&mut root)?, hook.event, Json::Array(Vec::new()))
        else {
            return Err(InstallError::Shape { path: format!("hooks.{}", hook.event) });
        };
        groups.push(group(hook, command));
        added.push(hook.event);
    }
    Ok(Change { text: render(root, text)?, events: added })
}

pub(super) fn uninstall(text: &str, hooks: &[Hook], command: &str) -> Result<Change, InstallError> {
    let mut root = parse(Some(text))?;
    let mut removed = Vec::new();
    if let Some(index) = root.iter().position(|(k, _)| k == "hooks")
        && let Json::Object(all) = &mut root[index].1
    {
        for hook in hooks {
            let Some(slot) = all.iter().position(|(k, _)| k == hook.event) else { continue };
            let Json::Array(groups) = &mut all[slot].1 else { continue };
            if remove_command(groups, command) {
                removed.push(hook.event);
                if groups.is_empty() {
                    all.remove(slot);
                }
            }
        }
        if all.is_empty() && !removed.is_empty() {
            root.remove(index);
        }
    }
    Ok(Change { text: render(root, Some(text))?, events: removed })
}

/// Removes the handlers running exactly `command` from `groups`, and the groups they
/// leave empty; says whether it removed any.
fn remove_command(groups: &mut Vec<Json>, command: &str) -> bool {
    let mut removed = false;
    groups.retain_mut(|group| {
        let Json::Object(entries) = group else { return true };
        let Some((_, Json::Array(list))) = entries.iter_mut().find(|(k, _)| k == "hooks") else {
            return true;
        };
        let before = list.len();
        list.retain(|handler| handler.get("command").and_then(Json::as_str) != Some(command));
        if list.len() == before {
            return true;
        }
        removed = true;
        !list.is_empty()
    });
    removed
}

/// `root` as text, indented as `original` is (two spaces for a new file), ending in a
/// newline.
fn render(root: Vec<(String, Json)>, original: Option<&str>) -> Result<String, InstallError> {
    let indent = original.and_then(indentation).unwrap_or_else(|| "  ".to_string());
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    Json::Object(root)
        .serialize(&mut serializer)
        .map_err(|err| InstallError::Write { reason: err.to_string() })?;
    let mut text = String::from_utf8_lossy(&out).into_owned();
    text.push('\n');
    Ok(text)
}

/// The whitespace the first indented line of `text` starts with.
fn indentation(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let indent: String = line.chars().take_while(|c| *c == ' ' || *c == '\t').collect();
        (!indent.is_empty() && indent.len() < line.len()).then_some(indent)
    })
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(value) => serializer.serialize_bool(*value),
            Json::Number(number) => number.serialize(serializer),
            Json::String(text) => serializer.serialize_str(text),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Json, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(value)
            .map(Json::Number)
            .ok_or_else(|| E::custom("a number JSON cannot hold"))
    }

    fn visit_str<E>(self, value: &str) -> Result<Json, E> {
        Ok(Json::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Json, E> {
        Ok(Json::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries: Vec<(String, Json)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = value,
                None => entries.push((key, value)),
            }
        }
        Ok(Json::Object(entries))
    }
}
