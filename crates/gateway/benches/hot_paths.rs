//! The gateway's hot functions: parsing a client frame, serialising an event once, and fanning a
//! frame out to N local connections (the per-recipient cost of a message).
//!
//! Full run: `taskset -c 0 cargo bench -p parlor-gateway --bench hot_paths`.
//! CI runs every benchmark once (`cargo test --benches`) so they cannot rot.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use parlor_broker::LocalBus;
use parlor_domain::bus::{BusEvent, Envelope, Frame, Topic};
use parlor_domain::model::{Message, User};
use parlor_domain::ports::Bus;
use parlor_domain::protocol::{ClientFrame, ServerEvent};
use parlor_domain::{MessageId, RoomId, SessionId, Timestamp, UserId};
use parlor_gateway::hub::Hub;
use std::hint::black_box;

fn message(body: &str) -> Message {
    Message {
        id: MessageId::generate(),
        room_id: RoomId::from("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
        seq: 123_456,
        author: User {
            id: UserId::generate(),
            username: "alice".into(),
            display_name: "Alice Moreau".into(),
            created_at: Timestamp::now(),
        },
        body: body.to_owned(),
        html: format!("<p>{body}</p>"),
        mentions: Vec::new(),
        reply_to: None,
        nonce: Some("n-000001".into()),
        created_at: Timestamp::now(),
        edited_at: None,
        deleted: false,
    }
}

const TYPICAL: &str = "sure, I'll push the fix after lunch and ping you on the PR";

fn frames(c: &mut Criterion) {
    let send = serde_json::json!({
        "type": "send", "room_id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "body": TYPICAL, "nonce": "n-000001"
    })
    .to_string();
    let mut group = c.benchmark_group("frames");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_send", |b| {
        b.iter(|| serde_json::from_slice::<ClientFrame>(black_box(send.as_bytes())))
    });
    let event = ServerEvent::MessageCreated { message: message(TYPICAL) };
    group.bench_function("serialise_message_created", |b| b.iter(|| black_box(&event).to_bytes()));
    group.finish();
}

fn fanout(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let mut group = c.benchmark_group("fanout");
    for receivers in [10usize, 500] {
        let room = RoomId::from("room-1");
        let (hub, queues) = rt.block_on(async {
            let bus = LocalBus::new();
            let (subs, _events) = bus.subscriber().await.expect("a subscriber");
            let hub = Hub::new(subs, "bench-gateway".into());
            let mut queues = Vec::with_capacity(receivers);
            for i in 0..receivers {
                let conn = hub
                    .register(
                        UserId::from(format!("user-{i}")),
                        SessionId::from(format!("s-{i}")),
                        std::slice::from_ref(&room),
                        64,
                    )
                    .await;
                queues.push(conn);
            }
            (hub, queues)
        });
        let bytes = ServerEvent::MessageCreated { message: message(TYPICAL) }.to_bytes();
        let envelope = Envelope {
            topic: Topic::Room(room.clone()),
            event: BusEvent::Message { room_id: room.clone(), seq: 1, frame: Frame(bytes) },
        };
        group.throughput(Throughput::Elements(receivers as u64));
        group.bench_function(format!("dispatch_to_{receivers}"), |b| {
            b.iter_batched(
                || {
                    // Empty every queue, so that each iteration delivers to all of them.
                    for conn in &queues {
                        while conn.outbox.pop().is_some() {}
                    }
                },
                |()| rt.block_on(hub.dispatch(&envelope)),
                BatchSize::PerIteration,
            )
        });
        let delivered = queues.iter().filter_map(|conn| conn.outbox.pop()).count();
        assert_eq!(delivered, receivers, "every connection got the frame");
    }
    group.finish();
}

criterion_group!(benches, frames, fanout);
criterion_main!(benches);
