//! `cairn memory show|search|add|edit|log|forget|merge [--user]`: project memory (tier 3,
//! `refs/cairn/memory`) and, with `--user`, user memory (tier 4) from the command line.
//! Every change is a commit, so `cairn memory log` (or `git log refs/cairn/memory`) shows
//! who wrote what.

use std::process::ExitCode;

use crate::agent::instructions::{self, Instructions};
use crate::checkpoint::Store;
use crate::config::trust::printable;
use crate::memory::{self, Fact, Memory, Origin, Source, Tier, store::MemoryStore};

use super::CommandError;
use super::common::{format_time, open_store, print_json};
use crate::text::terminal_safe;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// The facts (or one fact, in full).
    Show {
        slug: Option<String>,
        #[arg(long)]
        user: bool,
        #[arg(long)]
        json: bool,
    },
    /// Ranked search over memory, the session summary and the AGENTS.md files.
    Search {
        #[arg(required = true)]
        query: Vec<String>,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Remember a fact, as the user's own statement.
    Add {
        #[arg(required = true)]
        text: Vec<String>,
        #[arg(long)]
        user: bool,
        #[arg(long)]
        json: bool,
    },
    /// Edit a fact in $VISUAL or $EDITOR and commit the result.
    Edit {
        slug: String,
        #[arg(long)]
        user: bool,
    },
    /// The history of the memory, with the sessions and steps that wrote it.
    Log {
        #[arg(long)]
        user: bool,
        /// At most this many entries.
        #[arg(short = 'n', long)]
        limit: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a fact (a commit; `cairn memory log` keeps its history).
    Forget {
        slug: String,
        #[arg(long)]
        user: bool,
    },
    /// Merge a remote's project memory, fetched by `cairn fetch`, into this one; its facts
    /// are marked source = "remote:<remote>".
    Merge {
        #[arg(default_value = "origin")]
        remote: String,
        #[arg(long)]
        json: bool,
    },
}

fn tier(user: bool) -> Tier {
    if user { Tier::User } else { Tier::Project }
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let store = open_store()?;
    let mut memory = Memory::open(store.writing_repo(), store.redacts_secrets())?;
    let cli = Origin::default();
    match args.command {
        Command::Show { slug, user, json } => show(&memory, tier(user), slug.as_deref(), json),
        Command::Search { query, limit, json } => {
            search(&store, &memory, &query.join(" "), limit, json)
        }
        Command::Add { text, user, json } => {
            let done = memory.remember(tier(user), &text.join(" "), Source::User, &cli)?;
            if json {
                print_json(&done)?;
            } else {
                let location =
                    memory.tier(done.tier).map(MemoryStore::location).unwrap_or_default();
                println!("Remembered ({}) as {location}:facts/{}.md", done.outcome, done.slug);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Edit { slug, user } => edit(&memory, tier(user), &slug),
        Command::Log { user, limit, json } => log(&memory, tier(user), limit, json),
        Command::Forget { slug, user } => {
            memory.forget(tier(user), &slug, &cli)?;
            println!("Forgot {slug}.");
            Ok(ExitCode::SUCCESS)
        }
        Command::Merge { remote, json } => {
            let name = crate::history::share::remote_memory_ref(&remote);
            let theirs = crate::git::refs::read_ref(store.repo(), &name)?.ok_or_else(|| {
                CommandError::user(format!("there is no fetched memory at {name}"))
                    .with_hint(format!("`cairn fetch {remote}` brings it"))
            })?;
            let report = memory.merge(theirs, &remote)?;
            if json {
                print_json(&report)?;
            } else {
                print_merge(&remote, &report);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `cairn memory search`: facts, the session summary and instruction files ranked for `query`.
fn search(
    store: &Store,
    memory: &Memory,
    query: &str,
    limit: usize,
    json: bool,
) -> Result<ExitCode, CommandError> {
    let cwd = std::env::current_dir()?;
    let instructions = Instructions::load(store.root(), &cwd, instructions::DEFAULT_CAP);
    let summary = match store.current_session()? {
        Some(id) => {
            let session = store.open_session(&id)?;
            match session.tip {
                Some(tip) => store.read_state(tip)?.summary,
                None => None,
            }
        }
        None => None,
    };
    let hits = memory.search(query, limit, summary.as_deref(), &instructions.files)?;
    if json {
        print_json(&hits)?;
    } else if hits.is_empty() {
        println!("No memory matches {query:?}.");
    } else {
        for hit in hits {
            println!("{}", terminal_safe(&hit.display_line()));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `cairn memory log`: the tier's history, newest first, naming the step that wrote each.
fn log(
    memory: &Memory,
    tier: Tier,
    limit: Option<usize>,
    json: bool,
) -> Result<ExitCode, CommandError> {
    let Some(store) = memory.tier(tier) else {
        println!("User memory is empty.");
        return Ok(ExitCode::SUCCESS);
    };
    let log = store.log(limit)?;
    if json {
        print_json(&log)?;
        return Ok(ExitCode::SUCCESS);
    }
    for entry in log {
        let by = match (&entry.session, entry.step) {
            (Some(session), Some(step)) => format!("{session}@{step}"),
            (Some(session), None) => session.clone(),
            _ => "user".to_string(),
        };
        let short = entry.commit.to_hex_with_len(10);
        let subject = terminal_safe(&entry.subject);
        println!("{short} {} {by:<24} {subject}", format_time(entry.time));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints what merging `remote`'s memory did.
pub fn print_merge(remote: &str, report: &memory::MergeReport) {
    if report.up_to_date {
        println!("Memory is up to date with {remote}.");
    } else {
        println!(
            "Merged memory from {remote}: {} facts taken, marked source = \"remote:{remote}\" \
             (`cairn memory show` lists them; `cairn memory edit` makes one yours).",
            report.taken.len()
        );
    }
    for (slug, reason) in &report.rejected {
        println!("Left out {remote}'s {}: {}.", printable(slug), printable(reason));
    }
    for slug in &report.deleted_there {
        println!(
            "{remote} deleted {slug}, which changed here since: kept (`cairn memory forget {slug}` to follow {remote})."
        );
    }
    for (ours, theirs) in &report.conflicts {
        println!(
            "Both sides changed {ours}: yours is kept, theirs is beside it as {theirs} (edit or forget one)."
        );
    }
}

fn show(
    memory: &Memory,
    tier: Tier,
    slug: Option<&str>,
    json: bool,
) -> Result<ExitCode, CommandError> {
    let Some(store) = memory.tier(tier) else {
        if json {
            print_json(&serde_json::json!({"location": null, "facts": [], "invalid": []}))?;
        } else {
            println!("User memory is empty (`cairn memory add --user` starts it).");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let contents = store.load()?;
    for invalid in &contents.invalid {
        eprintln!("warning: {} is skipped: {}", terminal_safe(&invalid.path), invalid.reason);
    }
    if let Some(slug) = slug {
        let fact = contents.fact(slug).ok_or_else(|| memory::Error::NoSuchFact {
            slug: slug.into(),
            location: store.location().into(),
        })?;
        if json {
            print_json(&fact_json(fact))?;
        } else {
            print!("{}", terminal_safe(&fact.render()));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if json {
        print_json(&serde_json::json!({
            "location": store.location(),
            "facts": contents.facts.iter().map(fact_json).collect::<Vec<_>>(),
            "invalid": contents.invalid,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if contents.facts.is_empty() {
        println!("No facts in {}.", store.location());
    }
    for fact in &contents.facts {
        let source = &fact.meta.source;
        let note = if source.remote().is_some() { ", not confirmed here" } else { "" };
        let headline = terminal_safe(&fact.headline()).into_owned();
        println!("{:<32} {headline} (source: {source}{note})", fact.slug);
    }
    Ok(ExitCode::SUCCESS)
}

fn fact_json(fact: &Fact) -> serde_json::Value {
    serde_json::json!({
        "slug": fact.slug,
        "text": fact.text,
        "source": fact.meta.source,
        "created": fact.meta.created,
        "last_confirmed": fact.meta.last_confirmed,
        "session": fact.meta.session,
        "step": fact.meta.step,
    })
}

fn edit(memory: &Memory, tier: Tier, slug: &str) -> Result<ExitCode, CommandError> {
    if !memory::fact::is_valid_slug(slug) {
        return Err(memory::Error::InvalidSlug(slug.into()).into());
    }
    let no_fact = || memory::Error::NoSuchFact {
        slug: slug.into(),
        location: memory.tier(tier).map_or("user memory (empty)".into(), |s| s.location().into()),
    };
    let store = memory.tier(tier).ok_or_else(no_fact)?;
    let tree = store.tree()?.ok_or_else(no_fact)?;
    let path = format!("{}/{slug}.md", memory::store::FACTS_DIR);
    let original = store.file_at(tree, &path)?.ok_or_else(no_fact)?;
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| std::env::var("EDITOR").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "vi".to_string());
    let mut file = tempfile::Builder::new().prefix(&format!("{slug}-")).suffix(".md").tempfile()?;
    std::io::Write::write_all(&mut file, &original)?;
    // Through the shell, as git runs editors, so `EDITOR="code --wait"` works.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg(&editor)
        .arg(file.path())
        .status()
        .map_err(|err| {
            CommandError::user(format!("could not start the editor `{editor}`: {err}"))
        })?;
    if !status.success() {
        return Err(CommandError::user(format!(
            "the editor `{editor}` failed ({status}); nothing changed"
        )));
    }
    let edited = std::fs::read(file.path())?;
    if edited == original {
        println!("No change.");
        return Ok(ExitCode::SUCCESS);
    }
    let text = String::from_utf8(edited)
        .map_err(|_| CommandError::user("the edited fact is not UTF-8; nothing changed"))?;
    let mut fact = Fact::parse(slug, &text).map_err(|reason| {
        CommandError::user(format!("the edited fact cannot be read: {reason}; nothing changed"))
    })?;
    fact.meta.last_confirmed = jiff::Timestamp::now().to_string();
    let subject = format!("edit: {}", fact.headline());
    store.write(&[memory::Change::Put(fact)], &subject, &Origin::default())?;
    println!("Saved {slug}.");
    Ok(ExitCode::SUCCESS)
}
