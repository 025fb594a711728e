//! Who may enter a private room: the `rooms` and `room_members` tables, and
//! [`Membership::admit`], the one check every door asks (WebSocket subscribe
//! and publish, and every HTTP room operation): membership, and the session's
//! level for a room that requires aal2.

use entity::{room, room_member, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, SqlErr,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{RoomError, RoomName};
use crate::auth::{UserId, assurance::Aal, db::Db};

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Owner,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Member => "member",
        }
    }
}

/// A private room.
#[derive(Debug, Clone)]
pub struct RoomInfo {
    pub name: String,
    pub owner_id: Uuid,
    pub created_at: OffsetDateTime,
    /// Only sessions at aal2 may enter.
    pub require_aal2: bool,
}

impl From<room::Model> for RoomInfo {
    fn from(m: room::Model) -> Self {
        Self {
            name: m.name,
            owner_id: m.owner_id,
            created_at: m.created_at,
            require_aal2: m.require_aal2,
        }
    }
}

/// What entering a room comes with.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    /// Since when the entrant may read its history (`None`: all of it).
    pub since: Option<OffsetDateTime>,
    /// The room requires aal2: a session that drops to aal1 is taken out.
    pub aal2: bool,
}

/// One member of a private room.
#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: Uuid,
    pub display_name: String,
    pub role: Role,
    pub added_at: OffsetDateTime,
}

/// Caps on private rooms and memberships: what one user's requests may make the
/// tables hold (`DOORMAN_MAX_ROOMS_PER_USER`, `DOORMAN_MAX_MEMBERSHIPS_PER_USER`,
/// `DOORMAN_MAX_ROOM_MEMBERS`). Checked in the transaction that writes the row.
/// Adds hold the room's and the member's rows, so the member caps hold under
/// concurrent adds; creations racing for a user's last place may pass the room
/// caps together, by at most their number (creations are rate-limited too).
#[derive(Debug, Clone, Copy)]
pub struct RoomCaps {
    /// Rooms one user may own.
    pub rooms_per_user: usize,
    /// Rooms one user may belong to (owned ones included).
    pub memberships_per_user: usize,
    /// Members one room may have (its owner included).
    pub members_per_room: usize,
}

impl Default for RoomCaps {
    fn default() -> Self {
        Self {
            rooms_per_user: 100,
            memberships_per_user: 500,
            members_per_room: 1000,
        }
    }
}

/// One page of a list, and the cursor of the next page if there is one.
#[derive(Debug, Clone)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// `rows` fetched with one more than `limit`: the extra one says there is a
    /// next page, which starts after the last item kept.
    fn of(mut rows: Vec<T>, limit: usize, cursor: impl Fn(&T) -> C) -> Self {
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(cursor)
        } else {
            None
        };
        Self { items: rows, next }
    }
}

/// The membership tables.
#[derive(Clone)]
pub struct Membership {
    db: Db,
    caps: RoomCaps,
}

impl Membership {
    pub fn new(db: Db, caps: RoomCaps) -> Self {
        Self { db, caps }
    }

    /// How many rooms `user` belongs to.
    async fn memberships(db: &impl ConnectionTrait, user: UserId) -> Result<u64, sea_orm::DbErr> {
        room_member::Entity::find()
            .filter(room_member::Column::UserId.eq(user.0))
            .count(db)
            .await
    }

    /// Whether `user`, whose session is at `aal`, may subscribe to, publish to and
    /// read `room`: anyone signed in for a public room, members only for a private
    /// one, and members at aal2 only for one that requires it. An unclaimed private
    /// name is `Forbidden` too, so no answer tells a stranger whether it exists.
    pub async fn admit(
        &self,
        room: &RoomName,
        user: UserId,
        aal: Aal,
    ) -> Result<Admission, RoomError> {
        if !room.is_private() {
            return Ok(Admission {
                since: None,
                aal2: false,
            });
        }
        let (member, room_row) =
            room_member::Entity::find_by_id((room.as_str().to_owned(), user.0))
                .find_also_related(room::Entity)
                .one(&self.db)
                .await
                .map_err(RoomError::db)?
                .ok_or(RoomError::Forbidden)?;
        let aal2 = room_row.is_some_and(|r| r.require_aal2);
        if aal2 && aal < Aal::Aal2 {
            return Err(RoomError::SecondFactorRequired);
        }
        Ok(Admission {
            since: Some(member.added_at),
            aal2,
        })
    }

    /// `user`'s row among a private room's members, if any.
    async fn member(
        &self,
        room: &RoomName,
        user: UserId,
    ) -> Result<Option<room_member::Model>, RoomError> {
        room_member::Entity::find_by_id((room.as_str().to_owned(), user.0))
            .one(&self.db)
            .await
            .map_err(RoomError::db)
    }

    /// `user`'s role in a private room, if any.
    async fn role(&self, room: &RoomName, user: UserId) -> Result<Option<Role>, RoomError> {
        Ok(self.member(room, user).await?.map(|m| {
            if m.role == "owner" {
                Role::Owner
            } else {
                Role::Member
            }
        }))
    }

    /// Owner-only operations: `Forbidden` for anyone else, members included.
    pub async fn require_owner(&self, room: &RoomName, user: UserId) -> Result<(), RoomError> {
        if !room.is_private() {
            return Err(RoomError::NotPrivate);
        }
        match self.role(room, user).await? {
            Some(Role::Owner) => Ok(()),
            _ => Err(RoomError::Forbidden),
        }
    }

    /// Claims a private name for `owner`, who becomes its first member.
    pub async fn create(
        &self,
        room: &RoomName,
        owner: UserId,
        require_aal2: bool,
    ) -> Result<RoomInfo, RoomError> {
        if !room.is_private() {
            return Err(RoomError::NotPrivate);
        }
        let now = OffsetDateTime::now_utc();
        let name = room.as_str().to_owned();
        let caps = self.caps;
        let created = self
            .db
            .transaction(async |txn| {
                let owned = room::Entity::find()
                    .filter(room::Column::OwnerId.eq(owner.0))
                    .count(txn)
                    .await?;
                if owned >= caps.rooms_per_user as u64 {
                    return Ok(Err(RoomError::TooManyRooms));
                }
                if Self::memberships(txn, owner).await? >= caps.memberships_per_user as u64 {
                    return Ok(Err(RoomError::TooManyMemberships));
                }
                let model = room::ActiveModel {
                    name: Set(name.clone()),
                    owner_id: Set(owner.0),
                    created_at: Set(now),
                    require_aal2: Set(require_aal2),
                }
                .insert(txn)
                .await?;
                room_member::ActiveModel {
                    room: Set(name.clone()),
                    user_id: Set(owner.0),
                    role: Set(Role::Owner.as_str().to_owned()),
                    added_at: Set(now),
                }
                .insert(txn)
                .await?;
                Ok(Ok(model))
            })
            .await;
        match created {
            Ok(model) => Ok(model?.into()),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Err(RoomError::Exists)
            }
            Err(e) => Err(RoomError::db(e)),
        }
    }

    /// The private rooms `user` owns or belongs to, by name: at most `limit` of
    /// them after the name `after`.
    pub async fn rooms_of(
        &self,
        user: UserId,
        after: Option<&RoomName>,
        limit: usize,
    ) -> Result<Page<RoomInfo, String>, RoomError> {
        let mut query = room_member::Entity::find().filter(room_member::Column::UserId.eq(user.0));
        if let Some(after) = after {
            query = query.filter(room_member::Column::Room.gt(after.as_str()));
        }
        let rows = query
            .order_by_asc(room_member::Column::Room)
            .limit(limit as u64 + 1)
            .find_also_related(room::Entity)
            .all(&self.db)
            .await
            .map_err(RoomError::db)?;
        let rooms = rows
            .into_iter()
            .filter_map(|(_, room)| room.map(RoomInfo::from))
            .collect();
        Ok(Page::of(rooms, limit, |r: &RoomInfo| r.name.clone()))
    }

    /// Deletes a room (owner only); its members go with it.
    pub async fn delete(&self, room: &RoomName, by: UserId) -> Result<(), RoomError> {
        self.require_owner(room, by).await?;
        room::Entity::delete_by_id(room.as_str().to_owned())
            .exec(&self.db)
            .await
            .map_err(RoomError::db)?;
        Ok(())
    }

    /// The members (visible to members only): the owner first, then the others by
    /// user id, at most `limit` of them after the member `after` (the owner only
    /// on the first page).
    pub async fn members(
        &self,
        room: &RoomName,
        by: UserId,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Page<Member, Uuid>, RoomError> {
        if !room.is_private() {
            return Err(RoomError::NotPrivate);
        }
        // Members only (listing them is not entering: no level asked).
        self.member(room, by).await?.ok_or(RoomError::Forbidden)?;
        let in_room =
            || room_member::Entity::find().filter(room_member::Column::Room.eq(room.as_str()));
        let mut rows = Vec::with_capacity(limit.min(64) + 1);
        let mut others = in_room().filter(room_member::Column::Role.ne(Role::Owner.as_str()));
        match after {
            Some(after) => {
                // The owner comes first whatever its id: after the owner, the others
                // start from the lowest id (members whose id sorts below the owner's
                // were skipped when the cursor was compared as an id).
                let owner = in_room()
                    .filter(room_member::Column::Role.eq(Role::Owner.as_str()))
                    .one(&self.db)
                    .await
                    .map_err(RoomError::db)?
                    .map(|m| m.user_id);
                if owner != Some(after) {
                    others = others.filter(room_member::Column::UserId.gt(after));
                }
            }
            None => rows.extend(
                in_room()
                    .filter(room_member::Column::Role.eq(Role::Owner.as_str()))
                    .find_also_related(user::Entity)
                    .one(&self.db)
                    .await
                    .map_err(RoomError::db)?,
            ),
        }
        let take = (limit + 1).saturating_sub(rows.len());
        rows.extend(
            others
                .order_by_asc(room_member::Column::UserId)
                .limit(take as u64)
                .find_also_related(user::Entity)
                .all(&self.db)
                .await
                .map_err(RoomError::db)?,
        );
        let members: Vec<Member> = rows
            .into_iter()
            .filter_map(|(m, u)| {
                let u = u?;
                Some(Member {
                    user_id: m.user_id,
                    display_name: u.display_name,
                    role: if m.role == "owner" {
                        Role::Owner
                    } else {
                        Role::Member
                    },
                    added_at: m.added_at,
                })
            })
            .collect();
        Ok(Page::of(members, limit, |m: &Member| m.user_id))
    }

    /// Adds a member (owner only; idempotent). `UnknownUser` for an id with no account.
    pub async fn add(&self, room: &RoomName, user: UserId, by: UserId) -> Result<(), RoomError> {
        self.require_owner(room, by).await?;
        let caps = self.caps;
        let name = room.as_str().to_owned();
        // The checks and the insert in one transaction that holds the room's row and
        // the new member's (PostgreSQL: `FOR UPDATE`; SQLite: one writer at a time):
        // adds racing for a room's last places, or for a user's, wait for each other
        // instead of all passing the cap (the outside attack saw a cap of 5 reach
        // 28 members with 30 concurrent adds). Always room, then user: no two adds
        // wait for each other in a circle.
        self.db
            .write_transaction(async |txn| {
                if room::Entity::find_by_id(name.clone())
                    .lock_exclusive()
                    .one(txn)
                    .await?
                    .is_none()
                {
                    return Ok(Err(RoomError::Gone));
                }
                if user::Entity::find_by_id(user.0)
                    .lock_exclusive()
                    .one(txn)
                    .await?
                    .is_none()
                {
                    return Ok(Err(RoomError::UnknownUser));
                }
                // Adding a member twice changes nothing, whatever the caps say now.
                let already = room_member::Entity::find()
                    .filter(room_member::Column::Room.eq(name.as_str()))
                    .filter(room_member::Column::UserId.eq(user.0))
                    .one(txn)
                    .await?;
                if already.is_some() {
                    return Ok(Ok(()));
                }
                let members = room_member::Entity::find()
                    .filter(room_member::Column::Room.eq(name.as_str()))
                    .count(txn)
                    .await?;
                if members >= caps.members_per_room as u64 {
                    return Ok(Err(RoomError::RoomFull));
                }
                if Self::memberships(txn, user).await? >= caps.memberships_per_user as u64 {
                    return Ok(Err(RoomError::TooManyMemberships));
                }
                room_member::ActiveModel {
                    room: Set(name.clone()),
                    user_id: Set(user.0),
                    role: Set(Role::Member.as_str().to_owned()),
                    added_at: Set(OffsetDateTime::now_utc()),
                }
                .insert(txn)
                .await?;
                Ok(Ok(()))
            })
            .await
            .map_err(RoomError::db)?
    }

    /// Removes a member: the owner removes anyone but themselves, a member removes
    /// themselves (leaves). Removing someone who is not a member is done already.
    pub async fn remove(&self, room: &RoomName, user: UserId, by: UserId) -> Result<(), RoomError> {
        if !room.is_private() {
            return Err(RoomError::NotPrivate);
        }
        let role = self.role(room, by).await?;
        match role {
            Some(Role::Owner) if user == by => return Err(RoomError::OwnerCannotLeave),
            Some(Role::Owner) => {}
            Some(Role::Member) if user == by => {}
            _ => return Err(RoomError::Forbidden),
        }
        room_member::Entity::delete_by_id((room.as_str().to_owned(), user.0))
            .exec(&self.db)
            .await
            .map_err(RoomError::db)?;
        Ok(())
    }
}
