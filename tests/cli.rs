//! Black-box tests of what a user meets on the command line (issue #16):
//! messages that say where things came from and what to run next, one
//! line per file, the habits brought from curl, wget and ping(8).

mod common;
use common::*;

use std::net::TcpListener;
use std::process::Command;

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn a_manifest_mismatch_names_the_manifest_not_sha256() {
    let (t, server) = serve(
        "cli-manifest",
        &[("a.txt", b"alpha\n"), ("b.txt", b"beta\n")],
        &[],
    );
    let zeros = "0".repeat(64);
    t.write(
        "bad.sums",
        format!("{zeros}  a.txt\n{}  b.txt\n", sha256_hex(b"beta\n")).as_bytes(),
    );
    let run = tcpfetch(
        &t.join("dl"),
        &["get", &server.addr, "a.txt", "--manifest", "../bad.sums"],
    );
    run.expect_code(3);
    assert!(
        run.stderr()
            .contains(&format!("but the manifest ../bad.sums expects {zeros}")),
        "{run}"
    );
    assert!(!run.stderr().contains("--sha256"), "{run}");
    let run = tcpfetch(
        &t.join("dl"),
        &[
            "get",
            &server.addr,
            "--all",
            "-o",
            "m",
            "--manifest",
            "../bad.sums",
        ],
    );
    run.expect_code(3);
    assert!(run.stderr().contains(&format!("tcpfetch: a.txt: integrity failure: the server's digest is {} but the manifest ../bad.sums expects {zeros}", sha256_hex(b"alpha\n"))), "{run}");
    assert!(!run.stderr().contains("--sha256"), "{run}");
}

#[test]
fn ping_count_below_one_is_a_usage_error_and_sends_nothing() {
    let (t, server) = serve("cli-ping0", &[], &[]);
    for count in ["0", "-1"] {
        let run = tcpfetch(&t.path, &["ping", &server.addr, "-c", count]);
        run.expect_code(2);
        assert!(
            run.stderr().starts_with("tcpfetch: --count needs a number"),
            "{run}"
        );
    }
    tcpfetch(&t.path, &["ping", &server.addr]).expect_code(0);
    let log = server.wait_for_log("\"PING\"");
    assert_eq!(log.matches("\"PING\"").count(), 1, "{log}");
}

#[test]
fn ping_gives_up_on_a_silent_server_after_its_timeout() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let t = Scratch::new("cli-ping-timeout");
    let run = tcpfetch(&t.path, &["ping", &addr, "--timeout", "0.3"]);
    run.expect_code(1);
    assert!(
        run.stderr()
            .contains("timed out while waiting for the server's answer"),
        "{run}"
    );
}

#[test]
fn ping_count_ends_with_a_ping_8_summary() {
    let (t, server) = serve("cli-ping-sum", &[], &[]);
    let run = tcpfetch(&t.path, &["ping", &server.addr, "--count", "3"]);
    run.expect_code(0);
    let out = run.stdout();
    let l = lines(&out);
    assert_eq!(l.len(), 6, "{run}");
    assert_eq!(l[3], format!("--- {} ping statistics ---", server.addr));
    assert_eq!(l[4], "3 pings sent, 3 answered");
    let stats = l[5]
        .strip_prefix("rtt min/avg/max/mdev = ")
        .and_then(|s| s.strip_suffix(" ms"));
    let numbers: Vec<f64> = stats
        .unwrap_or_else(|| panic!("{run}"))
        .split('/')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(numbers.len(), 4, "{run}");
    assert!(
        numbers[0] <= numbers[1] && numbers[1] <= numbers[2],
        "{run}"
    );
    // One ping says it all on its line: no summary.
    let one = tcpfetch(&t.path, &["ping", &server.addr]);
    assert_eq!(lines(&one.stdout()).len(), 1, "{one}");
}

#[test]
fn a_typo_suggests_the_nearest_flag_and_the_commands_help() {
    let t = Scratch::new("cli-typo");
    let run = tcpfetch(&t.path, &["get", "127.0.0.1:1", "x", "--ouput", "y"]);
    run.expect_code(2);
    assert_eq!(
        run.stderr(),
        "tcpfetch: invalid option '--ouput'; did you mean --output?\ntcpfetch: see 'tcpfetch get --help'\n"
    );
    let run = tcpfetch(&t.path, &["list", "127.0.0.1:1", "--jsno"]);
    run.expect_code(2);
    assert!(run.stderr().contains("did you mean --json?"), "{run}");
    let run = tcpfetch(&t.path, &["lsit"]);
    run.expect_code(2);
    assert!(run.stderr().contains("did you mean list?"), "{run}");
}

#[test]
fn a_missing_argument_shows_the_usage_line_not_the_whole_help() {
    let t = Scratch::new("cli-missing");
    // bench's missing NAME and RUN.json, and verify's missing manifest or
    // digest, printed the whole help.
    for (args, missing, usage) in [
        (&["list"][..], "ADDR", "Usage: tcpfetch list ADDR"),
        (&["ping"], "ADDR", "Usage: tcpfetch ping ADDR"),
        (&["get"], "ADDR", "Usage: tcpfetch get ADDR"),
        (&["bench"], "ADDR", "Usage: tcpfetch bench ADDR"),
        (
            &["bench", "127.0.0.1:1", "-c", "2"],
            "NAME (the file to download)",
            "Usage: tcpfetch bench ADDR",
        ),
        (
            &["bench", "--merge"],
            "RUN.json",
            "Usage: tcpfetch bench ADDR",
        ),
        // verify printed its whole help for these two.
        (
            &["verify"],
            "-c SHA256SUMS or FILE --sha256 HEX",
            "Usage: tcpfetch verify -c",
        ),
        (
            &["verify", "a.txt"],
            "--sha256 HEX for FILE (or use -c SHA256SUMS)",
            "Usage: tcpfetch verify -c",
        ),
    ] {
        let cmd = args[0];
        let run = tcpfetch(&t.path, args);
        run.expect_code(2);
        let err = run.stderr();
        let l = lines(&err);
        assert_eq!(l[0], format!("tcpfetch: missing {missing}"), "{run}");
        assert!(l[1].starts_with(usage), "{run}");
        assert_eq!(
            *l.last().unwrap(),
            format!("tcpfetch: see 'tcpfetch {cmd} --help'"),
            "{run}"
        );
        assert!(l.len() <= 4 && !err.contains("Options:"), "{run}");
    }
}

#[test]
fn each_help_lines_up_its_option_descriptions() {
    // list's help had '--sha256sums a SHA256SUMS...' run together and
    // '--key-file FILE' indented apart from the rest.
    let t = Scratch::new("cli-help-columns");
    for cmd in [
        "serve", "get", "list", "ping", "bench", "sum", "verify", "ui",
    ] {
        let run = tcpfetch(&t.path, &[cmd, "--help"]);
        run.expect_code(0);
        let out = run.stdout();
        let options = out.split("\nOptions:\n").nth(1).unwrap_or_default();
        let mut column = None;
        for line in options.lines().take_while(|l| !l.is_empty()) {
            let at = if line.starts_with("  -") {
                // The description starts after the first run of 2+ spaces.
                line[2..]
                    .find("  ")
                    .map(|i| 2 + i + line[2 + i..].len() - line[2 + i..].trim_start().len())
            } else {
                Some(line.len() - line.trim_start().len())
            };
            let at = at.unwrap_or_else(|| panic!("{cmd}: no gap after the option in {line:?}"));
            assert_eq!(
                *column.get_or_insert(at),
                at,
                "{cmd}: {line:?} is out of line\n{out}"
            );
        }
        assert!(column.is_some(), "{cmd}: no options\n{out}");
    }
}

#[test]
fn list_and_ping_help_list_key_file() {
    let t = Scratch::new("cli-help");
    for cmd in ["list", "ping", "get"] {
        let run = tcpfetch(&t.path, &[cmd, "--help"]);
        run.expect_code(0);
        assert!(run.stdout().contains("--key-file FILE"), "{run}");
    }
    let run = tcpfetch(&t.path, &["ping", "--help"]);
    assert!(run.stdout().contains("--timeout SECS"), "{run}");
}

fn tree() -> [(&'static str, &'static [u8]); 4] {
    [
        ("a.txt", b"a\n"),
        ("sub/b.txt", b"b\n"),
        ("sub/deep/c.txt", b"c\n"),
        ("subway.txt", b"not under sub/\n"),
    ]
}

#[test]
fn get_dir_all_fetches_one_subtree() {
    let (t, server) = serve("cli-subtree", &tree(), &[]);
    let run = tcpfetch(
        &t.join("dl"),
        &["get", &server.addr, "sub/", "--all", "-o", "m"],
    );
    run.expect_code(0);
    assert_eq!(std::fs::read(t.join("dl/m/sub/b.txt")).unwrap(), b"b\n");
    assert_eq!(
        std::fs::read(t.join("dl/m/sub/deep/c.txt")).unwrap(),
        b"c\n"
    );
    assert!(
        !t.join("dl/m/a.txt").exists() && !t.join("dl/m/subway.txt").exists(),
        "{run}"
    );
    assert!(
        run.stderr().ends_with(
            "2 files: 0 identical, 2 fetched, 0 failed verification, 0 failed otherwise\n"
        ),
        "{run}"
    );
    let run = tcpfetch(
        &t.join("dl"),
        &["get", &server.addr, "--all", "--prefix", "sub", "-o", "p/"],
    );
    run.expect_code(0);
    assert!(
        t.join("dl/p/sub/deep/c.txt").exists() && !t.join("dl/p/subway.txt").exists(),
        "{run}"
    );
    // Without the slash it is the same directory (never the sibling
    // subway.txt).
    let run = tcpfetch(
        &t.join("dl"),
        &["get", &server.addr, "sub", "--all", "-o", "q"],
    );
    run.expect_code(0);
    assert!(
        t.join("dl/q/sub/b.txt").exists() && !t.join("dl/q/subway.txt").exists(),
        "{run}"
    );
    let run = tcpfetch(&t.join("dl"), &["get", &server.addr, "nothing/", "--all"]);
    run.expect_code(1);
    assert!(
        run.stderr()
            .contains("no file under 'nothing/' on the server"),
        "{run}"
    );
}

#[test]
fn a_directory_name_says_how_to_fetch_it() {
    let (t, server) = serve("cli-dir", &tree(), &[]);
    let run = tcpfetch(&t.join("dl"), &["get", &server.addr, "sub/", "-o", "x"]);
    run.expect_code(2);
    assert!(
        run.stderr().starts_with(
            "tcpfetch: 'sub/' names a directory; add --all to fetch the files under it\n"
        ),
        "{run}"
    );
    let run = tcpfetch(&t.join("dl"), &["get", &server.addr, "sub"]);
    run.expect_code(1);
    let addr = &server.addr;
    assert_eq!(run.stderr(), format!("tcpfetch: 'sub' is a directory on {addr}; fetch the files under it with 'tcpfetch get {addr} sub/ --all'\n"));
    assert_eq!(std::fs::read_dir(t.join("dl")).unwrap().count(), 0);
}

#[test]
fn a_resumed_download_says_where_it_resumes() {
    let data = random_bytes(1 << 20, 31);
    let (t, server) = serve("cli-resume", &[("x.bin", &data)], &[]);
    t.write("dl/x.bin.part", &data[..500_000]);
    t.write(
        "dl/x.bin.part.sha256",
        format!("{}\n", sha256_hex(&data)).as_bytes(),
    );
    let run = tcpfetch(&t.join("dl"), &["get", &server.addr, "x.bin"]);
    run.expect_code(0);
    assert!(
        run.stderr()
            .starts_with(&format!("x.bin: resuming at byte 500000 of {}\n", 1 << 20)),
        "{run}"
    );
    assert_eq!(std::fs::read(t.join("dl/x.bin")).unwrap(), data);
}

#[test]
fn get_all_again_prints_one_plain_line_per_file_and_a_summary() {
    let (t, server) = serve("cli-rerun", &tree(), &[]);
    tcpfetch(&t.join("dl"), &["get", &server.addr, "--all"]).expect_code(0);
    let run = tcpfetch(&t.join("dl"), &["get", &server.addr, "--all"]);
    run.expect_code(0);
    let err = run.stderr();
    let l = lines(&err);
    assert_eq!(l.len(), 5, "{run}");
    assert!(l.iter().all(|line| !line.starts_with("tcpfetch:")), "{run}");
    assert!(
        l[0].starts_with("./a.txt: already here and identical (2 bytes, sha256 "),
        "{run}"
    );
    assert_eq!(
        l[4],
        "4 files: 4 identical, 0 fetched, 0 failed verification, 0 failed otherwise"
    );
}

#[test]
fn a_transfer_too_short_to_time_gets_no_rate() {
    let (t, server) = serve("cli-rate", &[("hello.txt", b"hello world\n")], &[]);
    let run = tcpfetch(&t.join("dl"), &["get", &server.addr, "hello.txt"]);
    run.expect_code(0);
    let err = run.stderr();
    assert!(err.starts_with("hello.txt: 12 bytes (12 B) in "), "{run}");
    assert!(!err.contains("MB/s") && !err.contains("MiB/s"), "{run}");
    assert!(err.contains(" s, sha256 verified "), "{run}");
}

#[test]
fn a_bad_sha256_names_the_wrong_character() {
    let t = Scratch::new("cli-sha");
    let digest = format!("{}g{}", "a".repeat(10), "b".repeat(53));
    let run = tcpfetch(&t.path, &["get", "127.0.0.1:1", "x", "--sha256", &digest]);
    run.expect_code(2);
    assert!(run.stderr().starts_with(&format!("tcpfetch: --sha256 needs 64 hex digits: character 11 of '{digest}' is 'g', not a hex digit\n")), "{run}");
}

#[test]
fn a_missing_output_directory_fails_with_exit_1_before_connecting() {
    let t = Scratch::new("cli-odir");
    t.write("file", b"x");
    for (out, says) in [
        (
            "/nonexistent/dir/",
            "tcpfetch: -o /nonexistent/dir/: no such directory\n",
        ),
        ("file/", "tcpfetch: -o file/: not a directory\n"),
    ] {
        // Port 1 refuses: the check must come first to say this.
        let run = tcpfetch(&t.path, &["get", "127.0.0.1:1", "x", "-o", out]);
        run.expect_code(1);
        assert_eq!(run.stderr(), says, "{run}");
    }
}

#[test]
fn serve_on_all_interfaces_says_so_on_stderr_only() {
    let t = Scratch::new("cli-any");
    std::fs::create_dir_all(t.join("srv")).unwrap();
    let mut server = Server::start(&t.join("srv"), &["--listen", "0.0.0.0:0"]);
    let port = server
        .addr
        .strip_prefix("0.0.0.0:")
        .unwrap_or_else(|| panic!("{}", server.addr))
        .to_string();
    let log = server.wait_for_log("all interfaces");
    assert!(log.contains(&format!("listening on 0.0.0.0:{port} (all interfaces; --listen 127.0.0.1:{port} to keep it local)\n")), "{log}");
    server.kill();
    let local = Server::start(&t.join("srv"), &[]);
    tcpfetch(&t.path, &["ping", &local.addr]).expect_code(0);
    local.wait_for_log("\"PING\"");
    assert!(!local.log().contains("all interfaces"), "{}", local.log());
}

#[test]
fn several_names_are_each_verified_with_a_summary_and_the_worst_status() {
    let (t, server) = serve("cli-several", &[("a.txt", b"a\n"), ("b.txt", b"b\n")], &[]);
    let run = tcpfetch(
        &t.join("dl"),
        &["get", &server.addr, "a.txt", "missing.txt", "b.txt"],
    );
    run.expect_code(1);
    assert_eq!(std::fs::read(t.join("dl/a.txt")).unwrap(), b"a\n");
    assert_eq!(std::fs::read(t.join("dl/b.txt")).unwrap(), b"b\n");
    let err = run.stderr();
    assert!(
        err.contains(&format!(
            "tcpfetch: missing.txt: no file 'missing.txt' on {}",
            server.addr
        )),
        "{run}"
    );
    assert!(
        err.ends_with(
            "3 files: 0 identical, 2 fetched, 0 failed verification, 1 failed otherwise\n"
        ),
        "{run}"
    );
    // Into -o DIR, with a manifest that one of them fails: exit 3.
    std::fs::create_dir_all(t.join("dl/into")).unwrap();
    t.write(
        "m.sums",
        format!("{}  a.txt\n{}  b.txt\n", sha256_hex(b"a\n"), "0".repeat(64)).as_bytes(),
    );
    let run = tcpfetch(
        &t.join("dl"),
        &[
            "get",
            &server.addr,
            "a.txt",
            "b.txt",
            "-o",
            "into",
            "--manifest",
            "../m.sums",
        ],
    );
    run.expect_code(3);
    assert!(
        t.join("dl/into/a.txt").exists() && !t.join("dl/into/b.txt").exists(),
        "{run}"
    );
    assert!(
        run.stderr().ends_with(
            "2 files: 0 identical, 1 fetched, 1 failed verification, 0 failed otherwise\n"
        ),
        "{run}"
    );
    // All fine: exit 0.
    tcpfetch(
        &t.join("dl"),
        &["get", &server.addr, "a.txt", "b.txt", "-o", "into"],
    )
    .expect_code(0);
}

/// `tcpfetch ARGS` on a terminal (util-linux `script`), and what it showed.
fn on_terminal(cwd: &std::path::Path, args: &str) -> String {
    let out = Command::new("script")
        .args(["-qec", &format!("'{BIN}' {args}"), "/dev/null"])
        .current_dir(cwd)
        .output()
        .expect("util-linux 'script' is needed for the terminal tests");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn list_shows_human_sizes_on_a_terminal_and_bytes_with_bytes() {
    let (t, server) = serve(
        "cli-list-human",
        &[("b.bin", &[7u8; 12345]), ("a.txt", b"hello")],
        &[],
    );
    let screen = on_terminal(&t.path, &format!("list {}", server.addr));
    assert!(screen.contains("   5 B  a.txt"), "{screen}");
    assert!(screen.contains("12.1 KiB  b.bin"), "{screen}");
    let screen = on_terminal(&t.path, &format!("list {} --bytes", server.addr));
    assert!(screen.contains("12345  b.bin"), "{screen}");
    // Not a terminal: exact sizes, as scripts have always read them.
    let run = tcpfetch(&t.path, &["list", &server.addr]);
    assert_eq!(run.stdout(), "    5  a.txt\n12345  b.bin\n", "{run}");
}

/// A line with its numbers, digests and addresses made alike, so the
/// README's examples (run on other machines, digests shortened) compare
/// with a real run: `127.0.0.1:40000` and `10.0.0.2` read `ADDR`, a run of
/// hex of 8 or more (or with `…`) `HEX`, other numbers `N`.
fn shape(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let part = |c: char| c.is_ascii_hexdigit() || "….:".contains(c);
        if !part(chars[i]) || (i > 0 && chars[i - 1].is_alphanumeric()) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && part(chars[i]) {
            i += 1;
        }
        while i > start + 1 && ".:".contains(chars[i - 1]) {
            i -= 1;
        }
        let run: String = chars[start..i].iter().collect();
        let word_goes_on = chars.get(i).is_some_and(|c| c.is_alphanumeric());
        let shaped = match run {
            _ if word_goes_on => run,
            _ if run.matches('.').count() >= 3 => "ADDR".to_string(),
            _ if run.chars().count() >= 8 || run.contains('…') => "HEX".to_string(),
            _ if run.chars().all(|c| c.is_ascii_digit() || c == '.') => "N".to_string(),
            _ => run,
        };
        out.push_str(&shaped);
    }
    out
}

#[test]
fn readme_examples_match_real_output() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let documented: std::collections::HashSet<String> = readme.lines().map(shape).collect();
    let (t, server) = serve(
        "cli-readme",
        &[
            ("hello.txt", b"hello world\n"),
            ("docs/read me.txt", b"read me\n"),
        ],
        &[],
    );
    let dl = t.join("dl");
    let addr = server.addr.as_str();
    let mut runs = vec![
        tcpfetch(&dl, &["ping", addr]),
        tcpfetch(&dl, &["ping", addr, "-c", "3"]),
        tcpfetch(&dl, &["list", addr]),
        tcpfetch(&dl, &["get", addr, "hello.txt"]),
        // After a GET, as the README shows it: the server knows the digest.
        tcpfetch(&dl, &["list", addr, "--json"]),
        tcpfetch(
            &dl,
            &["get", addr, "hello.txt", "docs/read me.txt", "nope.txt"],
        ),
        tcpfetch(&dl, &["get", addr, "docs"]),
        tcpfetch(&dl, &["get", addr, "hello.txt", "--ouput", "x"]),
        tcpfetch(&dl, &["list"]),
    ];
    tcpfetch(&dl, &["get", addr, "docs/", "--all", "-o", "mirror"]).expect_code(0);
    runs.push(tcpfetch(&dl, &["get", addr, "--all", "-o", "mirror"]));
    let mut missing = Vec::new();
    for run in &runs {
        for line in run.stdout().lines().chain(run.stderr().lines()) {
            if !documented.contains(&shape(line)) {
                missing.push(format!("{}: {line}\n   shaped: {}", run.cmd, shape(line)));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in the README:\n{}",
        missing.join("\n")
    );
}

#[test]
fn shapes_make_numbers_digests_and_addresses_alike() {
    assert_eq!(
        shape("hello.txt: 12 bytes (12 B) in 0.037 s, sha256 verified a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447"),
        "hello.txt: N bytes (N B) in N s, sha256 verified HEX"
    );
    assert_eq!(
        shape("see 'tcpfetch list 10.0.0.2:1236'"),
        "see 'tcpfetch list ADDR'"
    );
    assert_eq!(shape("sha256 c7db…a9a1); nothing"), "sha256 HEX); nothing");
    assert_eq!(shape("3 files: 1 identical"), "N files: N identical");
}

#[test]
fn a_server_that_closes_without_a_word_may_be_the_old_one() {
    // The original tcp-server reads a v1 request as a length header,
    // fails, and drops the connection (its whole loop dies with it).
    let old = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = old.local_addr().unwrap().to_string();
    let stand_in = std::thread::spawn(move || {
        let (mut conn, _) = old.accept().unwrap();
        let _ = std::io::Read::read(&mut conn, &mut [0u8; 64]);
    });
    let t = Scratch::new("cli-closes");
    let run = tcpfetch(&t.path, &["ping", &addr]);
    stand_in.join().unwrap();
    run.expect_code(1);
    assert!(
        run.stderr().contains(&format!("{addr} closed the connection without answering (if it is the old Python tcp-server, add --legacy)")),
        "{run}"
    );
}

#[test]
fn get_refuses_a_manifest_it_cannot_use_and_names_it() {
    let (t, server) = serve("cli-manifest-bad", &[("a.txt", b"alpha\n")], &[]);
    let alpha = sha256_hex(b"alpha\n");
    t.write("none.sums", b"# only a comment\n\nnot a checksum line\n");
    t.write("other.sums", format!("{alpha}  b.txt\n").as_bytes());
    t.write(
        "messy.sums",
        format!("not a checksum line\n{alpha}  a.txt\n").as_bytes(),
    );
    let get = |extra: &[&str]| {
        let mut args = vec!["get", &server.addr, "a.txt"];
        args.extend_from_slice(extra);
        tcpfetch(&t.join("dl"), &args)
    };
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["--manifest", "../missing.sums"],
            1,
            "tcpfetch: cannot open manifest '../missing.sums': no such file or directory",
        ),
        (
            &["--manifest", "../none.sums"],
            1,
            "tcpfetch: manifest '../none.sums' has no checksum lines",
        ),
        (
            &["--manifest", "../other.sums"],
            3,
            "integrity failure: 'a.txt' is not in the manifest '../other.sums'",
        ),
        (
            &["--manifest", "../messy.sums", "--sha256", &"0".repeat(64)],
            2,
            "--sha256 and --manifest disagree about this file",
        ),
    ];
    for (extra, code, want) in cases {
        let run = get(extra);
        run.expect_code(*code);
        assert!(run.stderr().contains(want), "{extra:?}: {run}");
        assert!(!t.join("dl/a.txt").exists(), "{extra:?}: {run}");
    }
    // A line it cannot read is reported and skipped; the rest is used.
    let run = get(&["--manifest", "../messy.sums", "--sha256", &alpha]);
    run.expect_code(0);
    assert!(
        run.stderr()
            .contains("tcpfetch: ../messy.sums: 1 improperly formatted line(s) ignored"),
        "{run}"
    );
    assert_eq!(std::fs::read(t.join("dl/a.txt")).unwrap(), b"alpha\n");
}

#[test]
fn several_names_read_their_manifest_once() {
    let (t, server) = serve(
        "cli-manifest-once",
        &[("a.txt", b"alpha\n"), ("b.txt", b"beta\n")],
        &[],
    );
    let sums = format!(
        "not a checksum line\n{}  a.txt\n{}  b.txt\n",
        sha256_hex(b"alpha\n"),
        sha256_hex(b"beta\n")
    );
    t.write("messy.sums", sums.as_bytes());
    let args = [
        "get",
        &server.addr,
        "a.txt",
        "b.txt",
        "--manifest",
        "../messy.sums",
    ];
    let run = tcpfetch(&t.join("dl"), &args);
    run.expect_code(0);
    let warning = "tcpfetch: ../messy.sums: 1 improperly formatted line(s) ignored";
    assert_eq!(run.stderr().matches(warning).count(), 1, "{run}");
    assert_eq!(std::fs::read(t.join("dl/b.txt")).unwrap(), b"beta\n");
    // Unreadable, it fails every name, and the run says so once per name.
    let args = [
        "get",
        &server.addr,
        "a.txt",
        "b.txt",
        "--manifest",
        "../missing.sums",
    ];
    let run = tcpfetch(&t.join("dl"), &args);
    run.expect_code(1);
    assert_eq!(
        run.stderr().matches("cannot open manifest").count(),
        2,
        "{run}"
    );
}

#[test]
fn out_of_range_seconds_and_counts_are_usage_errors_naming_the_flag() {
    let t = Scratch::new("cli-ranges");
    t.write("a.txt", b"a");
    // No server is needed: each is refused while the line is read.
    let addr = "127.0.0.1:1";
    for value in ["0", "-1", "nan", "inf", "1e9", "1e-10", "0.0009", "x"] {
        for (cmd, flag) in [
            (vec!["get", addr, "a.txt"], "--timeout"),
            (vec!["get", addr, "a.txt"], "--retry-wait"),
            (vec!["ping", addr], "--timeout"),
            (vec!["bench", addr, "a.txt"], "--duration"),
            (vec!["serve", "."], "--idle-timeout"),
        ] {
            let mut args = cmd.clone();
            args.extend_from_slice(&[flag, value]);
            let run = tcpfetch(&t.path, &args);
            run.expect_code(2);
            let want = if value == "x" {
                format!("tcpfetch: {flag} needs a number, not 'x'")
            } else {
                format!("tcpfetch: {flag} needs a number of seconds from 0.001 to 999999999, not '{value}'")
            };
            assert!(run.stderr().starts_with(&want), "{args:?}: {run}");
        }
    }
    for (args, want) in [
        (
            vec!["sum", "--jobs", "0", "a.txt"],
            "--jobs needs a number from 1 to 1024, not '0'",
        ),
        (
            vec!["sum", "--jobs", "1025", "a.txt"],
            "--jobs needs a number from 1 to 1024, not '1025'",
        ),
        (
            vec!["verify", "--jobs", "1025", "a.txt"],
            "--jobs needs a number from 1 to 1024, not '1025'",
        ),
        (
            vec!["ping", addr, "-c", "1000001"],
            "--count needs a number from 1 to 1000000, not '1000001'",
        ),
    ] {
        let run = tcpfetch(&t.path, &args);
        run.expect_code(2);
        assert!(
            run.stderr().starts_with(&format!("tcpfetch: {want}")),
            "{args:?}: {run}"
        );
    }
}

#[test]
fn help_command_shows_that_commands_help() {
    let t = Scratch::new("cli-help-command");
    for command in [
        "serve", "get", "list", "ping", "bench", "sum", "verify", "ui",
    ] {
        let own = tcpfetch(&t.path, &[command, "--help"]);
        own.expect_code(0);
        for asked in [["help", command], ["--help", command]] {
            let run = tcpfetch(&t.path, &asked);
            run.expect_code(0);
            assert_eq!(run.stdout(), own.stdout(), "{asked:?}: {run}");
        }
    }
    // What cannot be answered is a usage error, not the overview.
    for args in [
        &["help", "frobnicate"][..],
        &["help", "sum", "extra"],
        &["--version", "extra"],
    ] {
        let run = tcpfetch(&t.path, args);
        run.expect_code(2);
        assert!(run.stdout().is_empty(), "{args:?}: {run}");
    }
}

#[test]
fn a_second_manifest_or_digest_is_named_not_called_an_invalid_option() {
    // `sha256sum -c SUMS1 SUMS2` checks both; verify checks one and says
    // so, where it called -c an invalid option or spoke of FILE --sha256.
    let t = Scratch::new("cli-verify-twice");
    let digest = sha256_hex(b"");
    for (args, says) in [
        (
            &["verify", "-c", "A", "-c", "B"][..],
            "verify checks one manifest per run; check B with a second 'verify -c'",
        ),
        (
            &["verify", "-c", "A", "B"],
            "verify checks one manifest per run; check B with a second 'verify -c'",
        ),
        (
            &["verify", "f", "--sha256", &digest, "--sha256", &digest],
            "--sha256 given twice",
        ),
    ] {
        let run = tcpfetch(&t.path, args);
        run.expect_code(2);
        assert!(
            run.stderr().starts_with(&format!("tcpfetch: {says}")),
            "{args:?}: {run}"
        );
    }
}

#[test]
fn a_pasted_url_is_called_a_url_not_an_unbracketed_ipv6_address() {
    let t = Scratch::new("cli-url-addr");
    for url in [
        "http://10.0.0.2:1236",
        "tcpfetch://10.0.0.2",
        "http://[::1]:1236/",
    ] {
        let run = tcpfetch(&t.path, &["ping", url]);
        run.expect_code(2);
        let want = format!("tcpfetch: bad address '{url}': give HOST[:PORT], not a URL\n");
        assert!(run.stderr().starts_with(&want), "{run}");
    }
}

/// A listener that drops connection attempts for its first 2 s (its accept
/// queue held full, so the kernel drops each SYN and the client's connect
/// hangs), then accepts and answers one PING on each connection. Its port.
fn deaf_then_answering() -> (std::process::Child, String) {
    let script = r#"
import socket, threading, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)
port = s.getsockname()[1]
held = []
for _ in range(3):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(("127.0.0.1", port))
    except BlockingIOError: pass
    held.append(c)
time.sleep(0.3)
print(port, flush=True)
time.sleep(2)
def answer(c):
    c.settimeout(10)
    try:
        if c.recv(100).startswith(b"PING"): c.sendall(b"TCPFETCH/1 OK tcpfetch 9.9\n")
        c.recv(100)
    except OSError: pass
s.settimeout(10)
while True:
    try: c, _ = s.accept()
    except OSError: break
    threading.Thread(target=answer, args=(c,), daemon=True).start()
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    (child, format!("127.0.0.1:{}", line.trim()))
}

#[test]
fn ping_timeout_bounds_the_connect_too() {
    // --timeout 0.3 gave up on a silent read after 0.3 s but let a connect
    // nobody answered wait its 10 s: the listener here answers after 2 s,
    // and the old ping got that answer and exited 0.
    let (mut deaf, addr) = deaf_then_answering();
    let t = Scratch::new("cli-ping-connect-timeout");
    let run = tcpfetch(&t.path, &["ping", &addr, "--timeout", "0.3"]);
    let _ = deaf.kill();
    let _ = deaf.wait();
    run.expect_code(1);
    assert!(
        run.stderr()
            .starts_with("tcpfetch: timed out while connecting"),
        "{run}"
    );
}

#[test]
fn ping_count_sums_up_the_answered_pings_when_one_fails() {
    // A server that answers one PING and hangs up: the second ping fails,
    // and the summary (missing before) counts it as sent, not answered.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut line = String::new();
        let _ = std::io::BufReader::new(&stream).read_line(&mut line);
        let _ = (&stream).write_all(b"TCPFETCH/1 OK tcpfetch 9.9\n");
    });
    let t = Scratch::new("cli-ping-lost");
    let run = tcpfetch(&t.path, &["ping", &addr, "-c", "3"]);
    run.expect_code(1);
    let out = run.stdout();
    let l = lines(&out);
    assert_eq!(l.len(), 4, "{run}");
    assert!(
        l[0].starts_with(&format!("tcpfetch 9.9 at {addr}: time=")),
        "{run}"
    );
    assert_eq!(l[1], format!("--- {addr} ping statistics ---"), "{run}");
    assert_eq!(l[2], "2 pings sent, 1 answered", "{run}");
    assert!(l[3].starts_with("rtt min/avg/max/mdev = "), "{run}");
    assert!(run.stderr().starts_with("tcpfetch: "), "{run}");
}

#[test]
fn verify_says_to_add_or_drop_z_for_a_manifest_ended_the_other_way() {
    // A `sum -z` manifest checked without -z held no checksum line (and
    // sha256sum -c checks its first name only); a newline one checked with
    // -z is one entry whose name ends in a newline. Both now say which
    // flag was meant; a manifest read the right way says nothing more.
    let t = Scratch::new("cli-verify-ending");
    t.write("a", b"a");
    t.write("b c", b"b");
    let zero = tcpfetch(&t.path, &["sum", "-z", "a", "b c"]);
    t.write("ZSUMS", zero.stdout().as_bytes());
    let lines = tcpfetch(&t.path, &["sum", "a", "b c"]);
    t.write("SUMS", lines.stdout().as_bytes());
    for (args, code, says) in [
        (
            &["verify", "-c", "ZSUMS"][..],
            1,
            Some("tcpfetch: ZSUMS: its lines end with NUL (as 'sum -z' writes them): add -z\n"),
        ),
        (
            &["verify", "-c", "SUMS", "-z"],
            3,
            Some("tcpfetch: SUMS: no line ends with NUL: drop -z\n"),
        ),
        (&["verify", "-c", "ZSUMS", "-z"], 0, None),
        (&["verify", "-c", "SUMS"], 0, None),
    ] {
        let run = tcpfetch(&t.path, args);
        run.expect_code(code);
        match says {
            Some(hint) => assert!(run.stderr().ends_with(hint), "{args:?}: {run}"),
            None => assert_eq!(run.stderr(), "", "{args:?}: {run}"),
        }
    }
}
