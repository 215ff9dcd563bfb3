//! Manifests and whole-directory fetches: `list --sha256sums`, `get --all`,
//! `--manifest`.
mod common;

use std::process::Command;

use common::*;

fn tree(t: &Scratch) {
    t.write("srv/a.txt", b"alpha\n");
    t.write("srv/sub/b c.bin", &random_bytes(200_000, 1));
    t.write("srv/sub/deeper/ü.dat", &random_bytes(5000, 2));
    t.write("srv/empty", b"");
}

const NAMES: [&str; 4] = ["a.txt", "empty", "sub/b c.bin", "sub/deeper/ü.dat"];

#[test]
fn sha256sums_is_what_sha256sum_prints_for_the_served_files() {
    let t = Scratch::new("sums");
    tree(&t);
    let server = Server::start(&t.join("srv"), &[]);
    let run = tcpfetch(&t.path, &["list", &server.addr, "--sha256sums"]);
    run.expect_code(0);
    let coreutils = Command::new("sha256sum")
        .args(NAMES)
        .current_dir(t.join("srv"))
        .output()
        .unwrap();
    assert_eq!(
        run.stdout(),
        String::from_utf8(coreutils.stdout).unwrap(),
        "{run}"
    );
    // The manifest checks out with verify -c in the served directory.
    std::fs::write(t.join("SUMS"), run.stdout()).unwrap();
    let sums = t.join("SUMS");
    let check = tcpfetch(&t.join("srv"), &["verify", "-c", sums.to_str().unwrap()]);
    check.expect_code(0);
}

#[test]
fn get_all_fetches_every_file_verified_and_skips_identical_ones() {
    let t = Scratch::new("all");
    tree(&t);
    let server = Server::start(&t.join("srv"), &[]);
    let run = tcpfetch(&t.path, &["get", &server.addr, "--all", "-o", "mirror"]);
    run.expect_code(0);
    for name in NAMES {
        assert_eq!(
            std::fs::read(t.join("mirror").join(name)).unwrap(),
            std::fs::read(t.join("srv").join(name)).unwrap(),
            "{name}"
        );
    }
    assert!(
        run.stderr().contains("4 files: 0 identical, 4 fetched"),
        "{run}"
    );
    let again = tcpfetch(&t.path, &["get", &server.addr, "--all", "-o", "mirror"]);
    again.expect_code(0);
    assert!(
        again.stderr().contains("4 files: 4 identical, 0 fetched"),
        "{again}"
    );
}

#[test]
fn get_all_resumes_a_partial_file() {
    let t = Scratch::new("all-resume");
    tree(&t);
    let full = std::fs::read(t.join("srv/sub/b c.bin")).unwrap();
    t.write("mirror/sub/b c.bin.part", &full[..100_000]);
    // The version record a real interrupted download leaves beside it.
    t.write(
        "mirror/sub/b c.bin.part.sha256",
        format!("{}\n", sha256_hex(&full)).as_bytes(),
    );
    let server = Server::start(&t.join("srv"), &[]);
    tcpfetch(&t.path, &["get", &server.addr, "--all", "-o", "mirror"]).expect_code(0);
    assert_eq!(std::fs::read(t.join("mirror/sub/b c.bin")).unwrap(), full);
    server.wait_for_log("\"GET +mtime 100000 sub/b c.bin\" ok");
}

#[test]
fn a_manifest_made_by_find_matches_and_a_contradictory_one_is_refused() {
    // `cd srv && find . -type f | xargs sha256sum` writes ./NAME: it was
    // "not in the manifest" for every file. A name listed with two
    // digests was checked against the last one, silently.
    let (t, server) = serve(
        "manifest-forms",
        &[("a.txt", b"alpha"), ("sub/b.txt", b"beta")],
        &[],
    );
    let a = sha256_hex(b"alpha");
    let b = sha256_hex(b"beta");
    t.write(
        "FOUND",
        format!("{a}  ./a.txt\n{b}  ./sub/b.txt\n").as_bytes(),
    );
    let run = tcpfetch(
        &t.path,
        &[
            "get",
            &server.addr,
            "--all",
            "-o",
            "m",
            "--manifest",
            "FOUND",
        ],
    );
    run.expect_code(0);
    assert_eq!(std::fs::read(t.join("m/sub/b.txt")).unwrap(), b"beta");
    t.write("TWICE", format!("{a}  a.txt\n{b}  a.txt\n").as_bytes());
    for args in [&["a.txt", "-o", "one"][..], &["--all", "-o", "all"]] {
        let run = tcpfetch(
            &t.path,
            &[&["get", &server.addr][..], args, &["--manifest", "TWICE"]].concat(),
        );
        run.expect_code(1);
        assert!(
            run.stderr()
                .contains("manifest 'TWICE' lists 'a.txt' twice, with different digests"),
            "{run}"
        );
        assert!(
            !t.join("one").exists() && !t.join("all/a.txt").exists(),
            "{run}"
        );
    }
}

#[test]
fn a_carried_manifest_is_enforced_file_by_file() {
    let t = Scratch::new("manifest");
    tree(&t);
    let server = Server::start(&t.join("srv"), &[]);
    let sums = tcpfetch(&t.path, &["list", &server.addr, "--sha256sums"]).stdout();
    // The manifest carried from the first site: one digest altered, one
    // file missing from it.
    let mut lines: Vec<String> = sums.lines().map(String::from).collect();
    let altered = lines.iter().position(|l| l.ends_with("a.txt")).unwrap();
    lines[altered] = format!("{}  a.txt", "0".repeat(64));
    lines.retain(|l| !l.ends_with("empty"));
    std::fs::write(t.join("SUMS"), lines.join("\n") + "\n").unwrap();
    let sums_path = t.join("SUMS");
    let manifest = sums_path.to_str().unwrap();

    let run = tcpfetch(
        &t.path,
        &[
            "get",
            &server.addr,
            "--all",
            "-o",
            "m1",
            "--manifest",
            manifest,
        ],
    );
    run.expect_code(3);
    assert!(!t.join("m1/a.txt").exists(), "{run}");
    assert!(!t.join("m1/empty").exists(), "{run}");
    assert!(run.stderr().contains("not in the manifest"), "{run}");
    assert!(t.join("m1/sub/b c.bin").exists() && t.join("m1/sub/deeper/ü.dat").exists());

    let run = tcpfetch(
        &t.path,
        &[
            "get",
            &server.addr,
            "--all",
            "-o",
            "m2",
            "--manifest",
            manifest,
            "--allow-unlisted",
        ],
    );
    run.expect_code(3);
    assert!(t.join("m2/empty").exists(), "{run}");
    assert!(!t.join("m2/a.txt").exists(), "{run}");

    // One file against the manifest.
    tcpfetch(
        &t.path,
        &["get", &server.addr, "sub/b c.bin", "--manifest", manifest],
    )
    .expect_code(0);
    tcpfetch(
        &t.path,
        &["get", &server.addr, "a.txt", "--manifest", manifest],
    )
    .expect_code(3);
    assert!(!t.join("a.txt").exists());
}

#[test]
fn bad_combinations_are_usage_errors() {
    let t = Scratch::new("all-usage");
    for args in [
        &["get", "127.0.0.1:1", "a/", "b/", "--all"][..],
        &["get", "127.0.0.1:1", "--all", "-o", "-"],
        &["get", "127.0.0.1:1", "--all", "--sha256", &"a".repeat(64)],
        &["get", "127.0.0.1:1", "a", "--allow-unlisted"],
        &["list", "127.0.0.1:1", "--sha256sums", "--json"],
        &["list", "127.0.0.1:1", "--sha256sums", "--legacy"],
    ] {
        tcpfetch(&t.path, args).expect_code(2);
    }
}
