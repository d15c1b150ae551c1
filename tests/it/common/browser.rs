//! Headless Chromium for the end-to-end tests of the dashboard pages.

use std::path::{Path, PathBuf};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs Debian's Chromium headless on `url` with `extra` arguments; returns its standard output.
pub async fn chromium(url: &str, extra: &[&str]) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the end-to-end tests of the dashboard pages need Debian's Chromium. \
         Install it with `apt-get install chromium` (CI does)."
    );
    let profile = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(CHROMIUM);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("chromium did not finish within 120 s")
        .expect("starting chromium");
    assert!(
        output.status.success(),
        "chromium failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The value of `attribute` on the element with `id` in serialized HTML.
pub fn attribute_of(html: &str, id: &str, attribute: &str) -> Option<String> {
    let start = html.find(&format!(r#"id="{id}""#))?;
    let tag_start = html[..start].rfind('<')?;
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>')?];
    let key = format!(r#"{attribute}=""#);
    let at = tag.find(&key)? + key.len();
    Some(tag[at..at + tag[at..].find('"')?].replace("&amp;", "&"))
}

pub fn screenshot_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join(name)
}

/// The value of `attribute` on the page's `<body>` in serialized HTML.
pub fn body_attribute(html: &str, attribute: &str) -> Option<String> {
    let tag_start = html.find("<body")?;
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>')?];
    let key = format!(r#"{attribute}=""#);
    let at = tag.find(&key)? + key.len();
    Some(tag[at..at + tag[at..].find('"')?].replace("&amp;", "&"))
}
