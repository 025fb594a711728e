//! Prometheus metrics on their own listener, read with a Prometheus text parser as a
//! scraper would: the counters move as requests, refusals, handshakes and
//! revocations happen, and the public port has no `/metrics`.

use std::time::Duration;

use reqwest::StatusCode;

use crate::{client::Credential::Anonymous, helpers::*};

/// One sample: name, sorted labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Every sample of the scrape.
async fn scrape(url: &str) -> Vec<Sample> {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    parsed
        .samples
        .into_iter()
        .map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(buckets) => {
                    buckets.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                prometheus_parse::Value::Summary(_) => f64::NAN,
            };
            let mut labels: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.sort();
            (s.metric, labels, value)
        })
        .collect()
}

/// The value of the sample `name` whose labels include `labels` (0 if absent).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| *v)
        .sum()
}

#[tokio::test]
async fn counters_move_with_requests_refusals_handshakes_and_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = ServerProcess::start(
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}/m.db?mode=rwc", dir.path().display()),
            ),
            ("DOORMAN_METRICS_BIND", format!("127.0.0.1:{port}")),
            ("DOORMAN_LOGIN_PER_MINUTE", "3".to_owned()),
        ],
        &dir.path().join("server.log"),
    )
    .await;
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let before = scrape(&metrics).await;

    // Never on the public port.
    assert_eq!(
        server
            .http
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    // A refused and an accepted request, an upgraded socket, a revocation that
    // closes it, and a rate-limited login.
    assert_eq!(
        server.me(Anonymous).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let tokens = server.user_with_tokens().await;
    assert_eq!(server.me(&tokens).await.status(), StatusCode::OK);
    let (mut ws, _) = server.ws(&tokens).welcomed().await;
    assert_eq!(
        server.logout(&tokens).await.status(),
        StatusCode::NO_CONTENT
    );
    let (code, _) = expect_close(&mut ws, Duration::from_secs(2)).await;
    assert_eq!(code, 4403);
    let mut limited = false;
    for _ in 0..5 {
        limited |= server
            .login("nobody@example.org", "wrong password")
            .await
            .status()
            == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(limited);

    let after = scrape(&metrics).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert_eq!(
        moved(
            "doorman_http_requests_total",
            &[("route", "me"), ("status", "401")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "doorman_http_requests_total",
            &[("route", "me"), ("status", "200")]
        ),
        1.0
    );
    assert!(
        moved(
            "doorman_http_requests_total",
            &[("route", "login"), ("status", "429")]
        ) >= 1.0
    );
    assert!(
        moved(
            "doorman_http_request_duration_seconds_count",
            &[("route", "me")]
        ) >= 2.0
    );
    assert_eq!(
        moved(
            "doorman_authentications_total",
            &[("source", "bearer"), ("outcome", "ok")]
        ),
        3.0,
        "GET /api/me, the handshake and the logout"
    );
    assert_eq!(
        moved(
            "doorman_authentications_total",
            &[("source", "bearer"), ("outcome", "session_revoked")]
        ),
        0.0
    );
    assert_eq!(
        moved("doorman_ws_handshakes_total", &[("outcome", "upgraded")]),
        1.0
    );
    assert_eq!(
        moved("doorman_revocations_total", &[("reason", "logout")]),
        1.0
    );
    assert_eq!(moved("doorman_revocation_close_seconds_count", &[]), 1.0);
    assert!(moved("doorman_rate_limited_total", &[("limit", "login")]) >= 1.0);
    assert_eq!(value(&after, "doorman_ws_sockets_open", &[]), 0.0);
    assert!(value(&after, "doorman_db_pool_connections", &[]) >= 1.0);
    // Labels are bounded: no path or id ever becomes a label value.
    for (name, labels, _) in &after {
        for (_, v) in labels {
            assert!(!v.contains('/') && v.len() < 40, "{name} {labels:?}");
        }
    }
}

/// Starts the binary with its metrics listener; returns it and the metrics URL.
async fn server_with_metrics(dir: &std::path::Path) -> (ServerProcess, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = ServerProcess::start(
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}/m.db?mode=rwc", dir.display()),
            ),
            ("DOORMAN_METRICS_BIND", format!("127.0.0.1:{port}")),
        ],
        &dir.join("server.log"),
    )
    .await;
    (server, format!("http://127.0.0.1:{port}/metrics"))
}

/// Issue 31, item 8: every family of docs/operations.md is in the first scrape
/// (at 0), so that alerts see a value before the first event; and credentials
/// refused before any token is read count like any other refusal.
#[tokio::test]
async fn every_family_is_there_from_the_start_and_every_refused_credential_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (server, metrics) = server_with_metrics(dir.path()).await;
    let first = scrape(&metrics).await;
    let operations = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"),
    )
    .unwrap();
    // The families the table names (`doorman_x` / `_y` rows name two).
    let mut families = Vec::new();
    for line in operations.lines().filter(|l| l.starts_with("| `doorman_")) {
        let cell = line.split('|').nth(1).unwrap();
        let names: Vec<&str> = cell
            .split('`')
            .filter(|s| s.starts_with("doorman_") || s.starts_with('_'))
            .collect();
        let first_name = names[0];
        for name in &names {
            families.push(if name.starts_with('_') {
                // `doorman_password_hashes_running` / `_queued`: the first name's
                // last word replaced.
                let stem = first_name
                    .rsplit_once('_')
                    .map_or(first_name, |(stem, _)| stem);
                format!("{stem}{name}")
            } else {
                (*name).to_owned()
            });
        }
    }
    assert!(families.len() >= 15, "{families:?}");
    for family in &families {
        // PostgreSQL only, set by the LISTEN connection when it starts.
        if family == "doorman_cluster_listener_connected" {
            continue;
        }
        assert!(
            first
                .iter()
                .any(|(name, _, _)| name == family || name.starts_with(&format!("{family}_"))),
            "{family} is not in the first scrape"
        );
    }
    for (source, outcome) in [
        ("bearer", "ok"),
        ("bearer", "invalid_token"),
        ("cookie", "invalid_token"),
        ("cookie", "origin_refused"),
        ("message", "session_revoked"),
    ] {
        assert!(
            first
                .iter()
                .any(|(name, labels, v)| name == "doorman_authentications_total"
                    && labels.contains(&("source".into(), source.into()))
                    && labels.contains(&("outcome".into(), outcome.into()))
                    && *v == 0.0),
            "{source} {outcome} at 0 from the start"
        );
    }

    // Refused before any token is read.
    let me = || server.me(Anonymous);
    let refused = [
        me().header("authorization", "Bearer a.b.c")
            .header("authorization", "Bearer d.e.f"),
        me().header("authorization", "Basic dXNlcjpwYXNz"),
        me().header("authorization", "Bearer "),
        me().header("cookie", "doorman_access=a.b.c; doorman_access=d.e.f"),
        me().header("cookie", "doorman_access=\"a.b.c"),
        me().header("cookie", "doorman_access=a.b.c")
            .origin("http://evil.example"),
    ];
    for call in refused {
        let status = call.await.status();
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN,
            "{status}"
        );
    }
    let after = scrape(&metrics).await;
    let moved = |labels: &[(&str, &str)]| {
        value(&after, "doorman_authentications_total", labels)
            - value(&first, "doorman_authentications_total", labels)
    };
    assert_eq!(
        moved(&[("source", "bearer"), ("outcome", "invalid_token")]),
        3.0
    );
    assert_eq!(
        moved(&[("source", "cookie"), ("outcome", "invalid_token")]),
        2.0
    );
    assert_eq!(
        moved(&[("source", "cookie"), ("outcome", "origin_refused")]),
        1.0
    );
}
