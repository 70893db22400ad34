//! Appending messages to a room in the embedded SQLite store: one commit per batch (the worker's
//! group commit), so the per-message cost falls as the batch grows.
//!
//! Full run: `taskset -c 0 cargo bench -p parlor-store --bench append`.
//! CI runs every benchmark once (`cargo test --benches`) so they cannot rot.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parlor_domain::Timestamp;
use parlor_domain::model::Visibility;
use parlor_domain::ports::{MessageStore, NewRoom, NewUser, Prepared, RoomStore, UserStore};
use parlor_domain::queue::{Command, Outcome};
use parlor_domain::{RoomId, UserId};
use parlor_store::sqlite::SqliteStore;

fn create(room: &RoomId, author: &UserId) -> Prepared {
    let body = "sure, I'll push the fix after lunch and ping you on the PR";
    Prepared {
        command: Command::Create {
            room_id: room.clone(),
            author_id: author.clone(),
            body: body.into(),
            nonce: None,
            reply_to: None,
        },
        html: format!("<p>{body}</p>"),
        mentions: Vec::new(),
        now: Timestamp::now(),
        notify_at: None,
    }
}

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (store, room, author) = rt.block_on(async {
        let store = SqliteStore::open(&dir.path().join("bench.db")).await.expect("SQLite opens");
        let author = UserId::generate();
        store
            .create_user(NewUser {
                id: author.clone(),
                username: "alice".into(),
                display_name: "Alice".into(),
                email: None,
                password_hash: "h".into(),
                phrase_hash: "p".into(),
                created_at: Timestamp::now(),
            })
            .await
            .expect("a user");
        let room = RoomId::generate();
        store
            .create_room(NewRoom {
                id: room.clone(),
                name: "general".into(),
                topic: None,
                visibility: Visibility::Public,
                owner_id: author.clone(),
                created_at: Timestamp::now(),
            })
            .await
            .expect("a room");
        (store, room, author)
    });
    let mut group = c.benchmark_group("sqlite_append");
    group.sample_size(20);
    for batch in [1usize, 100] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch_of_{batch}"), |b| {
            b.iter(|| {
                let prepared: Vec<Prepared> = (0..batch).map(|_| create(&room, &author)).collect();
                let outcomes = rt.block_on(store.apply(&prepared)).expect("the batch commits");
                assert!(outcomes.iter().all(|o| matches!(o, Outcome::Created { created: true, .. })));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
