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
