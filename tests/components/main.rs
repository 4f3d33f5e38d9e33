//! The integration tests that need something a machine may lack: Chromium (`browser::`),
//! PostgreSQL (`nodes::`, `postgres::`) or the official MCP Python SDK (`mcp_http::`).
//!
//! They are a test binary of their own, run by libtest-mimic (`harness = false` in
//! `Cargo.toml`), so that a test whose component is missing is reported `ignored` in cargo's own
//! summary instead of passing without having run. Each test is listed with what it needs
//! (`test [needs Chromium] browser::pages::... ... ignored`), and before the run one line on
//! stderr says, for each missing component, why it is missing and how to get it.
//!
//! `CHOICEBOARD_REQUIRE` (comma-separated: `browser`, `postgres`, `mcp`; `.ci/run` names all
//! three) makes components required: their tests then run even when the component is missing,
//! and fail. `--ignored` and `--include-ignored` run ignored tests too; the usual arguments
//! (a filter, `--skip`, `--exact`, `--list`, `--test-threads`) work as with `it`, except that
//! libtest-mimic takes one filter, not several.
//!
//! A test is a plain `async fn` (or `fn`), registered in its module's `tests()` with
//! [`trials!`]; one left out of it is a dead-code warning. Each runs on a thread of its own,
//! named after it as libtest names its threads, in a current-thread tokio runtime as
//! `#[tokio::test]` gives. libtest-mimic does not capture output: what a test prints shows.
//! The helpers are the `it` binary's own, included by path.

use std::future::Future;
use std::pin::Pin;

use libtest_mimic::{Arguments, Failed, Trial};

/// `trials!(Component::X, [test, ...])`: a [`Test`] for each function named, which needs `X`;
/// each is named by its module path (without the crate's name) and its own name, as libtest
/// names tests. The functions are `async fn` (a `fn` with `trials!(fn Component::X, [...])`).
macro_rules! trials {
    (fn $needs:expr, [$($test:ident),* $(,)?]) => {
        vec![$($crate::Test::new(
            module_path!(),
            stringify!($test),
            $needs,
            $crate::Body::Blocking($test),
        )),*]
    };
    ($needs:expr, [$($test:ident),* $(,)?]) => {
        vec![$($crate::Test::new(
            module_path!(),
            stringify!($test),
            $needs,
            $crate::Body::Async(|| Box::pin($test())),
        )),*]
    };
}

#[allow(dead_code)]
#[path = "../it/browser_keys.rs"]
mod browser_keys;
#[path = "../it/helpers.rs"]
mod helpers;
#[path = "../it/pg.rs"]
mod pg;
#[allow(dead_code)]
#[path = "../it/receiver.rs"]
mod receiver;

mod browser;
mod mcp_http;
mod nodes;
mod postgres;

/// What a test needs that a machine may lack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Chromium,
    Postgres,
    McpSdk,
}

pub const NO_CHROMIUM: &str = "no chromium, chromium-browser or google-chrome on PATH";
pub const NO_MCP_SDK: &str =
    "CHOICEBOARD_MCP_PYTHON is not set and there is no target/mcp-venv/bin/python";

impl Component {
    const ALL: [Component; 3] = [Component::Chromium, Component::Postgres, Component::McpSdk];

    /// Its name in `CHOICEBOARD_REQUIRE`.
    fn key(self) -> &'static str {
        match self {
            Component::Chromium => "browser",
            Component::Postgres => "postgres",
            Component::McpSdk => "mcp",
        }
    }

    /// Shown before the name of each of its tests, when listed and when run.
    fn kind(self) -> &'static str {
        match self {
            Component::Chromium => "needs Chromium",
            Component::Postgres => "needs PostgreSQL",
            Component::McpSdk => "needs the MCP SDK",
        }
    }

    /// `Err(why)` when this machine lacks it; nothing is started to find out.
    fn probe(self) -> Result<(), String> {
        match self {
            Component::Chromium => browser::chromium_path()
                .map(drop)
                .ok_or_else(|| NO_CHROMIUM.to_string()),
            Component::Postgres => pg::available(),
            Component::McpSdk => mcp_http::sdk_python()
                .map(drop)
                .ok_or_else(|| NO_MCP_SDK.to_string()),
        }
    }

    /// How to get it.
    fn remedy(self) -> &'static str {
        match self {
            Component::Chromium => "apt-get install chromium",
            Component::Postgres => {
                "apt-get install postgresql, or CHOICEBOARD_TEST_POSTGRES=postgres://USER@HOST:PORT"
            }
            Component::McpSdk => {
                "python3 -m venv target/mcp-venv && target/mcp-venv/bin/pip install 'mcp==2.3.0'"
            }
        }
    }
}

/// Whether `CHOICEBOARD_REQUIRE` (comma-separated names, spaces around them ignored) names
/// `component`: then its tests run, and fail, when it is missing, instead of being ignored.
pub fn required(component: Component) -> bool {
    std::env::var("CHOICEBOARD_REQUIRE")
        .is_ok_and(|names| names.split(',').any(|name| name.trim() == component.key()))
}

/// A test's code.
pub enum Body {
    Async(fn() -> Pin<Box<dyn Future<Output = ()>>>),
    Blocking(fn()),
}

/// One test, before it becomes a libtest-mimic [`Trial`].
pub struct Test {
    name: String,
    needs: Component,
    body: Body,
    /// Set when the test has nothing to do in this run, whatever is installed: why.
    pub ignore: Option<&'static str>,
}

impl Test {
    pub fn new(module: &str, name: &str, needs: Component, body: Body) -> Test {
        let module = module.split_once("::").map_or("", |(_crate, path)| path);
        Test {
            name: format!("{module}::{name}"),
            needs,
            body,
            ignore: None,
        }
    }
}

/// Runs `body` on a thread named `name`; a panic fails the test with its message (the panic
/// hook has printed it, with the thread's name, as under libtest).
fn run(name: String, body: Body) -> Result<(), Failed> {
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || match body {
            Body::Blocking(test) => test(),
            Body::Async(test) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime")
                .block_on(test()),
        });
    let outcome = thread.expect("a thread for the test").join();
    outcome.map_err(|panic| {
        let message = (panic.downcast_ref::<String>().map(String::as_str))
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        format!("test panicked: {message}").into()
    })
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    // The longest first: the PostgreSQL run of the whole suite.
    let tests = [
        postgres::tests(),
        nodes::tests(),
        browser::tests(),
        mcp_http::tests(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    let missing: Vec<(Component, String)> = Component::ALL
        .into_iter()
        .filter_map(|c| c.probe().err().map(|why| (c, why)))
        .collect();
    let trials: Vec<Trial> = tests
        .into_iter()
        .map(|test| {
            let kind = test.ignore.unwrap_or(test.needs.kind());
            let ignored = test.ignore.is_some()
                || (missing.iter().any(|(c, _)| *c == test.needs) && !required(test.needs));
            let name = test.name.clone();
            Trial::test(test.name, move || run(name, test.body))
                .with_kind(kind)
                .with_ignored_flag(ignored)
        })
        .collect();
    // Before the run, on stderr (stdout may be `--format json`): what is missing, and so what
    // happens to the tests selected that need it.
    if !args.list {
        for (component, why) in &missing {
            let selected = trials
                .iter()
                .filter(|t| t.kind() == component.kind() && !args.is_filtered_out(t))
                .count();
            let (tests, run) = if selected == 1 {
                ("test", "runs")
            } else {
                ("tests", "run")
            };
            let then = if required(*component) {
                let key = component.key();
                format!(
                    "CHOICEBOARD_REQUIRE names {key}, so its {selected} {tests} {run}, and fail"
                )
            } else if args.ignored || args.include_ignored {
                format!("{selected} {tests} {run} as asked, and fail")
            } else {
                format!("{selected} {tests} ignored")
            };
            if selected > 0 {
                let (kind, remedy) = (component.kind(), component.remedy());
                eprintln!("{kind}: {why}; {then} (to have it: {remedy})");
            }
        }
    }
    libtest_mimic::run(&args, trials).exit_code()
}
