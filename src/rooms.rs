//! Rooms: named fan-out groups of sockets. The WebSocket route subscribes sockets;
//! the WebSocket `publish` frame and `POST /api/rooms/{room}/messages` publish.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{auth::UserId, http::error::Error};

/// The longest message body, in characters, over HTTP and WebSocket alike (the
/// spec's `maxLength` of `PublishRequest.body`).
pub const MAX_BODY_CHARS: usize = 4096;

/// One socket's id, unique within an instance.
pub type ConnId = u64;

/// A socket's queue of outgoing text frames. Frames are serialised once and shared.
pub type Outbox = mpsc::Sender<Arc<str>>;

/// A validated room name: 1 to 64 of `A-Z a-z 0-9 _ - .`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomName(String);

impl RoomName {
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Error::Invalid(
                "room must be 1 to 64 characters of A-Z a-z 0-9 _ - .".into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Serialize)]
struct MessageFrame<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    id: Uuid,
    room: &'a str,
    from: UserId,
    body: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    sent_at: OffsetDateTime,
}

/// A message on its way to other instances: the room and the serialised frame.
pub struct Relayed {
    pub room: RoomName,
    pub frame: Arc<str>,
}

/// The room table of this instance.
#[derive(Clone, Default)]
pub struct Rooms {
    inner: Arc<Mutex<HashMap<RoomName, HashMap<ConnId, Outbox>>>>,
    /// Where published messages go to reach other instances (PostgreSQL only).
    relay: Arc<OnceLock<mpsc::Sender<Relayed>>>,
}

impl Rooms {
    pub fn subscribe(&self, room: &RoomName, conn: ConnId, outbox: Outbox) {
        self.lock()
            .entry(room.clone())
            .or_default()
            .insert(conn, outbox);
    }

    pub fn unsubscribe(&self, room: &RoomName, conn: ConnId) {
        let mut rooms = self.lock();
        if let Some(members) = rooms.get_mut(room) {
            members.remove(&conn);
            if members.is_empty() {
                rooms.remove(room);
            }
        }
    }

    /// Sends every published message to `relay` too, for other instances.
    pub fn set_relay(&self, relay: mpsc::Sender<Relayed>) {
        let _ = self.relay.set(relay);
    }

    /// Publishes a `message` frame to the room's subscribers here and, through the
    /// relay, on every other instance. Returns how many sockets here got it.
    pub fn publish(&self, room: &RoomName, from: UserId, body: &str) -> usize {
        let frame = MessageFrame {
            ty: "message",
            id: Uuid::now_v7(),
            room: room.as_str(),
            from,
            body,
            sent_at: OffsetDateTime::now_utc(),
        };
        let Ok(text) = serde_json::to_string(&frame) else {
            return 0;
        };
        let frame: Arc<str> = text.into();
        let delivered = self.deliver(room, &frame);
        if let Some(relay) = self.relay.get()
            && relay
                .try_send(Relayed {
                    room: room.clone(),
                    frame,
                })
                .is_err()
        {
            tracing::warn!(
                room = room.as_str(),
                "relay queue full; message not sent to other instances"
            );
        }
        delivered
    }

    /// Delivers a serialised frame to this instance's subscribers; returns how many
    /// got it. A subscriber whose queue is full (it stopped reading) misses the
    /// message rather than slowing everyone else down.
    pub fn deliver(&self, room: &RoomName, frame: &Arc<str>) -> usize {
        let rooms = self.lock();
        rooms.get(room).map_or(0, |members| {
            members
                .values()
                .filter(|outbox| outbox.try_send(frame.clone()).is_ok())
                .count()
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RoomName, HashMap<ConnId, Outbox>>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_short_and_plain() {
        assert!(RoomName::parse("lobby-1.en_GB").is_ok());
        for bad in ["", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(RoomName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
