//! Pages in a real headless Chromium, driven over the DevTools protocol. Chromium missing means
//! "skipped" — or a failure when `CHOICEBOARD_REQUIRE` names `browser`, as in CI.

mod access;
mod approvers;
mod cdp;
mod pages;
mod push;

use std::path::PathBuf;

pub use cdp::{Browser, Page};

pub fn required(what: &str) -> bool {
    std::env::var("CHOICEBOARD_REQUIRE").is_ok_and(|v| v.split(',').any(|w| w.trim() == what))
}

/// Runs `test` with a fresh Chromium, or skips it when there is none (and none is required).
pub async fn with_browser<F, Fut>(test: F)
where
    F: FnOnce(Browser) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(path) = cdp::chromium_path() else {
        if required("browser") {
            panic!("Chromium not found, and CHOICEBOARD_REQUIRE names browser");
        }
        eprintln!("skipped: Chromium not found");
        return;
    };
    // One browser test at a time: each starts its own Chromium, and two cores are few.
    let _turn = crate::helpers::heavy_and_timed().await;
    test(Browser::launch(&path).await).await;
}

pub fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/screenshots")
        .join(name)
}
