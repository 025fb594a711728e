//! Who is in which room, counted across tabs and instances.
//!
//! Each instance holds the same view: for every room and user, the instances
//! where that user has at least one subscribed socket, and since when. Local
//! changes apply at once; other instances' changes arrive through the cluster
//! bridge. A user is *present* while any instance holds them: the first instance
//! in is a `join`, the last one out a `leave`. Each instance tells only its own
//! subscribers, from its own view, so every subscriber hears each transition once.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::RoomName;
use crate::auth::UserId;

/// Where a user is held: this instance (`None`) or another one.
pub type Holder = Option<Uuid>;

/// A change of who is present (on the wire: a `presence` frame's `event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    /// The user's first socket joined.
    Join,
    /// The user's last socket left.
    Leave,
}

#[derive(Default)]
pub struct PresenceView {
    rooms: HashMap<RoomName, HashMap<UserId, HashMap<Holder, OffsetDateTime>>>,
}

impl PresenceView {
    /// `holder` now holds `user` in `room`; `Join` if nobody held them before.
    pub fn add(
        &mut self,
        room: &RoomName,
        user: UserId,
        holder: Holder,
        since: OffsetDateTime,
    ) -> Option<Transition> {
        let holders = self
            .rooms
            .entry(room.clone())
            .or_default()
            .entry(user)
            .or_default();
        let was_present = !holders.is_empty();
        holders.entry(holder).or_insert(since);
        (!was_present).then_some(Transition::Join)
    }

    /// `holder` no longer holds `user` in `room`; `Leave` if nobody does now.
    pub fn remove(&mut self, room: &RoomName, user: UserId, holder: Holder) -> Option<Transition> {
        let users = self.rooms.get_mut(room)?;
        let holders = users.get_mut(&user)?;
        holders.remove(&holder)?;
        if !holders.is_empty() {
            return None;
        }
        users.remove(&user);
        if users.is_empty() {
            self.rooms.remove(room);
        }
        Some(Transition::Leave)
    }

    /// Drops everything `holder` held (an instance that died or restarted); the
    /// users nobody holds any more, by room.
    pub fn drop_holder(&mut self, holder: Holder) -> Vec<(RoomName, UserId)> {
        let mut left = Vec::new();
        self.rooms.retain(|room, users| {
            users.retain(|user, holders| {
                if holders.remove(&holder).is_some() && holders.is_empty() {
                    left.push((room.clone(), *user));
                    return false;
                }
                !holders.is_empty()
            });
            !users.is_empty()
        });
        left
    }

    /// Everything `holder` holds: `(room, user, since)`.
    pub fn held_by(&self, holder: Holder) -> Vec<(RoomName, UserId, OffsetDateTime)> {
        let mut out = Vec::new();
        for (room, users) in &self.rooms {
            for (user, holders) in users {
                if let Some(since) = holders.get(&holder) {
                    out.push((room.clone(), *user, *since));
                }
            }
        }
        out
    }

    /// The users present in a room, with the earliest time any instance saw them.
    pub fn present(&self, room: &RoomName) -> Vec<(UserId, OffsetDateTime)> {
        let mut users: Vec<(UserId, OffsetDateTime)> = self
            .rooms
            .get(room)
            .map(|users| {
                users
                    .iter()
                    .filter_map(|(user, holders)| holders.values().min().map(|t| (*user, *t)))
                    .collect()
            })
            .unwrap_or_default();
        users.sort_by_key(|(user, since)| (*since, user.0));
        users
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_in_joins_and_last_out_leaves_across_holders() {
        let mut view = PresenceView::default();
        let room = RoomName::parse("lobby").unwrap();
        let ann = UserId(Uuid::now_v7());
        let other = Some(Uuid::now_v7());
        let t = OffsetDateTime::now_utc();
        assert_eq!(view.add(&room, ann, None, t), Some(Transition::Join));
        assert_eq!(view.add(&room, ann, other, t), None);
        assert_eq!(view.add(&room, ann, None, t), None);
        assert_eq!(view.remove(&room, ann, None), None);
        assert_eq!(view.present(&room).len(), 1);
        assert_eq!(view.drop_holder(other), vec![(room.clone(), ann)]);
        assert!(view.present(&room).is_empty());
        assert_eq!(view.remove(&room, ann, other), None);
    }
}
