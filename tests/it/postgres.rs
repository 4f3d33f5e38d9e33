//! The whole integration suite on PostgreSQL, from the one `cargo test`.
//!
//! Tests are written once against `TestApp::spawn()`, which picks its backend from
//! `CHOICEBOARD_TEST_BACKEND`. The test below starts the throwaway PostgreSQL server and runs
//! this very test binary again with `CHOICEBOARD_TEST_BACKEND=postgres` and the server's URL,
//! streaming the child's output line by line (prefixed `postgres| `), and passes iff that run
//! passes and ran tests. The child skips this module (no recursion), `nodes::` (they already
//! run on PostgreSQL here) and `durability::` (the kill -9 test of the SQLite file; the
//! PostgreSQL kill -9 test is in `nodes.rs`), and the 2,000-viewer fan-out test (the hub does
//! not touch the database).
//!
//! `CHOICEBOARD_TEST_BACKEND=postgres cargo test` also works by hand: then every `TestApp`
//! uses a throwaway server started by that run, and this test has nothing to do.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use crate::helpers::on_postgres;
use crate::pg;

/// How many tests the child runs at once: they mostly wait on short deadlines, and the
/// PostgreSQL server shares the machine's cores.
const CHILD_TEST_THREADS: &str = "4";

#[test]
fn the_whole_suite_passes_on_postgres() {
    if on_postgres() {
        println!("this run is the PostgreSQL run already");
        return;
    }
    let Some(server) = pg::server_or_skip() else {
        return;
    };
    let exe = std::env::current_exe().expect("the test binary's path");
    let started = std::time::Instant::now();
    let mut child = Command::new(exe)
        .args([
            "--skip",
            "postgres::",
            "--skip",
            "nodes::",
            "--skip",
            "durability::",
            // The hub's fan-out at scale does not depend on the database; once is enough.
            "--skip",
            "timers::twenty_viewers_on_each_of_a_hundred_timers_all_tick",
        ])
        .args(["--test-threads", CHILD_TEST_THREADS])
        .env("CHOICEBOARD_TEST_BACKEND", "postgres")
        .env("CHOICEBOARD_TEST_POSTGRES", &server.url)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the test binary runs again");
    // Written straight to the process's stdout/stderr, past the test harness's capture, so
    // the child's progress shows as it happens.
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
        "postgres| the suite on PostgreSQL took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(status.success(), "the suite failed on PostgreSQL: {status}");
    assert!(
        passed.is_some_and(|n| n > 0),
        "the PostgreSQL run passed no test"
    );
}
