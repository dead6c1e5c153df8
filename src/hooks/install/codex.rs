//! Codex's `config.toml`, edited with `toml_edit` so the user's comments, order and
//! layout stay as they were. Hooks are `[[hooks.<Event>]]` matcher groups, each with
//! `[[hooks.<Event>.hooks]]` handlers (or the same as inline arrays); `[hooks.state]` is
//! Codex's own record of the hooks the user reviewed.

use std::collections::BTreeSet;

use toml_edit::{ArrayOfTables, DocumentMut, InlineTable, Item, Table, TableLike, Value};

use super::{Change, Found, Hook, InstallError, is_cairn_command};

/// The key under `hooks` where Codex keeps its review state, not an event.
const STATE: &str = "state";

fn parse(text: Option<&str>) -> Result<DocumentMut, InstallError> {
    text.unwrap_or("")
        .parse::<DocumentMut>()
        .map_err(|err| InstallError::Parse { reason: one_line(&err.to_string()) })
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The tables of an array of tables or of an array of inline tables.
fn tables(item: &Item) -> Vec<&dyn TableLike> {
    match item {
        Item::ArrayOfTables(array) => array.iter().map(|t| t as &dyn TableLike).collect(),
        Item::Value(Value::Array(array)) => {
            array.iter().filter_map(Value::as_inline_table).map(|t| t as &dyn TableLike).collect()
        }
        _ => Vec::new(),
    }
}

pub(super) fn find(text: &str, agent_name: &str) -> Result<Found, InstallError> {
    let doc = parse(Some(text))?;
    let mut found = Found::default();
    let Some(hooks) = doc.get("hooks") else { return Ok(found) };
    let hooks = hooks.as_table_like().ok_or(InstallError::Shape { path: "hooks".into() })?;
    for (event, item) in hooks.iter().filter(|(event, _)| *event != STATE) {
        for (group, table) in tables(item).into_iter().enumerate() {
            let Some(handlers) = table.get("hooks") else { continue };
            for (index, handler) in tables(handlers).into_iter().enumerate() {
                let command = handler.get("command").and_then(Item::as_str);
                if command.is_some_and(|command| is_cairn_command(command, agent_name)) {
                    found.add(event, group, index);
                }
            }
        }
    }
    Ok(found)
}

/// A matcher group holding cairn's handler, as `[[hooks.<Event>]]` tables.
fn group_table(hook: &Hook, command: &str) -> Table {
    let mut handler = Table::new();
    handler.insert("type", toml_edit::value("command"));
    handler.insert("command", toml_edit::value(command));
    let mut handlers = ArrayOfTables::new();
    handlers.push(handler);
    let mut group = Table::new();
    if let Some(matcher) = hook.matcher {
        group.insert("matcher", toml_edit::value(matcher));
    }
    group.insert("hooks", Item::ArrayOfTables(handlers));
    group
}

/// The same group as an inline table, for a file that writes its hooks inline.
fn group_inline(hook: &Hook, command: &str) -> InlineTable {
    let mut handler = InlineTable::new();
    handler.insert("type", "command".into());
    handler.insert("command", command.into());
    let mut handlers = toml_edit::Array::new();
    handlers.push(handler);
    let mut group = InlineTable::new();
    if let Some(matcher) = hook.matcher {
        group.insert("matcher", matcher.into());
    }
    group.insert("hooks", Value::Array(handlers));
    group
}

/// A new `config.toml` holding just the hooks.
pub(super) fn snippet(hooks: &[Hook], command: &str) -> String {
    let mut all = Table::new();
    all.set_implicit(true);
    for hook in hooks {
        let mut groups = ArrayOfTables::new();
        groups.push(group_table(hook, command));
        all.insert(hook.event, Item::ArrayOfTables(groups));
    }
    let mut doc = DocumentMut::new();
    doc.insert("hooks", Item::Table(all));
    doc.to_string()
}

/// `text` with cairn's handler added for each of `hooks` not `present` already.
pub(super) fn install(
    text: Option<&str>,
    hooks: &[Hook],
    present: &Found,
    command: &str,
) -> Result<Change, InstallError> {
    let mut doc = parse(text)?;
    let mut added = Vec::new();
    for hook in hooks.iter().filter(|hook| !present.has(hook.event)) {
        let all = doc.entry("hooks").or_insert_with(|| {
            let mut table = Table::new();
            table.set_implicit(true);
            Item::Table(table)
        });
        let shape = || InstallError::Shape { path: format!("hooks.{}", hook.event) };
        match all {
            Item::Table(all) => match all.get_mut(hook.event) {
                None => {
                    let mut groups = ArrayOfTables::new();
                    groups.push(group_table(hook, command));
                    all.insert(hook.event, Item::ArrayOfTables(groups));
                }
                Some(Item::ArrayOfTables(groups)) => groups.push(group_table(hook, command)),
                Some(Item::Value(Value::Array(groups))) => {
                    groups.push(group_inline(hook, command));
                }
                Some(_) => return Err(shape()),
            },
            Item::Value(Value::InlineTable(all)) => match all.get_mut(hook.event) {
                None => {
                    let mut groups = toml_edit::Array::new();
                    groups.push(group_inline(hook, command));
                    all.insert(hook.event, Value::Array(groups));
                }
                Some(Value::Array(groups)) => groups.push(group_inline(hook, command)),
                Some(_) => return Err(shape()),
            },
            _ => return Err(InstallError::Shape { path: "hooks".into() }),
        }
        added.push(hook.event);
    }
    Ok(Change { text: doc.to_string(), events: added })
}

pub(super) fn uninstall(text: &str, hooks: &[Hook], command: &str) -> Result<Change, InstallError> {
    let mut doc = parse(Some(text))?;
    let mut removed = Vec::new();
    if let Some(all) = doc.get_mut("hooks").and_then(Item::as_table_like_mut) {
        for hook in hooks {
            let Some(groups) = all.get_mut(hook.event) else { continue };
            if remove_command(groups, command) {
                removed.push(hook.event);
                if tables(groups).is_empty() {
                    all.remove(hook.event);
                }
            }
        }
        if all.is_empty() && !removed.is_empty() {
            doc.remove("hooks");
        }
    }
    Ok(Change { text: doc.to_string(), events: removed })
}

/// Removes the handlers running exactly `command` from the groups in `groups`, and the
/// groups they leave empty; says whether it removed any.
fn remove_command(groups: &mut Item, command: &str) -> bool {
    let mut removed = false;
    let mut emptied = Vec::new();
    match groups {
        Item::ArrayOfTables(array) => {
            for (index, group) in array.iter_mut().enumerate() {
                if let Some(handlers) = group.get_mut("hooks")
                    && remove_handlers(handlers, command)
                {
                    removed = true;
                    if tables(handlers).is_empty() {
                        emptied.push(index);
                    }
                }
            }
            for index in emptied.into_iter().rev() {
                array.remove(index);
            }
        }
        Item::Value(Value::Array(array)) => {
            for (index, group) in array.iter_mut().enumerate() {
                if let Some(Value::Array(list)) =
                    group.as_inline_table_mut().and_then(|group| group.get_mut("hooks"))
                    && remove_inline_handlers(list, command)
                {
                    removed = true;
                    if list.is_empty() {
                        emptied.push(index);
                    }
                }
            }
            for index in emptied.into_iter().rev() {
                array.remove(index);
            }
        }
        _ => {}
    }
    removed
}

fn runs(handler: &dyn TableLike, command: &str) -> bool {
    handler.get("command").and_then(Item::as_str) == Some(command)
}

/// Drops the handlers running `command` from a group's `hooks`; says whether any were.
fn remove_handlers(handlers: &mut Item, command: &str) -> bool {
    match handlers {
        Item::ArrayOfTables(array) => {
            let before = array.len();
            array.retain(|handler| !runs(handler, command));
            array.len() < before
        }
        Item::Value(Value::Array(list)) => remove_inline_handlers(list, command),
        _ => false,
    }
}

fn remove_inline_handlers(list: &mut toml_edit::Array, command: &str) -> bool {
    let before = list.len();
    list.retain(|handler| !handler.as_inline_table().is_some_and(|h| runs(h, command)));
    list.len() < before
}

/// The keys of `[hooks.state."<key>"]` entries that carry a `trusted_hash`: the hooks the
/// user reviewed in Codex (`<config file>:<event in snake case>:<group>:<handler>`).
pub(super) fn reviewed(user_config: &str) -> BTreeSet<String> {
    let Ok(doc) = user_config.parse::<DocumentMut>() else { return BTreeSet::new() };
    let Some(state) =
        doc.get("hooks").and_then(|hooks| hooks.get(STATE)).and_then(Item::as_table_like)
    else {
        return BTreeSet::new();
    };
    state
        .iter()
        .filter(|(_, entry)| entry.get("trusted_hash").and_then(Item::as_str).is_some())
        .map(|(key, _)| key.to_string())
        .collect()
}
