//! One publish into a room with many subscribers: the server CPU per delivered
//! message, and how long the last of them waits.
//!
//! Every subscriber socket is its own task that records when each message
//! arrived; the publisher sends one message, waits until every subscriber has it
//! (or 10 s pass), pauses, and sends the next. The server CPU is read around the
//! publishes only (the subscriptions are made before), so it is the cost of
//! delivery: the publish frame, one serialisation, and N copies onto N sockets.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt, stream};
use tokio_tungstenite::tungstenite::Message;

use crate::{CpuOf, Error, PlainSocket, open_bearer, raise_open_files};

const ROOM: &str = "fanout";

/// Against the server at `base` (doorman or the floor), with `token` as Bearer.
pub async fn run(
    base: &str,
    token: &str,
    cpu: &CpuOf,
    subscribers: usize,
    publishes: usize,
    sources: u8,
) -> Result<(), Error> {
    let limit = raise_open_files();
    if subscribers as u64 + 200 > limit {
        return Err(format!(
            "{subscribers} subscribers need more than the {limit} open files allowed"
        )
        .into());
    }
    let sources = sources.clamp(1, 250);
    let subs: Vec<PlainSocket> = stream::iter(0..subscribers)
        .map(|i| {
            let (base, token) = (base.to_owned(), token.to_owned());
            async move {
                let mut ws =
                    open_bearer(&base, &token, 2 + (i % usize::from(sources)) as u8).await?;
                subscribe(&mut ws).await?;
                Ok::<_, Error>(ws)
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;

    // Each publish counts its deliveries; each subscriber keeps its arrival times.
    let delivered: Arc<Vec<AtomicUsize>> =
        Arc::new((0..publishes).map(|_| AtomicUsize::new(0)).collect());
    let readers: Vec<_> = subs
        .into_iter()
        .map(|ws| tokio::spawn(read_messages(ws, publishes, Arc::clone(&delivered))))
        .collect();

    let mut publisher = open_bearer(base, token, 2).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu.ticks()?;
    let mut sent = Vec::with_capacity(publishes);
    for n in 0..publishes {
        let frame = format!(r#"{{"type":"publish","room":"{ROOM}","body":"{n}"}}"#);
        sent.push(Instant::now());
        publisher.send(Message::Text(frame.into())).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while delivered[n].load(Ordering::Relaxed) < subscribers && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        // Let the server finish its writes before the next one starts.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total: usize = delivered.iter().map(|d| d.load(Ordering::Relaxed)).sum();
    cpu.report(before, total as u64)?;

    // Per publish: when the last subscriber had it.
    let mut last = vec![Duration::ZERO; publishes];
    let mut all = Vec::with_capacity(total);
    for r in readers {
        let arrivals = r.await?;
        for (n, at) in arrivals.into_iter().enumerate() {
            if let Some(at) = at {
                let waited = at.saturating_duration_since(sent[n]);
                last[n] = last[n].max(waited);
                all.push(waited);
            }
        }
    }
    last.sort();
    all.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let pct = |v: &[Duration], p: f64| {
        v.get(((v.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    println!("fanout_subscribers: {subscribers}");
    println!("fanout_publishes: {publishes}");
    println!("fanout_delivered: {total} of {}", subscribers * publishes);
    println!("fanout_last_subscriber_p50_ms: {:.2}", ms(pct(&last, 0.50)));
    println!("fanout_last_subscriber_p99_ms: {:.2}", ms(pct(&last, 0.99)));
    println!("fanout_delivery_p99_ms: {:.2}", ms(pct(&all, 0.99)));
    let _ = publisher.close(None).await;
    Ok(())
}

async fn subscribe(ws: &mut PlainSocket) -> Result<(), Error> {
    let frame = format!(r#"{{"type":"subscribe","room":"{ROOM}"}}"#);
    ws.send(Message::Text(frame.into())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains(r#""type":"subscribed""#) => return Ok(()),
            Some(Ok(Message::Text(t))) if t.contains(r#""type":"error""#) => {
                return Err(format!("subscribe refused: {t}").into());
            }
            Some(Ok(_)) => continue,
            other => return Err(format!("no subscribed: {other:?}").into()),
        }
    }
}

/// Reads until `publishes` messages have arrived (or the socket ends), noting when
/// each one did. Only the body (the publish's number) is looked at: the client's
/// own parsing should not be what is measured.
async fn read_messages(
    mut ws: PlainSocket,
    publishes: usize,
    delivered: Arc<Vec<AtomicUsize>>,
) -> Vec<Option<Instant>> {
    let mut arrivals = vec![None; publishes];
    let mut seen = 0;
    while seen < publishes {
        let t = match ws.next().await {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => break,
        };
        let at = Instant::now();
        if !t.contains(r#""type":"message""#) {
            continue;
        }
        let Some(n) = t
            .split_once(r#""body":""#)
            .and_then(|(_, rest)| rest.split('"').next())
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n < publishes)
        else {
            continue;
        };
        if arrivals[n].is_none() {
            arrivals[n] = Some(at);
            seen += 1;
            delivered[n].fetch_add(1, Ordering::Relaxed);
        }
    }
    arrivals
}
