pub use super::activity::Entity as Activity;
pub use super::refresh_token::Entity as RefreshToken;
pub use super::room::Entity as Room;
pub use super::room_member::Entity as RoomMember;
pub use super::room_message::Entity as RoomMessage;
pub use super::session::Entity as Session;
pub use super::signing_key::Entity as SigningKey;
pub use super::user::Entity as User;
