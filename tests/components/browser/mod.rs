//! Pages in a real headless Chromium, driven over the DevTools protocol. Without Chromium these
//! tests are reported `ignored` (see `main.rs`), or run and fail when `CHOICEBOARD_REQUIRE`
//! names `browser`, as in CI.

mod access;
mod approvers;
mod cdp;
mod pages;
mod push;

use std::path::PathBuf;

pub use cdp::{Browser, Page, chromium_path};

use crate::Test;

/// Every browser test, in the order they are listed.
pub fn tests() -> Vec<Test> {
    [
        access::tests(),
        approvers::tests(),
        pages::tests(),
        push::tests(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Runs `test` with a fresh Chromium; without one the test fails (it runs without Chromium
/// only when `CHOICEBOARD_REQUIRE` names `browser`, or when asked to with `--ignored`).
pub async fn with_browser<F, Fut>(test: F)
where
    F: FnOnce(Browser) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let path = chromium_path().unwrap_or_else(|| panic!("Chromium: {}", crate::NO_CHROMIUM));
    // One browser test at a time: each starts its own Chromium, and two cores are few.
    let _turn = crate::helpers::heavy_and_timed().await;
    test(Browser::launch(&path).await).await;
}

pub fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/screenshots")
        .join(name)
}
