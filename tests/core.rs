//! Black-box tests of the core promises: serve, get, list, ping.
mod common;

use common::*;

#[test]
fn get_downloads_a_file_and_verifies_it() {
    let t = Scratch::new("smoke");
    let data = random_bytes(3 << 20, 1);
    t.write("srv/big.bin", &data);
    std::fs::create_dir_all(t.join("dl")).unwrap();
    let server = Server::start(&t.join("srv"), &[]);
    let run = tcpfetch(&t.join("dl"), &["get", &server.addr, "big.bin"]);
    run.expect_code(0);
    assert!(run.stderr().contains("sha256 verified"), "{run}");
    assert_eq!(std::fs::read(t.join("dl/big.bin")).unwrap(), data);
}
