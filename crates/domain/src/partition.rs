//! Which queue partition a room's commands go to, and which worker consumes which partition.
//! Both are computed by every process of a deployment independently, so both use a hash that is
//! written out here rather than `std`'s `DefaultHasher`, whose algorithm may change between Rust
//! releases: during a rolling upgrade, two processes built by different toolchains would put one
//! room in two partitions and break its order.

use crate::RoomId;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64 bits (<http://www.isthe.com/chongo/tech/comp/fnv/>), continued from `h`.
fn fnv1a64(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The partition, in `0..partitions`, of a room's commands: FNV-1a 64 of the UTF-8 bytes of the
/// room id, modulo `partitions` (one partition when given zero).
///
/// This must never change. Every gateway that queues and every worker that consumes must agree
/// on it, including processes of different builds running side by side during an upgrade, or one
/// room's commands would land in two partitions and be applied out of order. The test below pins
/// its values; a change that breaks it breaks deployments.
pub fn partition_of(room: &RoomId, partitions: usize) -> usize {
    (fnv1a64(FNV_OFFSET, room.as_str().as_bytes()) % partitions.max(1) as u64) as usize
}

/// The partitions worker `me` should consume, ascending, when `workers` (in any order, `me`
/// among them) share `partitions`: each worker gets at most `ceil(partitions / workers)`.
///
/// Every worker computes the same answer from the same membership, so a worker hands back what
/// the others will take. It is rendezvous hashing with a cap: every (worker, partition) pair
/// gets a score, and pairs are granted best score first while the partition is free and the
/// worker has room, so a worker joining or leaving moves little besides its own share (a test
/// below measures it). Disagreeing for a moment (views of the membership differ
/// while it changes) costs a partition a pause, never its order: the queue's lease or
/// single active consumer still lets one worker at a time consume it.
pub fn assigned(partitions: usize, workers: &[String], me: &str) -> Vec<usize> {
    let mut workers: Vec<&str> = workers.iter().map(String::as_str).collect();
    if !workers.contains(&me) {
        workers.push(me);
    }
    workers.sort_unstable();
    workers.dedup();
    let cap = partitions.div_ceil(workers.len());
    // Every (score, worker, partition), best first: each pair is granted when the partition is
    // still free and the worker still has room. The worker's and the partition's places break ties.
    let mut pairs: Vec<(u64, usize, usize)> = Vec::with_capacity(partitions * workers.len());
    for (i, w) in workers.iter().enumerate() {
        let seed = fnv1a64(FNV_OFFSET, w.as_bytes());
        for p in 0..partitions {
            pairs.push((mix(fnv1a64(seed, &(p as u64).to_le_bytes())), i, p));
        }
    }
    pairs.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut load = vec![0usize; workers.len()];
    let mut owner: Vec<Option<usize>> = vec![None; partitions];
    for (_, i, p) in pairs {
        if owner[p].is_none() && load[i] < cap {
            owner[p] = Some(i);
            load[i] += 1;
        }
    }
    let me = workers.iter().position(|w| *w == me);
    (0..partitions).filter(|&p| owner[p].is_some() && owner[p] == me).collect()
}

/// SplitMix64's finaliser: FNV's low bits vary little between inputs that differ in their last
/// bytes (the partition number), and a rendezvous score needs every bit to count.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_of_a_room_is_pinned() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c, the published test vector.
        assert_eq!(fnv1a64(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        let cases: [(&str, [usize; 4]); 5] = [
            ("", [0, 1, 5, 5]),
            ("a", [0, 0, 4, 12]),
            ("room-a", [0, 0, 0, 12]),
            ("0195c2a1-7d3e-7b6a-9f00-1234567890ab", [0, 1, 1, 9]),
            ("général", [0, 3, 1, 15]),
        ];
        for (room, want) in cases {
            let got = [1, 4, 6, 16].map(|n| partition_of(&RoomId::from(room), n));
            assert_eq!(got, want, "partitions of {room:?} over 1, 4, 6 and 16");
        }
        assert_eq!(partition_of(&RoomId::from("a"), 0), 0, "zero partitions count as one");
    }

    fn shares(partitions: usize, workers: &[String]) -> Vec<Vec<usize>> {
        workers.iter().map(|w| assigned(partitions, workers, w)).collect()
    }

    #[test]
    fn workers_split_the_partitions_evenly_and_without_overlap() {
        let names: Vec<String> = (0..5).map(|i| format!("worker-{i}")).collect();
        for m in 1..=5 {
            for partitions in [1, 4, 6, 7, 16] {
                let workers = &names[..m];
                let shares = shares(partitions, workers);
                let mut all: Vec<usize> = shares.concat();
                all.sort_unstable();
                assert_eq!(all, (0..partitions).collect::<Vec<_>>(), "each partition once ({m} workers)");
                let cap = partitions.div_ceil(m);
                assert!(shares.iter().all(|s| s.len() <= cap), "at most {cap} each: {shares:?}");
            }
        }
        let three = shares(6, &names[..3]);
        assert!(three.iter().all(|s| s.len() == 2), "six over three is two each: {three:?}");
    }

    #[test]
    fn a_worker_joining_or_leaving_moves_little_besides_its_own_share() {
        let names: Vec<String> = (0..4).map(|i| format!("worker-{i}")).collect();
        for partitions in [6, 12, 16] {
            let four = shares(partitions, &names);
            let three = shares(partitions, &names[..3]);
            let moved: usize = (0..3).map(|i| four[i].iter().filter(|p| !three[i].contains(p)).count()).sum();
            // Three keep what they had, give or take one, and take the leaver's share.
            assert!(moved <= 1, "{moved} of {partitions} moved between survivors: {four:?} -> {three:?}");
        }
    }

    #[test]
    fn the_assignment_does_not_depend_on_the_order_of_the_membership() {
        let a = vec!["x".to_owned(), "y".to_owned(), "z".to_owned()];
        let b = vec!["z".to_owned(), "x".to_owned(), "y".to_owned()];
        for w in &a {
            assert_eq!(assigned(8, &a, w), assigned(8, &b, w));
        }
        assert_eq!(assigned(3, &[], "alone"), vec![0, 1, 2], "a worker not listed counts itself");
    }
}
