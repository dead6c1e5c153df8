//! `cairn demo`: an offline, scripted session in a temporary repository. A scripted model
//! served over real HTTP on 127.0.0.1 drives the real client and agent loop to fix a
//! failing test in a tiny project; then the demo shows `cairn log`, a diff, a rewind, and
//! the `git log` of the hidden ref. No key and no network are needed.

mod model;

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use crate::agent::approval::{Headless, Policy};
use crate::agent::{Agent, AgentMemory, AgentSetup, MemorySettings, prompt};
use crate::checkpoint::{Store, StoreOptions};
use crate::config::Approval;
use crate::llm::{self, ProviderKind};

use super::common::color_stdout;
use super::run::{Printer, drive};
use super::{CommandError, log, render};
use model::{Answer, DemoModel};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep the temporary repository and print where it is.
    #[arg(long)]
    keep: bool,
}

const LIB: &str = "# Tiny arithmetic library.\nadd() {\n  echo $(( $1 - $2 ))\n}\n";
const TEST: &str = "#!/bin/sh\n. ./lib.sh\nresult=$(add 2 3)\nif [ \"$result\" = 5 ]; then\n  echo \"test passed: add 2 3 = 5\"\nelse\n  echo \"test failed: add 2 3 gave $result, expected 5\"\n  exit 1\nfi\n";
const PROMPT: &str = "The test fails. Find the bug and fix it.";

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let dir = tempfile::Builder::new().prefix("cairn-demo-").tempdir()?;
    let root = dir.path().join("project");
    let result = demo(&root);
    if args.keep {
        let kept = dir.keep();
        println!("\nThe demo repository is kept at {}", kept.join("project").display());
    }
    result
}

fn section(title: &str) {
    if color_stdout() {
        println!("\n\x1b[1m━━ {title}\x1b[0m");
    } else {
        println!("\n━━ {title}");
    }
}

fn demo(root: &Path) -> Result<ExitCode, CommandError> {
    println!("cairn demo: a scripted session. The model's replies are canned and served from");
    println!(
        "127.0.0.1, but the client, the agent loop, the tools and the git recording are real."
    );
    create_project(root)?;
    println!("\nA tiny project in {} whose test fails:", root.display());
    println!("  lib.sh   add() subtracts instead of adding\n  test.sh  checks that add 2 3 = 5");

    let (id, steps) = run_session(root)?;

    let store = Store::discover(root, StoreOptions::default())?;
    let color = color_stdout();
    section("$ cairn log");
    // The demo's model is canned; no price applies to it.
    let prices = super::usage::Prices::default();
    log::print_steps(&store, &store.steps(&id)?, &prices, false, color)?;

    section("$ cairn diff @~5 @   (all the agent changed, .cairn/ hidden)");
    let first = store.resolve(&format!("{id}@1"))?;
    let tip = store.resolve(&id)?;
    let tree = |commit| store.step_tree(commit).map_err(CommandError::from);
    print!(
        "{}",
        render::render(
            store.repo(),
            Some(tree(first.commit)?),
            Some(tree(tip.commit)?),
            false,
            color
        )?
    );

    show_rewind(root, &store, &id, &first, steps)?;
    println!("\nThat was cairn: every step a commit, every rewind a ref move, nothing lost.");
    Ok(ExitCode::SUCCESS)
}

/// The scripted `cairn run`: the real agent loop against the demo's model. Returns the
/// session and how many steps it recorded.
fn run_session(root: &Path) -> Result<(String, u64), CommandError> {
    let runtime = super::launch::runtime()?;
    let store = Store::discover(root, StoreOptions::default())?;
    let session = store.start_session(PROMPT, Some("demo/scripted".into()), None)?;
    let id = session.info.id.clone();
    let outcome = runtime.block_on(async {
        let model = DemoModel::start(script()).await?;
        let mut settings =
            llm::ClientSettings::new("demo", ProviderKind::OpenaiChat, model.base_url());
        settings.max_output_tokens = 4096;
        let client = llm::Client::new(settings).map_err(CommandError::internal_error)?;
        let instructions = crate::agent::instructions::Instructions::default();
        let system = prompt::build(&prompt::PromptParts {
            root,
            branch: Some("main".into()),
            date: jiff::Zoned::now().strftime("%Y-%m-%d").to_string(),
            instructions: &instructions,
            memory: None,
        });
        let memory = AgentMemory::open(
            &store,
            MemorySettings {
                inject_tokens: crate::config::DEFAULT_INJECT_TOKENS,
                compact_at: 80,
                context_window: crate::config::DEFAULT_CONTEXT_WINDOW,
                // The demo's script has no summary turn.
                summarize: false,
            },
            Vec::new(),
        )
        .map_err(CommandError::internal_error)?;
        let mut agent = demo_agent(store, session, client, system, memory);
        section(&format!("$ cairn run \"{PROMPT}\""));
        let mut printer = Printer::new(false, true);
        let outcome = drive(&mut agent, PROMPT, Some(10), &mut |event| printer.event(&event)).await;
        Ok::<_, CommandError>(outcome.map(|_| agent.session().steps))
    })?;
    let steps = outcome
        .map_err(|err| CommandError::internal(format!("the scripted session failed: {err}")))?;

    Ok((id, steps))
}

fn demo_agent(
    store: Store,
    session: crate::checkpoint::Session,
    client: llm::Client,
    system: String,
    memory: AgentMemory,
) -> Agent {
    Agent::new(AgentSetup {
        store,
        session,
        client,
        model: "scripted".into(),
        model_label: "demo/scripted".into(),
        reasoning: None,
        system,
        restored: Default::default(),
        memory,
        policy: Policy::new(Approval::Auto, Box::new(Headless)),
        turn_limits: Default::default(),
        watch: false,
        bench_no_snapshots: false,
        mcp: Default::default(),
        // The demo runs no commands.
        sandbox: crate::sandbox::Plan::Off,
    })
}

/// `cairn rewind` to the first step, and the archived tip as plain git shows it.
fn show_rewind(
    root: &Path,
    store: &Store,
    id: &str,
    first: &crate::checkpoint::Checkpoint,
    steps: u64,
) -> Result<(), CommandError> {
    section("$ cairn rewind @~5   (back to the prompt, before any edit)");
    let rewound = crate::history::rewind(store, first)?;
    println!(
        "Rewound session {id} to step 1 ({} written, {} deleted); the old tip is kept as {}.",
        rewound.outcome.applied.written,
        rewound.outcome.applied.deleted,
        rewound.outcome.archived_as.as_deref().unwrap_or("-")
    );
    if !rewound.reverted_facts.is_empty() {
        let facts = rewound.reverted_facts.join(", ");
        println!("Reverted the project facts it wrote after that step: {facts}.");
    }
    let lib = std::fs::read_to_string(root.join("lib.sh"))?;
    println!("lib.sh is back to the bug: {}", lib.lines().nth(2).unwrap_or_default().trim());

    section(&format!("$ git log --oneline refs/cairn/archive/{id}/…   (plain git reads it all)"));
    let archive =
        rewound.outcome.archived_as.unwrap_or_else(|| format!("refs/cairn/sessions/{id}"));
    match std::process::Command::new("git")
        .args(["log", "--oneline", &archive])
        .current_dir(root)
        .output()
    {
        Ok(out) if out.status.success() => print!("{}", String::from_utf8_lossy(&out.stdout)),
        _ => println!(
            "(git is not installed here; `git log --oneline {archive}` shows the {steps} steps)"
        ),
    }
    Ok(())
}

/// The project, committed as the repository's first commit.
fn create_project(root: &Path) -> Result<(), CommandError> {
    std::fs::create_dir_all(root)?;
    std::fs::write(root.join("lib.sh"), LIB)?;
    std::fs::write(root.join("test.sh"), TEST)?;
    std::fs::write(root.join("README.md"), "# demo\nRun the test with `sh test.sh`.\n")?;
    let repo = gix::init(root).map_err(CommandError::internal_error)?;
    let store = Store::discover(root, StoreOptions::default())?;
    let tree = store.snapshot()?.tree;
    let signature = gix::actor::Signature {
        name: "cairn demo".into(),
        email: "demo@localhost".into(),
        time: gix::date::Time::now_local_or_utc(),
    };
    let mut buf = gix::date::parse::TimeBuf::default();
    let sig = signature.to_ref(&mut buf);
    repo.commit_as(
        sig,
        sig,
        "HEAD",
        "A tiny project with a failing test",
        tree,
        Vec::<gix::ObjectId>::new(),
    )
    .map_err(CommandError::internal_error)?;
    Ok(())
}

/// What the scripted model answers, call by call.
fn script() -> Vec<Answer> {
    vec![
        Answer::ToolCall {
            id: "call_1",
            name: "shell",
            arguments: json!({"command": "sh test.sh"}),
        },
        Answer::ToolCall { id: "call_2", name: "read_file", arguments: json!({"path": "lib.sh"}) },
        Answer::ToolCall {
            id: "call_3",
            name: "edit_file",
            arguments: json!({"path": "lib.sh", "old_string": "$(( $1 - $2 ))", "new_string": "$(( $1 + $2 ))"}),
        },
        Answer::ToolCall {
            id: "call_4",
            name: "shell",
            arguments: json!({"command": "sh test.sh"}),
        },
        Answer::Text(
            "The bug was in `add`: it subtracted its arguments. I changed `-` to `+` in lib.sh, and `sh test.sh` passes now.\n",
        ),
    ]
}
