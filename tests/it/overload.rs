//! A login storm larger than the password-hashing threads can serve: the excess is
//! answered at once with 503 `overloaded`, and the server keeps working.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn a_login_storm_beyond_the_hash_queue_answers_503_overloaded_at_once() {
    let app = spawn_with(|c| {
        c.login_per_minute = 100_000;
        // 300 requests at once are 300 connections from one address: above the
        // per-IP cap (256), which would close some at accept; that cap is not what
        // this test is about.
        c.max_connections_per_ip = 1000;
    })
    .await;
    let email = app.new_user().await;

    let storm = (0..300).map(|_| async {
        let sent = Instant::now();
        let resp = app.login(&email, "a wrong password").await;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body: Value = resp.json().await.expect("json error body");
        (status, retry_after, body, sent.elapsed())
    });
    // Unbounded, 300 hashes of 20-30 ms on two threads would take several seconds;
    // bounded, every request is answered well within this.
    let answers = tokio::time::timeout(
        Duration::from_secs(20),
        futures_util::future::join_all(storm),
    )
    .await
    .expect("every request of the storm is answered");

    let mut refused = 0;
    for (status, retry_after, body, took) in &answers {
        match *status {
            StatusCode::UNAUTHORIZED => assert_eq!(body["error"], "invalid_credentials"),
            StatusCode::SERVICE_UNAVAILABLE => {
                refused += 1;
                assert_eq!(body["error"], "overloaded");
                let secs: u64 = retry_after
                    .as_deref()
                    .expect("a 503 carries Retry-After")
                    .parse()
                    .expect("Retry-After in seconds");
                assert!(secs >= 1);
                // Refused without waiting for a hash.
                assert!(*took < Duration::from_secs(3), "a 503 took {took:?}");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(refused > 0, "no request of 300 was refused as overloaded");
    assert!(refused < answers.len(), "every request was refused");

    // The storm is over: the right password gets in again.
    app.login_tokens(&email).await;
}
