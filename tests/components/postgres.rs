//! The whole integration suite on PostgreSQL, from the one `cargo test`.
//!
//! Tests are written once against `TestApp::spawn()`, which picks its backend from
//! `CHOICEBOARD_TEST_BACKEND`. The test below starts the throwaway PostgreSQL server and runs two
//! child test processes with `CHOICEBOARD_TEST_BACKEND=postgres` and the server's URL: the `it`
//! test binary, then this very binary for its Chromium and MCP SDK tests (each reported
//! `ignored` there too when its component is missing). It streams their output line by line
//! (prefixed `postgres| `), and passes iff both pass and the `it` run ran tests. The `it` run
//! skips `durability::` (the kill -9 test of the SQLite file; the PostgreSQL kill -9 test is in
//! `nodes.rs`) and the 2,000-viewer fan-out test (the fan-out does not touch the database); this
//! binary's run skips this module (no recursion) and `nodes::` (they run on PostgreSQL here
//! already).
//!
//! Finding `it`: cargo tells a test binary nothing about the others, so this takes the newest
//! `it-<hash>` beside this binary (in `target/<profile>/deps`, where `cargo test` builds every
//! test binary before running any), and refuses it when it is older than a file it was built
//! from (those its `.d` file lists, and the library): `cargo test --test components` alone
//! does not rebuild `it`.
//!
//! `CHOICEBOARD_TEST_BACKEND=postgres cargo test` also works by hand: then every `TestApp`
//! uses a throwaway server started by that run, and this test is reported `ignored`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use crate::pg;
use crate::{Component, Test};

/// This module's test: it needs PostgreSQL (and, on a run that is on PostgreSQL already, it
/// has nothing to do and is ignored).
pub fn tests() -> Vec<Test> {
    let mut tests = trials!(fn Component::Postgres, [the_whole_suite_passes_on_postgres]);
    if crate::helpers::on_postgres() {
        for test in &mut tests {
            test.ignore = Some("this run is on PostgreSQL already");
        }
    }
    tests
}

/// How many tests a child runs at once: they mostly wait on short deadlines, and the
/// PostgreSQL server shares the machine's cores.
const CHILD_TEST_THREADS: &str = "4";

fn the_whole_suite_passes_on_postgres() {
    let it = it_binary();
    let server = pg::server_or_panic();
    let passed = run_on_postgres(
        &it,
        &[
            "--skip",
            "durability::",
            // The fan-out at scale does not depend on the database; once is enough.
            "--skip",
            "timers::twenty_viewers_on_each_of_a_hundred_timers_all_tick",
        ],
        server,
    );
    assert!(
        passed.is_some_and(|n| n > 0),
        "the PostgreSQL run of {} passed no test",
        it.display()
    );
    let this = std::env::current_exe().expect("this test binary's path");
    run_on_postgres(
        &this,
        &["--skip", "postgres::", "--skip", "nodes::"],
        server,
    );
}

/// Runs the test binary `exe` with `skips` on `server`, its output streamed prefixed
/// `postgres| `; panics unless it passed. How many tests passed, from its summary line.
fn run_on_postgres(exe: &Path, skips: &[&str], server: &pg::PgServer) -> Option<usize> {
    let started = std::time::Instant::now();
    let _ = writeln!(std::io::stdout().lock(), "postgres| {}", exe.display());
    let mut child = Command::new(exe)
        .args(skips)
        .args(["--test-threads", CHILD_TEST_THREADS])
        .env("CHOICEBOARD_TEST_BACKEND", "postgres")
        .env("CHOICEBOARD_TEST_POSTGRES", &server.url)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} runs: {e}", exe.display()));
    // Written straight to the process's stdout/stderr, so the child's progress shows as it
    // happens.
    let stderr = child.stderr.take().expect("stderr");
    let copy_stderr = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(std::io::stderr().lock(), "postgres| {line}");
        }
    });
    let mut passed = None;
    let stdout = child.stdout.take().expect("stdout");
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let _ = writeln!(std::io::stdout().lock(), "postgres| {line}");
        if let Some(rest) = line.strip_prefix("test result: ok. ") {
            passed = rest.split(' ').next().and_then(|n| n.parse::<usize>().ok());
        }
    }
    let status = child.wait().expect("the child run ends");
    let _ = copy_stderr.join();
    let _ = writeln!(
        std::io::stdout().lock(),
        "postgres| {} on PostgreSQL took {:.1} s",
        exe.file_name().unwrap_or_default().to_string_lossy(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        status.success(),
        "{} failed on PostgreSQL: {status}",
        exe.display()
    );
    passed
}

/// The `it` test binary beside this one: the newest `it-<hash>` in this binary's directory,
/// provided nothing it was built from is newer than it.
fn it_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("this test binary's path");
    let deps = exe.parent().expect("the test binaries' directory");
    let (built, it) = newest(deps, "it-", "").unwrap_or_else(|| {
        panic!(
            "no `it` test binary in {}: `cargo test` builds it (or `cargo test --test it --no-run`)",
            deps.display()
        )
    });
    let sources = std::fs::read_to_string(it.with_extension("d")).unwrap_or_default();
    let target = format!("{}:", it.display());
    let mut inputs: Vec<PathBuf> = sources
        .lines()
        .find_map(|line| line.strip_prefix(target.as_str()))
        .unwrap_or_default()
        .split_whitespace()
        .map(|path| Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .collect();
    inputs.extend(newest(deps, "libchoiceboard-", ".rlib").map(|(_, lib)| lib));
    for input in inputs {
        let changed = std::fs::metadata(&input).and_then(|m| m.modified());
        assert!(
            changed.is_ok_and(|changed| changed <= built),
            "{} was built before {} last changed: build it again (`cargo test` builds every \
             test binary; or `cargo test --test it --no-run`)",
            it.display(),
            input.display()
        );
    }
    it
}

/// The newest file in `dir` named `PREFIX<16 hex digits>SUFFIX` (how cargo names what it
/// builds), and when it was written.
fn newest(dir: &Path, prefix: &str, suffix: &str) -> Option<(SystemTime, PathBuf)> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let hash = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
            if hash.len() != 16 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let meta = entry.metadata().ok()?;
            meta.is_file()
                .then(|| Some((meta.modified().ok()?, entry.path())))?
        })
        .max()
}
