//! The password-hashing threads in the real binary: their number is the setting
//! (`DOORMAN_HASH_THREADS`), reported at start, and each hands its Argon2 memory
//! (19 MiB) back to the operating system once it has nothing to do.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{PASSWORD, ServerProcess};

/// The Argon2 memory of one thread, m = 19 MiB, in KiB.
const ARGON2_KIB: u64 = 19 * 1024;

fn start_env(dir: &std::path::Path, threads: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "DATABASE_URL",
            format!("sqlite://{}/memory.db?mode=rwc", dir.display()),
        ),
        ("DOORMAN_HASH_THREADS", threads.into()),
        ("DOORMAN_LOGIN_PER_MINUTE", "100000".into()),
        ("DOORMAN_LOG_FORMAT", "json".into()),
    ]
}

/// The names of the process's threads.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the server's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect()
}

/// The process's resident anonymous memory (heap, stacks, mappings), in KiB:
/// where Argon2's memory lives, without the binary's pages.
fn rss_anon_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon in /proc/<pid>/status")
}

#[tokio::test]
async fn the_hashing_threads_are_the_setting_and_reported_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let server = ServerProcess::start(&start_env(dir.path(), "3"), &log).await;
    let hashing = thread_names(server.pid())
        .into_iter()
        .filter(|name| name.starts_with("argon2-"))
        .count();
    assert_eq!(hashing, 3, "threads: {:?}", thread_names(server.pid()));
    let text = std::fs::read_to_string(&log).unwrap();
    let line: serde_json::Value = text
        .lines()
        .find(|l| l.contains("password hashing threads"))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no line reports the hashing threads:\n{text}"));
    let fields = line.get("fields").unwrap_or(&line);
    assert_eq!(fields["threads"], 3, "{line}");
    assert_eq!(fields["memory_mib_each"], 19, "{line}");
}

#[tokio::test]
async fn an_idle_hashing_thread_gives_its_argon2_memory_back() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        ServerProcess::start(&start_env(dir.path(), "1"), &dir.path().join("server.log")).await;
    let pid = server.pid();
    let email = "memory@example.org";
    let resp = server.register(email, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::CREATED);

    // Busy: logins back to back for a while, the memory held throughout.
    let mut busy = 0;
    let until = Instant::now() + Duration::from_millis(800);
    while Instant::now() < until {
        let resp = server.login(email, PASSWORD).await;
        assert_eq!(resp.status(), StatusCode::OK);
        busy = busy.max(rss_anon_kib(pid));
    }

    // Idle: within a few seconds the thread's 19 MiB are gone from the process
    // (allowing 4 MiB for whatever else the logins left behind).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut idle = rss_anon_kib(pid);
    while busy.saturating_sub(idle) < ARGON2_KIB - 4 * 1024 {
        assert!(
            Instant::now() < deadline,
            "resident anonymous memory {idle} KiB, {busy} KiB while hashing: \
             the Argon2 memory was not given back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        idle = rss_anon_kib(pid);
    }
    // And the next login maps it again and works.
    let resp = server.login(email, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
}
