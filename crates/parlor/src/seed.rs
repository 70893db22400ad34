//! `parlor seed`: a lively demo in the configured database. Accounts are registered through
//! `Accounts` (the code behind `POST /auth/register`), rooms and memberships made through the
//! store's ports as the API makes them, and every message is reviewed and rendered by the
//! moderation role, then applied with `MessageStore::apply` as the worker applies it, dated over
//! the past three days. Each step looks first and adds only what is missing, so running the
//! command again changes nothing.

use crate::admin::{accounts, open};
use crate::settings::SeedArgs;
use anyhow::{Context, bail};
use parlor_domain::model::{Role, Room, RoomKind, Visibility};
use parlor_domain::ports::{NewRoom, Prepared, ReviewRequest, Reviewer, Store, Verdict};
use parlor_domain::queue::{Command, Outcome};
use parlor_domain::{Error, MessageId, RoomId, Timestamp, UserId, validate};
use parlor_moderation::{ModerationSettings, Moderator};
use std::collections::HashMap;
use std::sync::Arc;

/// The demo users: username and display name.
const USERS: &[(&str, &str)] = &[
    ("alice", "Alice Moreau"),
    ("bob", "Bob Tanaka"),
    ("carol", "Carol Nguyen"),
    ("dave", "Dave Okafor"),
    ("erin", "Erin Lindqvist"),
    ("frank", "Frank Rossi"),
];

/// A demo room: its key in the script, name, topic, visibility, owner and other members.
struct DemoRoom {
    key: &'static str,
    name: &'static str,
    topic: &'static str,
    public: bool,
    owner: &'static str,
    members: &'static [&'static str],
}

const ROOMS: &[DemoRoom] = &[
    DemoRoom {
        key: "general",
        name: "general",
        topic: "Anything and everything. Be kind, stay curious.",
        public: true,
        owner: "alice",
        members: &["bob", "carol", "dave", "erin", "frank"],
    },
    DemoRoom {
        key: "random",
        name: "random",
        topic: "Off-topic: links, music, cat pictures",
        public: true,
        owner: "bob",
        members: &["alice", "dave", "erin", "frank"],
    },
    DemoRoom {
        key: "rust",
        name: "rust",
        topic: "Rust questions, crates and borrow-checker therapy",
        public: true,
        owner: "carol",
        members: &["alice", "dave", "frank"],
    },
    DemoRoom {
        key: "book-club",
        name: "book-club",
        topic: "This month: The Left Hand of Darkness. No spoilers past the chapter of the week!",
        public: true,
        owner: "erin",
        members: &["alice", "carol", "frank"],
    },
    DemoRoom {
        key: "core-team",
        name: "core-team",
        topic: "Planning the 1.0 release",
        public: false,
        owner: "alice",
        members: &["bob", "carol", "dave"],
    },
];

/// The direct conversation: its key in the script and its two users.
const DM: (&str, &str, &str) = ("dm", "alice", "bob");

/// One step of the script.
#[derive(Clone, Copy)]
struct Line {
    /// A room key of `ROOMS`, or `DM.0`.
    room: &'static str,
    author: &'static str,
    /// Minutes after the previous line.
    after: i64,
    /// A name later lines use to reply to (or edit) this one.
    tag: &'static str,
    /// The tag of the message this one replies to (or, for an edit, the one it edits).
    reply: &'static str,
    /// An edit of the `reply` message rather than a new one.
    edit: bool,
    body: &'static str,
}

const fn say(room: &'static str, author: &'static str, after: i64, body: &'static str) -> Line {
    Line { room, author, after, tag: "", reply: "", edit: false, body }
}

const fn edit(
    room: &'static str,
    author: &'static str,
    after: i64,
    of: &'static str,
    body: &'static str,
) -> Line {
    Line { room, author, after, tag: "", reply: of, edit: true, body }
}

impl Line {
    const fn tag(self, tag: &'static str) -> Self {
        Line { tag, ..self }
    }

    const fn reply(self, to: &'static str) -> Self {
        Line { reply: to, ..self }
    }
}

/// Three days of conversation, in the order it happened.
const SCRIPT: &[Line] = &[
    // The first day.
    say("general", "alice", 0, "Good morning everyone! ☀️ Welcome to **parlor**: say hi and tell us what you are working on this week."),
    say("general", "bob", 4, "Morning! Finishing the invoice export, then finaly looking at the serach page.").tag("typo"),
    edit("general", "bob", 1, "typo", "Morning! Finishing the invoice export, then finally looking at the search page."),
    say("general", "carol", 2, "Hi all 👋 I'm porting our ingest service to async Rust. Wish me luck.").tag("port"),
    say("general", "dave", 6, "@carol good luck! Ping me if `tokio` gives you grief, I lost a week to a blocking call inside a task last year.").reply("port"),
    say("general", "carol", 3, "Ha, noted. I'll keep `spawn_blocking` within reach."),
    say("rust", "carol", 20, "Question for the room: what do you use for configuration these days? `clap` with environment fallbacks, or layered files with something like `figment`?").tag("config"),
    say("rust", "dave", 5, "clap + env, nothing else. One source of truth, and `--help` documents it for free.").reply("config"),
    say("rust", "frank", 4, "+1. We tried layered config files once and spent more time debugging *which* file won than writing features."),
    say("rust", "alice", 7, "Same here. Bonus: clap shows the variable next to each flag in the help, so ops never has to read the code."),
    say("rust", "carol", 3, "Convinced. Thanks all 🙏"),
    say("random", "bob", 35, "Today I learned that octopuses have **three hearts**, and two of them stop beating while they swim. Which is why they prefer crawling. 🐙").tag("octopus"),
    say("random", "frank", 6, "That explains a lot about my Monday mornings."),
    say("random", "erin", 4, "Source? I want to send this to my nephew.").reply("octopus"),
    say("random", "bob", 3, "https://en.wikipedia.org/wiki/Octopus (scroll to *Circulation*)"),
    say("core-team", "alice", 50, "Agenda for Thursday:\n\n1. Release checklist for **1.0**\n2. Who owns the migration guide\n3. Load test results (@dave)\n\nAdd anything I missed.").tag("agenda"),
    say("core-team", "dave", 12, "Load test numbers are in: 20k sockets on one gateway, p99 send-to-ack **38 ms**. I'll bring graphs.").reply("agenda"),
    say("core-team", "bob", 5, "I can take the migration guide."),
    say("core-team", "carol", 9, "Can we add *deprecating the v0 endpoints*? A few integrators still call them."),
    say("core-team", "alice", 4, "Added. Thanks both!"),
    say("general", "erin", 12, "Lunch recommendations near the office? The ramen place closed 😢").tag("lunch"),
    say("general", "frank", 5, "The Georgian bakery on Elm Street. Get the khachapuri, thank me later.").reply("lunch"),
    say("general", "bob", 3, "Seconding the bakery. Go before 12:30 or the queue is out the door."),
    say("dm", "alice", 25, "Hey Bob, got a minute later today to look at the export PR together?"),
    say("dm", "bob", 15, "Sure, 3 pm works. Send me the link?"),
    say("dm", "alice", 2, "https://example.com/parlor/pull/142 (the interesting part is in `export/csv.rs`)"),
    say("book-club", "erin", 50, "Welcome to book club! 📚 This month we're reading *The Left Hand of Darkness* by Ursula K. Le Guin. Chapters 1 to 5 by Friday?"),
    say("book-club", "frank", 20, "Just started. The first chapter is dense, but the parade scene is wonderful."),
    say("book-club", "carol", 12, "> Light is the left hand of darkness\n\nLoved that line. No spoilers please, I'm only on chapter 3."),
    say("random", "dave", 130, "Anyone else watching the eclipse on Saturday? Background reading: https://en.wikipedia.org/wiki/Solar_eclipse"),
    say("random", "alice", 8, "Yes! And **never** look at it without proper eclipse glasses."),
    say("rust", "dave", 70, "PSA: `cargo clippy --all-targets -- -D warnings` in CI caught three real bugs for us this month. Worth the grumbling.").tag("clippy"),
    say("rust", "carol", 15, "What kind of bugs?").reply("clippy").tag("clippy-q"),
    say("rust", "dave", 4, "- a `let _ =` silently dropping a `Result`\n- a needless clone inside a hot loop\n- an `as` cast that truncated a length\n\nThe truncation one was nasty.").reply("clippy-q"),
    say("rust", "frank", 6, "The `as` cast bites everyone eventually. `try_from` all the things."),
    say("general", "alice", 20, "Reminder: the office is closed on Monday. 🏖️"),
    say("general", "dave", 25, "Signing off, see you all tomorrow 👋"),
    // The second day.
    say("general", "bob", 850, "Morning! The coffee machine is fixed. I repeat, the coffee machine is **fixed** ☕"),
    say("general", "erin", 3, "Best news of the week."),
    say("general", "carol", 2, "🎉"),
    say("rust", "carol", 25, "Progress report: the ingest service compiles under async. Only two `Arc<Mutex<_>>` left and I'm eyeing both suspiciously.").tag("mutex"),
    say("rust", "alice", 6, "Nice! If one of them guards a counter, an `AtomicU64` may be all you need.").reply("mutex"),
    say("rust", "carol", 4, "One of them is exactly that. The other guards a `HashMap` that several tasks update..."),
    say("rust", "dave", 3, "For the map: one task that owns it and takes requests over an `mpsc` channel. Easier to reason about than any lock."),
    say("rust", "carol", 10, "Went with the channel. The code got *shorter*. 🤯"),
    say("core-team", "bob", 40, "Draft of the migration guide: https://example.com/docs/migrating-to-1.0 (comments welcome, especially on the token changes)").tag("guide"),
    say("core-team", "carol", 25, "Read it. Section 3 should say that the refresh token rotates on every use; people *will* cache it.").reply("guide"),
    say("core-team", "bob", 6, "Good catch, fixed."),
    say("core-team", "dave", 20, "Graphs for Thursday:\n\n| gateways | sockets | p99 ack |\n|---|---|---|\n| 1 | 20k | 38 ms |\n| 2 | 40k | 41 ms |\n| 4 | 80k | 47 ms |"),
    say("core-team", "alice", 5, "That scales better than I hoped, @dave 👏"),
    say("random", "frank", 30, "Cat tax 🐈 mine has decided the keyboard is a heated bed. Productivity is down 40%."),
    say("random", "erin", 4, "Classic. Put a cardboard box next to the laptop, works every time."),
    say("random", "bob", 7, "Or a second, decoy keyboard."),
    say("book-club", "alice", 45, "I'm behind, just finished chapter 2. Genly Ai is such an unreliable narrator, I love it."),
    say("book-club", "erin", 10, "Right? Wait until you get to the chapters on Karhide's politics."),
    say("book-club", "frank", 8, "Reminder: no spoilers past chapter 5 until Friday 😉"),
    say("dm", "bob", 60, "Thanks for the review earlier. I pushed the fixes."),
    say("dm", "alice", 20, "Looks great, approved ✅"),
    say("general", "dave", 30, "Does anyone have the link to the on-call schedule?").tag("oncall"),
    say("general", "alice", 3, "Here: https://example.com/wiki/on-call (the rotation changes on Mondays)").reply("oncall"),
    say("general", "dave", 2, "Thanks!"),
    say("rust", "frank", 50, "Hot take: `unwrap()` in tests is fine, `expect(\"why\")` in binaries, and neither in library code.").tag("unwrap"),
    say("rust", "carol", 5, "I'd go further: an `expect` message should say what was *expected*. `expect(\"the config is loaded\")` reads well in a panic.").reply("unwrap"),
    say("rust", "alice", 7, "Agreed, and clippy has `unwrap_used` if you want to enforce it."),
    say("random", "dave", 30, "Friday music thread? I'll start: Khruangbin, *Con Todo El Mundo*. Perfect for focus."),
    say("random", "alice", 6, "Nils Frahm, *Says*. Eight minutes of building up, worth every second."),
    say("random", "frank", 5, "Lo-fi beats to refactor legacy code to.").tag("lofi"),
    say("random", "bob", 3, "@frank that's a genre now?").reply("lofi"),
    say("random", "frank", 2, "It is now."),
    say("general", "carol", 20, "Heads-up: the staging database restarts at 17:00 for a minor upgrade. Expect a minute of `503`s."),
    say("general", "bob", 4, "Thanks for the warning!"),
    say("general", "erin", 150, "Good night all 🌙"),
    // The third day.
    say("general", "frank", 800, "Morning! Who's up for a walk at lunch? The weather looks great."),
    say("general", "erin", 5, "Me! 🙋"),
    say("general", "alice", 3, "Count me in."),
    say("core-team", "alice", 30, "Thursday summary:\n\n- 1.0 ships **next Tuesday** 🚀\n- @bob owns the migration guide (done, thanks!)\n- @carol sends the v0 deprecation notice\n- @dave watches the dashboards during the rollout"),
    say("core-team", "carol", 8, "Notice drafted, I'll send it to the integrators today."),
    say("core-team", "dave", 5, "Dashboards are ready. I added an alert on p99 ack above 100 ms."),
    say("core-team", "bob", 4, "🚢"),
    say("rust", "carol", 40, "Final update on the async port: **3x** the throughput, half the memory. Thanks for the tips, everyone!").tag("result"),
    say("rust", "dave", 4, "That's a fantastic result. Blog post?").reply("result"),
    say("rust", "carol", 3, "Working on it. Draft title: *How we stopped blocking and learned to love `select!`*"),
    say("rust", "frank", 5, "I'd read that."),
    say("book-club", "erin", 50, "Halfway check-in: what do you make of Estraven so far? (chapters 1 to 8 only!)").tag("estraven"),
    say("book-club", "carol", 15, "Fascinating. Every conversation with him has three layers.").reply("estraven"),
    say("book-club", "alice", 10, "I didn't trust him at first. Now I'm not sure whom to trust."),
    say("book-club", "frank", 6, "That's the point, I think. Genly keeps misreading him."),
    say("random", "erin", 40, "A great read on how maps lie (nicely): https://en.wikipedia.org/wiki/Mercator_projection Greenland is *not* the size of Africa."),
    say("random", "bob", 7, "My whole childhood was a lie."),
    say("dm", "alice", 35, "Lunch walk in 10?"),
    say("dm", "bob", 2, "On my way down 🚶"),
    say("general", "dave", 60, "The coffee machine is broken again. I repeat, the coffee machine is broken again.").tag("coffee"),
    say("general", "bob", 2, "Nooo"),
    say("general", "carol", 3, "At this point we need a room just for the coffee machine's status.").reply("coffee"),
    say("general", "alice", 4, "Don't tempt me 😄"),
    say("rust", "alice", 60, "Small tip: `cargo tree -d` lists crates built in more than one version. We shaved 40 s off our build by aligning a few."),
    say("rust", "dave", 5, "TIL! Trying it now."),
    say("general", "erin", 45, "Reminder: book club meets on Friday at 18:00 in the big meeting room. Snacks provided 🍪 Everyone's welcome in #book-club"),
    say("general", "frank", 5, "I'll bring the khachapuri."),
    say("random", "dave", 30, "Weekend plans? I'm finally building that bookshelf."),
    say("random", "frank", 5, "Finishing *The Left Hand of Darkness*. No spoilers, @erin!"),
    say("random", "erin", 3, "My lips are sealed 🤐"),
    say("general", "alice", 25, "Great week, everyone. Ship it! 🚀"),
];

/// What the run did, for the summary.
#[derive(Default)]
struct Tally {
    users: usize,
    rooms: usize,
    members: usize,
    messages: usize,
    edits: usize,
}

/// `parlor seed`.
pub async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    validate::password("password", &args.password.0).map_err(|e| anyhow::anyhow!("--password: {e}"))?;
    let handle = open(&args.store).await?;
    let result = run(&handle, &args).await;
    handle.close().await;
    let (tally, created_users) = result?;
    if tally.users + tally.rooms + tally.members + tally.messages + tally.edits == 0 {
        println!("already seeded: the demo users, rooms and messages are all there; nothing added");
    } else {
        println!(
            "seeded the demo: {} user(s), {} room(s), {} membership(s), {} message(s) and {} edit(s) added",
            tally.users, tally.rooms, tally.members, tally.messages, tally.edits
        );
    }
    println!();
    println!("Rooms: #general, #random, #rust, #book-club (public), #core-team (private: alice, bob,");
    println!("carol, dave), and a direct conversation between alice and bob.");
    println!();
    println!("Demo users (for demos and development only: disable or remove them on a real server):");
    for (username, display_name) in USERS {
        let note = if created_users.contains(username) { "" } else { "  (already there)" };
        println!("  {username:<8} {display_name:<16} password: {}{note}", args.password.0);
    }
    println!();
    println!("Accounts that existed before the first seed keep their own password. Log in with e.g.:");
    println!(
        "  curl -s -X POST localhost:8080/api/v1/auth/login -d '{{\"username\":\"alice\",\"password\":\"{}\"}}'",
        args.password.0
    );
    Ok(())
}

async fn run(
    handle: &crate::wiring::StoreHandle,
    args: &SeedArgs,
) -> anyhow::Result<(Tally, Vec<&'static str>)> {
    let store = handle.port();
    let accounts = accounts(handle, &args.store.data_dir).await?;
    let mut tally = Tally::default();

    // The history starts at 08:30 (UTC) of the latest day that lets it end before now: three
    // days of office hours, ending yesterday or today.
    const DAY: i64 = 86_400_000;
    let total: i64 = SCRIPT.iter().map(|l| l.after).sum::<i64>() * 60_000;
    let now = Timestamp::now();
    let mut start = Timestamp(now.millis() - now.millis().rem_euclid(DAY) + 8 * 3_600_000 + 30 * 60_000);
    while start.millis() + total > now.millis() - 10 * 60_000 {
        start = start.plus_millis(-DAY);
    }
    let rooms_made_at = start.plus_millis(-2 * 3_600_000);

    // Users.
    let mut ids: HashMap<&str, UserId> = HashMap::new();
    let mut created_users = Vec::new();
    for (username, display_name) in USERS {
        let id = match store.user_by_username(username).await.map_err(anyhow_err)? {
            Some(existing) => existing.user.id,
            None => {
                let made = accounts
                    .register(
                        username,
                        &args.password.0,
                        Some(display_name),
                        None,
                        Some("parlor seed".into()),
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("registering {username}: {e}"))?;
                // The session `register` starts is of no use to anyone.
                store
                    .revoke_user_sessions(&made.user.user.id, None, Timestamp::now())
                    .await
                    .map_err(anyhow_err)?;
                tally.users += 1;
                created_users.push(*username);
                made.user.user.id
            }
        };
        ids.insert(username, id);
    }
    let user = |name: &str| ids.get(name).cloned().with_context(|| format!("no demo user {name}"));

    // Rooms and their members.
    let mut rooms: HashMap<&str, RoomId> = HashMap::new();
    for demo in ROOMS {
        let owner = user(demo.owner)?;
        let room = match find_room(&store, &owner, demo.name).await? {
            Some(room) => room,
            None => {
                tally.rooms += 1;
                store
                    .create_room(NewRoom {
                        id: RoomId::generate(),
                        name: validate::room_name(demo.name).map_err(anyhow_err)?,
                        topic: Some(validate::topic(demo.topic).map_err(anyhow_err)?),
                        visibility: if demo.public { Visibility::Public } else { Visibility::Private },
                        owner_id: owner.clone(),
                        created_at: rooms_made_at,
                    })
                    .await
                    .map_err(anyhow_err)?
            }
        };
        for (i, member) in demo.members.iter().enumerate() {
            let joined = rooms_made_at.plus_millis((i as i64 + 1) * 7 * 60_000);
            match store.add_member(&room.id, &user(member)?, Role::Member, joined).await {
                Ok(()) => tally.members += 1,
                Err(Error::Conflict(_)) => {}
                Err(e) => return Err(anyhow_err(e)),
            }
        }
        rooms.insert(demo.key, room.id);
    }
    let (dm, created) =
        store.direct_room(&user(DM.1)?, &user(DM.2)?, rooms_made_at).await.map_err(anyhow_err)?;
    tally.rooms += usize::from(created);
    rooms.insert(DM.0, dm.id);

    // The history, reviewed and rendered as the worker does it; the flood and new-account rules
    // look at the pace of real time, which a backdated history does not have.
    let reviewer = Moderator::new(
        ModerationSettings {
            flood_repeats: usize::MAX,
            burst_messages: usize::MAX,
            new_account_max_links: usize::MAX,
            ..ModerationSettings::default()
        },
        store.clone(),
    );
    let mut at = start;
    let mut tagged: HashMap<&str, MessageId> = HashMap::new();
    for (i, line) in SCRIPT.iter().enumerate() {
        at = at.plus_millis(line.after * 60_000);
        let room_id = rooms.get(line.room).cloned().with_context(|| format!("no demo room {}", line.room))?;
        let author_id = user(line.author)?;
        if line.edit {
            let target =
                tagged.get(line.reply).cloned().with_context(|| format!("no line tagged {}", line.reply))?;
            let current = store.message(&room_id, &target).await.map_err(anyhow_err)?;
            if current.is_some_and(|m| m.edited_at.is_some()) {
                continue;
            }
            let command = Command::Edit {
                room_id: room_id.clone(),
                message_id: target,
                author_id: author_id.clone(),
                body: line.body.into(),
            };
            match apply(&store, &reviewer, command, at, i).await? {
                Outcome::Edited { .. } => tally.edits += 1,
                other => bail!("line {i} of the demo was not edited: {other:?}"),
            }
            continue;
        }
        let nonce = format!("seed-{i:03}");
        if let Some(existing) =
            store.message_by_nonce(&room_id, &author_id, &nonce).await.map_err(anyhow_err)?
        {
            if !line.tag.is_empty() {
                tagged.insert(line.tag, existing.id);
            }
            continue;
        }
        let reply_to = match line.reply {
            "" => None,
            tag => Some(tagged.get(tag).cloned().with_context(|| format!("no line tagged {tag}"))?),
        };
        let command = Command::Create {
            room_id: room_id.clone(),
            author_id,
            body: line.body.into(),
            nonce: Some(nonce),
            reply_to,
        };
        match apply(&store, &reviewer, command, at, i).await? {
            Outcome::Created { message, created } => {
                tally.messages += usize::from(created);
                if !line.tag.is_empty() {
                    tagged.insert(line.tag, message.id);
                }
            }
            other => bail!("line {i} of the demo was not stored: {other:?}"),
        }
    }

    // Read markers: everyone has read a room up to their own last message in it, the way a
    // client moves the marker when its user writes.
    for (key, room_id) in &rooms {
        let mut last_own: HashMap<&str, i64> = HashMap::new();
        let (page, _) =
            store.history(room_id, parlor_domain::ports::Page::Latest, 200).await.map_err(anyhow_err)?;
        for message in &page {
            if let Some((name, _)) = USERS.iter().find(|(n, _)| *n == message.author.username) {
                last_own.insert(name, message.seq);
            }
        }
        for (name, seq) in last_own {
            store.mark_read(room_id, &user(name)?, seq).await.map_err(anyhow_err)?;
        }
        tracing::debug!(room = key, "read markers set");
    }
    Ok((tally, created_users))
}

/// A group room of this name that `owner` is in, if any.
async fn find_room(store: &Arc<dyn Store>, owner: &UserId, name: &str) -> anyhow::Result<Option<Room>> {
    let rooms = store.user_rooms(owner).await.map_err(anyhow_err)?;
    Ok(rooms.into_iter().find(|r| r.kind == RoomKind::Group && r.name.as_deref() == Some(name)))
}

/// Reviews a command as the worker does and applies it alone, dated `at`.
async fn apply(
    store: &Arc<dyn Store>,
    reviewer: &Moderator,
    command: Command,
    at: Timestamp,
    line: usize,
) -> anyhow::Result<Outcome> {
    let (author_id, room_id, body) = match &command {
        Command::Create { author_id, room_id, body, .. } | Command::Edit { author_id, room_id, body, .. } => {
            (author_id.clone(), room_id.clone(), body.clone())
        }
        Command::Delete { .. } => bail!("the demo deletes nothing"),
    };
    let verdict = reviewer
        .review(ReviewRequest { author_id, room_id, body, trace_id: format!("seed-{line:03}") })
        .await
        .map_err(anyhow_err)?;
    let (html, mentions) = match verdict {
        Verdict::Allow { html, mentions } => (html, mentions),
        Verdict::Reject { reason, message } => {
            bail!("line {line} of the demo was refused by moderation ({}): {message}", reason.as_str())
        }
    };
    let prepared = Prepared { command, html, mentions, now: at, notify_at: None };
    let mut outcomes = store.apply(&[prepared]).await.map_err(anyhow_err)?;
    match outcomes.pop() {
        Some(Outcome::Failed(e)) => bail!("line {line} of the demo failed: {e}"),
        Some(outcome) => Ok(outcome),
        None => bail!("line {line} of the demo had no outcome"),
    }
}

fn anyhow_err(e: Error) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}
