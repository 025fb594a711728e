//! Limits on rooms and memberships (issue 31, item 5): how many rooms a user owns
//! and joins, how many members a room has, how fast rooms are created, and lists
//! that come a page at a time.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

/// The names of one page, and the `Link` header's next URL (path and query).
async fn page(app: &TestApp, who: &Tokens, path: &str) -> (Vec<String>, Option<String>) {
    let resp = app.call(Method::GET, path, who).await;
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    let next = resp.headers().get("link").map(|v| {
        let v = v.to_str().expect("ascii");
        assert!(v.ends_with(r#">; rel="next""#), "{v}");
        v[1..v.find('>').expect("<…>")].to_owned()
    });
    let body: Value = resp.json().await.expect("json");
    let names = body
        .as_array()
        .unwrap_or_else(|| panic!("still an array: {body}"))
        .iter()
        .map(|r| {
            r.get("name")
                .or_else(|| r.get("user_id"))
                .and_then(Value::as_str)
                .expect("name or user_id")
                .to_owned()
        })
        .collect();
    (names, next)
}

/// Follows `Link: rel="next"` from `first` to the end; returns every page.
async fn all_pages(app: &TestApp, who: &Tokens, first: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_owned());
    while let Some(path) = next {
        let (names, link) = page(app, who, &path).await;
        pages.push(names);
        next = link;
        assert!(pages.len() < 100, "the pages end");
    }
    pages
}

#[tokio::test]
async fn room_creation_is_rate_limited_per_user() {
    let app = spawn_with(|c| c.room_create_per_minute = 3).await;
    let alice = app.user_with_tokens().await;
    for i in 0..3 {
        let resp = app.create_room(&alice, &format!("private:r{i}")).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let resp = app.create_room(&alice, "private:r3").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_error(resp, 429, "rate_limited").await;
    // Another user has a budget of their own.
    let bob = app.user_with_tokens().await;
    let resp = app.create_room(&bob, "private:b0").await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_user_owns_and_joins_only_so_many_rooms_and_a_room_holds_only_so_many_members() {
    let app = spawn_with(|c| {
        c.max_rooms_per_user = 2;
        c.max_memberships_per_user = 3;
        c.max_room_members = 3;
    })
    .await;
    let alice = app.user_with_tokens().await;
    let bob = app.user_with_tokens().await;
    let carol = app.user_with_tokens().await;
    let dave = app.user_with_tokens().await;

    // Rooms owned: two, then 409 `limit_reached`; deleting one frees a place.
    for name in ["private:a1", "private:a2"] {
        assert_eq!(
            app.create_room(&alice, name).await.status(),
            StatusCode::CREATED
        );
    }
    assert_error(
        app.create_room(&alice, "private:a3").await,
        409,
        "limit_reached",
    )
    .await;
    assert_eq!(
        app.delete_room(&alice, "private:a2").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.create_room(&alice, "private:a3").await.status(),
        StatusCode::CREATED
    );

    // Members of a room: three, the owner included.
    for who in [&bob, &carol] {
        let resp = app.add_member(&alice, "private:a1", &who.user_id).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    }
    let resp = app.add_member(&alice, "private:a1", &dave.user_id).await;
    assert_error(resp, 409, "limit_reached").await;
    // Adding a member again is still done, full or not.
    let resp = app.add_member(&alice, "private:a1", &bob.user_id).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    // Rooms joined: nobody can add dave to more than three rooms.
    let owners = [
        app.user_with_tokens().await,
        app.user_with_tokens().await,
        app.user_with_tokens().await,
        app.user_with_tokens().await,
    ];
    for (i, owner) in owners.iter().enumerate() {
        let room = format!("private:o{i}");
        assert_eq!(
            app.create_room(owner, &room).await.status(),
            StatusCode::CREATED
        );
        let resp = app.add_member(owner, &room, &dave.user_id).await;
        if i < 3 {
            assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        } else {
            assert_error(resp, 409, "limit_reached").await;
        }
    }
    // And dave, belonging to three, cannot create a fourth either.
    assert_error(
        app.create_room(&dave, "private:d").await,
        409,
        "limit_reached",
    )
    .await;
}

#[tokio::test]
async fn room_and_member_lists_come_a_page_at_a_time() {
    let app = spawn_with(|c| c.room_create_per_minute = 1000).await;
    let alice = app.user_with_tokens().await;
    let mut rooms: Vec<String> = (0..7).map(|i| format!("private:room{i:02}")).collect();
    for room in &rooms {
        assert_eq!(
            app.create_room(&alice, room).await.status(),
            StatusCode::CREATED
        );
    }
    rooms.sort();

    // Without a limit: one page, no Link, the same array as before.
    assert_eq!(
        all_pages(&app, &alice, "/api/rooms").await,
        vec![rooms.clone()]
    );
    // Three at a time: 3 + 3 + 1, in name order, each room once.
    let pages = all_pages(&app, &alice, "/api/rooms?limit=3").await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 1]
    );
    assert_eq!(pages.concat(), rooms);
    // An exact fit ends without an empty page.
    let pages = all_pages(&app, &alice, "/api/rooms?limit=7").await;
    assert_eq!(pages, vec![rooms.clone()]);
    // Bad paging input is a 400, never a 500.
    for bad in ["limit=0", "limit=501", "limit=x", "after=not%20a%20room"] {
        let resp = app
            .call(Method::GET, &format!("/api/rooms?{bad}"), &alice)
            .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
    }

    // Members: the owner first, then the others, each once.
    let mut others = Vec::new();
    for _ in 0..4 {
        let who = app.user_with_tokens().await;
        let resp = app.add_member(&alice, "private:room00", &who.user_id).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        others.push(who.user_id.clone());
    }
    others.sort();
    let path = "/api/rooms/private:room00/members?limit=2";
    let pages = all_pages(&app, &alice, path).await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![2, 2, 1]
    );
    let all = pages.concat();
    assert_eq!(all[0], alice.user_id);
    assert_eq!(all[1..], others[..]);
    let resp = app
        .call(
            Method::GET,
            "/api/rooms/private:room00/members?after=nope",
            &alice,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

/// Found by the outside attack: paging members one at a time ended after the owner
/// when a member's id sorted below the owner's (ids are time-ordered: a user who
/// registered before the owner), since the cursor after the owner's page was the
/// owner's id.
#[tokio::test]
async fn members_who_registered_before_the_owner_are_on_a_page_too() {
    let app = spawn_with(|c| c.room_create_per_minute = 1000).await;
    // Registered first: their ids sort below the owner's.
    let early: Vec<String> = {
        let mut ids = Vec::new();
        for _ in 0..2 {
            ids.push(app.user_with_tokens().await.user_id);
        }
        ids.sort();
        ids
    };
    let owner = app.user_with_tokens().await;
    assert!(early.iter().all(|id| *id < owner.user_id));
    assert_eq!(
        app.create_room(&owner, "private:early").await.status(),
        StatusCode::CREATED
    );
    for id in &early {
        let resp = app.add_member(&owner, "private:early", id).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    }
    for limit in [1, 2] {
        let path = format!("/api/rooms/private:early/members?limit={limit}");
        let all = all_pages(&app, &owner, &path).await.concat();
        let mut want = vec![owner.user_id.clone()];
        want.extend(early.iter().cloned());
        assert_eq!(all, want, "limit={limit}");
    }
}

#[tokio::test]
async fn concurrent_adds_never_pass_the_member_caps() {
    // The outside attack's race: a cap of 5 members, 30 adds at once with distinct
    // users; on PostgreSQL the room ended with 8 to 28 members.
    let app = spawn_with(|c| {
        c.max_room_members = 5;
        c.max_memberships_per_user = 3;
        c.room_create_per_minute = 1000;
    })
    .await;
    let alice = app.user_with_tokens().await;
    assert_eq!(
        app.create_room(&alice, "private:race").await.status(),
        StatusCode::CREATED
    );
    let mut users = Vec::new();
    for _ in 0..30 {
        users.push(app.user_with_tokens().await);
    }
    let adds = users
        .iter()
        .map(|u| app.add_member(&alice, "private:race", &u.user_id).send());
    let answers = futures_util::future::join_all(adds).await;
    let statuses: Vec<u16> = answers.into_iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 204).count(),
        4,
        "four places besides the owner's: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| s == 204 || s == 409),
        "{statuses:?}"
    );
    let (members, _) = page(&app, &alice, "/api/rooms/private:race/members").await;
    assert_eq!(members.len(), 5, "{members:?}");

    // And a user's own cap: eight owners adding one user at once; three places.
    let dave = app.user_with_tokens().await;
    let mut owners = Vec::new();
    for i in 0..8 {
        let owner = app.user_with_tokens().await;
        let room = format!("private:d{i}");
        assert_eq!(
            app.create_room(&owner, &room).await.status(),
            StatusCode::CREATED
        );
        owners.push((owner, room));
    }
    let adds = owners
        .iter()
        .map(|(o, room)| app.add_member(o, room, &dave.user_id).send());
    let answers = futures_util::future::join_all(adds).await;
    let added = answers
        .into_iter()
        .filter(|r| r.status() == StatusCode::NO_CONTENT)
        .count();
    assert_eq!(added, 3);
}
