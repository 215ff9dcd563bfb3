//! The in-memory SHA-256 rate of one core, with the same `sha2` crate and
//! the same release profile as `tcpfetch sum` (which now hashes 512 KiB
//! buffers in 1 KiB updates with prefetches; these 128 KiB updates are the
//! reference's own): the ceiling `sum` of one big file is measured against in
//! tests/verify-bench.sh. Nothing is read and nothing waits for memory:
//! one 128 KiB buffer (it stays in the core's L2 cache) is hashed over and
//! over, MIB MiB in all, after a warm-up. That is the hardest reference
//! there is: a hash of data that must first come from anywhere else can
//! only be slower.
//!
//! Usage: cargo run --release --example sha256_rate [MIB]   (default 1024)

use std::time::Instant;

use sha2::{Digest, Sha256};

const CHUNK: usize = 128 * 1024;

fn main() {
    let mib: usize = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 1024,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: sha256_rate [MIB]");
            std::process::exit(2);
        }
    };
    // Not zeros: a pattern the compiler cannot see through.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let chunk: Vec<u8> = (0..CHUNK)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let hash = |chunks: usize| {
        let mut h = Sha256::new();
        for _ in 0..chunks {
            h.update(&chunk);
        }
        h.finalize()
    };
    let chunks = (mib << 20) / CHUNK;
    let warm = hash(chunks / 8 + 1);
    let start = Instant::now();
    let digest = hash(chunks);
    let secs = start.elapsed().as_secs_f64();
    // Use both digests, so neither hash can be optimised away.
    if digest == warm && chunks > 0 {
        eprintln!("sha256_rate: two lengths gave one digest?");
    }
    let rate = (chunks * CHUNK) as f64 / secs / 1e6;
    println!("{rate:.0} MB/s in-memory SHA-256, one core ({mib} MiB from one 128 KiB buffer)");
}
