//! Black-box tests of `sum` and `verify`: each runs coreutils `sha256sum`
//! and tcpfetch on the same files and compares stdout byte for byte, stderr
//! with `sha256sum: ` read as `tcpfetch: `, and the exit status (where
//! `sha256sum -c` says 1 for a failed check, tcpfetch says 3).
mod common;

use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread;
use std::time::Duration;

use common::*;

const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// `sha256sum ARGS` and `tcpfetch SUB ARGS` on the same input; a
/// `--jobs N` in ARGS goes to tcpfetch only.
fn both(cwd: &Path, sub: &str, args: &[&str], stdin: &[u8]) -> (Run, Run) {
    let mut coreutils_args = Vec::new();
    let mut rest = args.iter();
    while let Some(&arg) = rest.next() {
        if arg == "--jobs" {
            rest.next();
        } else {
            coreutils_args.push(arg);
        }
    }
    let theirs = run_program("sha256sum", cwd, &coreutils_args, stdin);
    let mut ours_args = vec![sub];
    ours_args.extend_from_slice(args);
    let ours = run_program(BIN, cwd, &ours_args, stdin);
    (theirs, ours)
}

/// Same stdout bytes, same stderr but for the program name, and the exit
/// status `theirs` gave, mapped through `exit`.
fn assert_same(theirs: &Run, ours: &Run, exit: fn(i32) -> i32) {
    assert_same_output(theirs, ours);
    let msg = format!("coreutils:{theirs}\ntcpfetch:{ours}");
    assert_eq!(exit(theirs.code()), ours.code(), "exit status differs{msg}");
}

/// Same stdout bytes, same stderr but for the program name.
fn assert_same_output(theirs: &Run, ours: &Run) {
    let msg = format!("coreutils:{theirs}\ntcpfetch:{ours}");
    assert_eq!(
        theirs.output.stdout, ours.output.stdout,
        "stdout differs{msg}"
    );
    let their_err =
        String::from_utf8_lossy(&theirs.output.stderr).replace("sha256sum: ", "tcpfetch: ");
    assert_eq!(their_err, ours.stderr(), "stderr differs{msg}");
}

fn same_code(code: i32) -> i32 {
    code
}

/// A failed check: coreutils says 1, tcpfetch says 3.
fn integrity_code(code: i32) -> i32 {
    if code == 1 {
        3
    } else {
        code
    }
}

/// Files with awkward names: spaces, a backslash, a newline, a carriage
/// return, an empty file and one larger than a read chunk.
const NAMES: &[&str] = &[
    "plain.txt",
    "with space.txt",
    " leading space",
    "back\\slash",
    "new\nline",
    "car\rreturn",
    "both\\and\nnewline",
    "empty",
    "sub/dir/big.bin",
];

fn populate(t: &Scratch) {
    for (i, name) in NAMES.iter().enumerate() {
        let data = match *name {
            "empty" => Vec::new(),
            "sub/dir/big.bin" => random_bytes(300_000, 7),
            _ => random_bytes(1000 + i, i as u64),
        };
        t.write(name, &data);
    }
}

/// A manifest of `NAMES` made by coreutils itself.
fn coreutils_manifest(t: &Scratch) -> Vec<u8> {
    let made = run_program("sha256sum", &t.path, NAMES, b"");
    made.expect_code(0);
    made.output.stdout
}

#[test]
fn sum_prints_what_sha256sum_prints() {
    let t = Scratch::new("sum-same");
    populate(&t);
    let (theirs, ours) = both(&t.path, "sum", NAMES, b"");
    assert_same(&theirs, &ours, same_code);
    assert_eq!(ours.code(), 0);
}

/// `--tag`, `-b`, `-t` and `-z`, alone and together, on every awkward name, stdin and
/// a missing file: what `sha256sum` prints with the same flags.
#[test]
fn sum_tag_and_zero_print_what_sha256sum_prints() {
    let t = Scratch::new("sum-flags");
    populate(&t);
    let files = [NAMES, &["-", "missing"]].concat();
    let rows: &[&[&str]] = &[
        &["--tag"],
        &["-b"],
        &["--binary", "--text"],
        &["-t", "--tag"],
        &["-b", "-z"],
        &["-z"],
        &["--zero"],
        &["--tag", "-z"],
        &["--tag", "--jobs", "1"],
        &["-z", "--jobs", "3"],
        &["--tag", "-z", "--jobs", "3"],
    ];
    for flags in rows {
        let args = [flags, &files[..]].concat();
        let (theirs, ours) = both(&t.path, "sum", &args, b"from stdin");
        assert_same(&theirs, &ours, same_code);
        assert_eq!(ours.code(), 1, "{flags:?}");
    }
}

#[test]
fn sum_reports_missing_files_and_goes_on() {
    let t = Scratch::new("sum-missing");
    populate(&t);
    let args = ["plain.txt", "missing", "with space missing", "sub", "empty"];
    let (theirs, ours) = both(&t.path, "sum", &args, b"");
    assert_same(&theirs, &ours, same_code);
    assert_eq!(ours.code(), 1);
    assert!(ours.stdout().ends_with("  empty\n"), "{ours}");
}

#[test]
fn sum_reads_stdin_for_dash_and_without_files() {
    let t = Scratch::new("sum-stdin");
    let data = random_bytes(200_000, 3);
    for args in [&[][..], &["-"]] {
        let (theirs, ours) = both(&t.path, "sum", args, &data);
        assert_same(&theirs, &ours, same_code);
        assert_eq!(ours.stdout(), format!("{}  -\n", sha256_hex(&data)));
    }
}

#[test]
fn sum_output_is_a_manifest_sha256sum_accepts() {
    let t = Scratch::new("sum-roundtrip");
    populate(&t);
    let ours = run_program(BIN, &t.path, &[&["sum"], NAMES].concat(), b"");
    ours.expect_code(0);
    t.write("SUMS", &ours.output.stdout);
    let check = run_program("sha256sum", &t.path, &["-c", "SUMS"], b"");
    check.expect_code(0);
    assert_eq!(
        check.stdout().matches(": OK\n").count(),
        NAMES.len(),
        "{check}"
    );
}

#[test]
fn verify_prints_what_sha256sum_c_prints_when_all_match() {
    let t = Scratch::new("verify-ok");
    populate(&t);
    t.write("SHA256SUMS", &coreutils_manifest(&t));
    let (theirs, ours) = both(&t.path, "verify", &["-c", "SHA256SUMS"], b"");
    assert_same(&theirs, &ours, same_code);
    assert_eq!(ours.code(), 0);
}

/// A manifest with one corrupted file, one missing file (with a space in
/// its name), a binary-mode line, comments, a blank line and one line that
/// is not a checksum line at all.
fn damaged(t: &Scratch) {
    populate(t);
    let mut manifest = coreutils_manifest(t);
    let bin = run_program("sha256sum", &t.path, &["-b", "plain.txt"], b"");
    manifest.extend_from_slice(&bin.output.stdout);
    manifest.extend_from_slice(b"# a comment\n\nthis is not a checksum line\n");
    manifest.extend_from_slice(format!("{EMPTY}  gone for good.txt\n").as_bytes());
    t.write("SHA256SUMS", &manifest);
    t.write("with space.txt", b"corrupted");
}

#[test]
fn verify_reports_corrupt_missing_and_malformed_like_sha256sum_c() {
    let t = Scratch::new("verify-damaged");
    damaged(&t);
    let (theirs, ours) = both(&t.path, "verify", &["-c", "SHA256SUMS"], b"");
    assert_same(&theirs, &ours, integrity_code);
    assert_eq!(ours.code(), 3);
    assert!(ours.stdout().contains("with space.txt: FAILED\n"), "{ours}");
    assert!(
        ours.stdout()
            .contains("gone for good.txt: FAILED open or read\n"),
        "{ours}"
    );
    assert!(ours.stdout().contains("\\new\\nline: OK\n"), "{ours}");
    for warning in [
        "tcpfetch: WARNING: 1 line is improperly formatted\n",
        "tcpfetch: WARNING: 1 listed file could not be read\n",
        "tcpfetch: WARNING: 1 computed checksum did NOT match\n",
    ] {
        assert!(ours.stderr().contains(warning), "{ours}");
    }
}

#[test]
fn verify_quiet_prints_only_failures_like_sha256sum_c() {
    let t = Scratch::new("verify-quiet");
    damaged(&t);
    let (theirs, ours) = both(&t.path, "verify", &["-c", "SHA256SUMS", "--quiet"], b"");
    assert_same(&theirs, &ours, integrity_code);
    assert!(!ours.stdout().contains(": OK"), "{ours}");
}

#[test]
fn verify_status_prints_nothing_but_the_exit_status() {
    let t = Scratch::new("verify-status");
    damaged(&t);
    let (theirs, ours) = both(&t.path, "verify", &["-c", "SHA256SUMS", "--status"], b"");
    assert_same(&theirs, &ours, integrity_code);
    assert_eq!(ours.stdout(), "");
    assert_eq!(ours.code(), 3);
}

#[test]
fn verify_warnings_use_plurals_like_sha256sum_c() {
    let t = Scratch::new("verify-plural");
    t.write("a", b"a");
    t.write("b", b"b");
    let manifest =
        format!("{EMPTY}  a\n{EMPTY}  b\n{EMPTY}  missing1\n{EMPTY}  missing2\nbad one\nbad two\n");
    t.write("SUMS", manifest.as_bytes());
    let (theirs, ours) = both(&t.path, "verify", &["-c", "SUMS"], b"");
    assert_same(&theirs, &ours, integrity_code);
    assert!(
        ours.stderr().contains("2 computed checksums did NOT match"),
        "{ours}"
    );
}

#[test]
fn verify_reads_escaped_tagged_and_odd_lines_like_sha256sum_c() {
    let t = Scratch::new("verify-odd");
    populate(&t);
    let tagged = run_program(
        "sha256sum",
        &t.path,
        &["--tag", "plain.txt", "new\nline"],
        b"",
    );
    let digest = &coreutils_manifest(&t)[..64];
    let digest = String::from_utf8_lossy(digest).to_uppercase();
    let mut manifest = tagged.output.stdout;
    manifest.extend_from_slice(format!("  {digest}  plain.txt\r\n").as_bytes());
    manifest.extend_from_slice(format!("\\{EMPTY}  bad\\xescape\n").as_bytes());
    manifest.extend_from_slice(format!("\\{EMPTY}  trailing\\\n").as_bytes());
    manifest.extend_from_slice(format!("{EMPTY} one-space\n").as_bytes());
    manifest.extend_from_slice(format!("{}  short\n", &EMPTY[1..]).as_bytes());
    t.write("SUMS", &manifest);
    let (theirs, ours) = both(&t.path, "verify", &["-c", "SUMS"], b"");
    assert_same(&theirs, &ours, integrity_code);
    assert!(ours.stderr().contains("4 lines are improperly"), "{ours}");
}

/// Manifests for the flag table: `damaged` (a corrupt file, a missing one,
/// malformed lines), only missing files, and all good but for one
/// malformed line.
fn flag_manifests(t: &Scratch) {
    damaged(t);
    t.write(
        "MISSING",
        format!("{EMPTY}  gone\n{EMPTY}  also gone\n").as_bytes(),
    );
    let one_bad = coreutils_manifest(t);
    t.write("ONEBAD", &[&one_bad[..], b"not a line\n"].concat());
}

/// Every coreutils check flag, alone and in the combinations where they
/// override each other (the last of --quiet/--status/--warn counts), on
/// each manifest, with one job and with three: the same stdout and stderr
/// as `sha256sum -c`, and its exit status but 3 for a file that failed.
#[test]
fn verify_check_flags_print_what_sha256sum_c_prints() {
    let t = Scratch::new("verify-flags");
    flag_manifests(&t);
    // (manifest, flags, tcpfetch's exit status)
    let rows: &[(&str, &[&str], i32)] = &[
        ("SHA256SUMS", &["--ignore-missing"], 3),
        ("SHA256SUMS", &["--strict"], 3),
        ("SHA256SUMS", &["-w"], 3),
        ("SHA256SUMS", &["--warn", "--quiet"], 3),
        ("SHA256SUMS", &["--quiet", "-w"], 3),
        ("SHA256SUMS", &["--status", "--warn"], 3),
        ("SHA256SUMS", &["-w", "--status"], 3),
        ("SHA256SUMS", &["--quiet", "--status"], 3),
        ("SHA256SUMS", &["--status", "--quiet"], 3),
        ("SHA256SUMS", &["--ignore-missing", "--strict", "-w"], 3),
        ("SHA256SUMS", &["--ignore-missing", "--status"], 3),
        ("MISSING", &[], 3),
        ("MISSING", &["--ignore-missing"], 1),
        ("MISSING", &["--ignore-missing", "--quiet"], 1),
        ("MISSING", &["--ignore-missing", "--status"], 1),
        ("ONEBAD", &[], 0),
        ("ONEBAD", &["--strict"], 1),
        ("ONEBAD", &["--strict", "--quiet"], 1),
        ("ONEBAD", &["--strict", "--status"], 1),
        ("ONEBAD", &["-w"], 0),
        ("ONEBAD", &["--ignore-missing", "-w"], 0),
    ];
    for &(manifest, flags, code) in rows {
        for jobs in ["1", "3"] {
            let args = [&["-c", manifest, "--jobs", jobs], flags].concat();
            let (theirs, ours) = both(&t.path, "verify", &args, b"");
            assert_same_output(&theirs, &ours);
            assert_eq!(theirs.code(), code.min(1), "{theirs}");
            assert_eq!(ours.code(), code, "{ours}");
        }
    }
}

/// The per-line warnings of `-w` name the manifest as coreutils does,
/// standard input included, and count every line (comments, blanks).
#[test]
fn verify_warn_numbers_lines_and_names_stdin_like_sha256sum_c() {
    let t = Scratch::new("verify-warn-stdin");
    populate(&t);
    let manifest = [
        &b"# comment\n\nbad\n"[..],
        &coreutils_manifest(&t),
        format!("{EMPTY}  -\n").as_bytes(),
    ]
    .concat();
    let (theirs, ours) = both(&t.path, "verify", &["-c", "-", "-w"], &manifest);
    assert_same(&theirs, &ours, same_code);
    assert!(
        ours.stderr().contains("'standard input': 3: improperly"),
        "{ours}"
    );
}

/// With stdout and stderr in one pipe, the `-w` warnings, the errors of
/// missing files and the verdicts interleave as `sha256sum -c -w` writes
/// them, whatever `--jobs` hashes ahead.
#[test]
fn verify_warnings_interleave_with_verdicts_like_sha256sum_c() {
    let t = Scratch::new("verify-interleave");
    let mut manifest = Vec::new();
    for i in 1..=40 {
        let data = random_bytes(100 + i, i as u64);
        let name = format!("f{i}");
        t.write(&name, &data);
        manifest.extend_from_slice(format!("{}  {name}\n", sha256_hex(&data)).as_bytes());
        if i % 7 == 0 {
            manifest.extend_from_slice(format!("bad {i}\n").as_bytes());
        }
        if i % 9 == 0 {
            manifest.extend_from_slice(format!("{EMPTY}  missing {i}\n").as_bytes());
        }
    }
    t.write("M", &manifest);
    let merged = |program: &str, args: &str| {
        let script = format!("\"$0\" {args} 2>&1");
        run_program("sh", &t.path, &["-c", &script, program], b"")
    };
    let theirs = merged("sha256sum", "-c -w M");
    let want = theirs.stdout().replace("sha256sum: ", "tcpfetch: ");
    assert!(want.contains("M: 8: improperly"), "{theirs}");
    for jobs in ["1", "4"] {
        let ours = merged(BIN, &format!("verify -c M -w --jobs {jobs}"));
        assert_eq!(ours.stdout(), want, "{ours}");
        assert_eq!(ours.code(), 3);
    }
}

/// `-z` reads the NUL-ended lines `sha256sum -z` (and `sum -z`) writes,
/// names unescaped, and prints what `sha256sum -c` prints for the same
/// entries in its newline form — `-w` line numbers, missing files and
/// malformed lines included.
#[test]
fn verify_zero_reads_nul_ended_manifests() {
    let t = Scratch::new("verify-zero");
    populate(&t);
    let zero = run_program("sha256sum", &t.path, &[&["-z"], NAMES].concat(), b"");
    zero.expect_code(0);
    let ours_zero = tcpfetch(&t.path, &[&["sum", "-z"], NAMES].concat());
    assert_eq!(ours_zero.output.stdout, zero.output.stdout, "{ours_zero}");
    let extra = format!("{EMPTY}  gone\nnot a line\n{EMPTY}  empty\n");
    let newline = [coreutils_manifest(&t), extra.clone().into_bytes()].concat();
    let nul = [zero.output.stdout, extra.replace('\n', "\0").into_bytes()].concat();
    t.write("SUMS", &newline);
    t.write("ZSUMS", &nul);
    let rows: &[&[&str]] = &[
        &[],
        &["-w"],
        &["--ignore-missing"],
        &["--quiet", "--strict"],
    ];
    for flags in rows {
        for jobs in ["1", "3"] {
            let theirs = run_program(
                "sha256sum",
                &t.path,
                &[&["-c", "SUMS"], *flags].concat(),
                b"",
            );
            let mut args = vec!["verify", "-z", "-c", "ZSUMS", "--jobs", jobs];
            args.extend_from_slice(flags);
            let ours = tcpfetch(&t.path, &args);
            let their_err = theirs.stderr().replace("SUMS", "ZSUMS");
            assert_eq!(theirs.output.stdout, ours.output.stdout, "{theirs}{ours}");
            assert_eq!(
                their_err.replace("sha256sum: ", "tcpfetch: "),
                ours.stderr()
            );
            assert_eq!(integrity_code(theirs.code()), ours.code(), "{ours}");
        }
    }
    let stdin = run_program(
        BIN,
        &t.path,
        &["verify", "-c", "-", "--zero"],
        &nul[..nul.len() - extra.len()],
    );
    stdin.expect_code(0);
    assert_eq!(
        stdin.stdout().matches(": OK\n").count(),
        NAMES.len(),
        "{stdin}"
    );
}

/// A name ending in a carriage return survives `sum -z` and `verify -z`
/// (a newline-ended manifest drops a CR before the newline; a NUL-ended
/// one must not).
#[test]
fn sum_zero_and_verify_zero_round_trip_a_trailing_cr() {
    let t = Scratch::new("verify-zero-cr");
    t.write("cr\r", b"data");
    t.write("cr", b"other");
    let made = tcpfetch(&t.path, &["sum", "-z", "cr\r"]);
    made.expect_code(0);
    t.write("ZSUMS", &made.output.stdout);
    let run = tcpfetch(&t.path, &["verify", "-z", "-c", "ZSUMS"]);
    run.expect_code(0);
    assert_eq!(run.stdout(), "cr\r: OK\n");
}

#[test]
fn verify_reads_the_manifest_from_stdin() {
    let t = Scratch::new("verify-stdin");
    populate(&t);
    let mut manifest = coreutils_manifest(&t);
    manifest.extend_from_slice(format!("{EMPTY}  -\n").as_bytes());
    let (theirs, ours) = both(&t.path, "verify", &["-c", "-"], &manifest);
    assert_same(&theirs, &ours, same_code);
    assert_eq!(ours.code(), 0);
}

#[test]
fn verify_without_checksum_lines_fails_with_exit_1() {
    let t = Scratch::new("verify-none");
    t.write("SUMS", b"nothing\nto see\n");
    let (theirs, ours) = both(&t.path, "verify", &["-c", "SUMS"], b"");
    assert_same(&theirs, &ours, same_code);
    assert_eq!(ours.code(), 1);
}

#[test]
fn verify_with_a_missing_manifest_fails_with_exit_1() {
    let t = Scratch::new("verify-nomanifest");
    let (theirs, ours) = both(&t.path, "verify", &["-c", "no such SUMS"], b"");
    assert_same(&theirs, &ours, same_code);
    assert_eq!(ours.code(), 1);
}

#[test]
fn verify_one_file_says_ok_or_failed() {
    let t = Scratch::new("verify-one");
    let data = random_bytes(5000, 9);
    t.write("f.bin", &data);
    let good = sha256_hex(&data);
    let run_one = |digest: &str| tcpfetch(&t.path, &["verify", "f.bin", "--sha256", digest]);
    let ok = run_one(&good);
    ok.expect_code(0);
    assert_eq!(ok.stdout(), "f.bin: OK\n");
    let bad = run_one(EMPTY);
    bad.expect_code(3);
    assert_eq!(bad.stdout(), "f.bin: FAILED\n");
    let upper = run_one(&good.to_uppercase());
    upper.expect_code(0);
}

#[test]
fn verify_one_missing_file_is_an_integrity_failure() {
    let t = Scratch::new("verify-one-missing");
    let run = tcpfetch(&t.path, &["verify", "nope", "--sha256", EMPTY]);
    run.expect_code(3);
    assert_eq!(run.stdout(), "nope: FAILED open or read\n");
    assert_eq!(run.stderr(), "tcpfetch: nope: No such file or directory\n");
}

#[test]
fn verify_rejects_bad_arguments_as_usage_errors() {
    let t = Scratch::new("verify-usage");
    let rows: &[&[&str]] = &[
        &["verify"],
        &["verify", "f"],
        &["verify", "f", "--sha256", "abc"],
        &["verify", "f", "--sha256", &"g".repeat(64)],
        &["verify", "-c", "SUMS", "f", "--sha256", EMPTY],
        &["verify", "-c", "A", "-c", "B"],
        &["verify", "a", "b", "--sha256", EMPTY],
        &["verify", "--bogus"],
        &["sum", "--bogus"],
        &["sum", "--tag", "-t"],
        &["sum", "--strict"],
        &["sum", "-w"],
        &["sum", "--ignore-missing"],
        &["verify", "f", "--sha256", EMPTY, "--strict"],
        &["verify", "f", "--sha256", EMPTY, "-w"],
        &["verify", "f", "--sha256", EMPTY, "--ignore-missing"],
        &["verify", "f", "--sha256", EMPTY, "-z"],
    ];
    for args in rows {
        tcpfetch(&t.path, args).expect_code(2);
    }
}

/// Prints the length (4 KiB steps) of the prefix of `all` whose SHA-256 is argv[1], or fails.
const PREFIX_OF: &str = "import hashlib, sys
d, h = open('all', 'rb').read(), hashlib.sha256()
print(next(n for n in range(0, len(d) + 1, 4096) if h.hexdigest() == sys.argv[1] or h.update(d[n:n + 4096])))";

/// `sum` of one file appended to, or cut to nothing, once sum has read 1 MiB:
/// it ends, exit 0, with a prefix's digest (lengths change by whole pages).
#[test]
fn sum_of_a_file_growing_or_cut_meanwhile_prints_a_prefix_digest() {
    let t = Scratch::new("sum-changing");
    let all = random_bytes(32 << 20, 11);
    t.write("all", &all);
    for (cut, start) in [(false, 4 << 20), (true, 16 << 20)] {
        let mut f = File::options();
        let mut f = f.append(true).open(t.write("f", &all[..start])).unwrap();
        let mut sum = Command::new(BIN);
        sum.args(["sum", "--jobs", "2", "f"]).current_dir(&t.path);
        let mut sum = sum.stdout(Stdio::piped()).spawn().unwrap();
        let (pid, stop) = (sum.id(), AtomicBool::new(false));
        let ended = thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(Relaxed) && proc_io(pid, "rchar").is_some_and(|n| n < 1 << 20) {
                    thread::sleep(Duration::from_millis(1));
                }
                if cut {
                    return f.set_len(0).unwrap();
                }
                let pieces = all[start..].chunks(64 << 10);
                for piece in pieces.take_while(|_| !stop.load(Relaxed)) {
                    f.write_all(piece).unwrap();
                    thread::sleep(Duration::from_millis(1));
                }
            });
            let ended = poll_until(Duration::from_secs(60), || sum.try_wait().unwrap());
            stop.store(true, Relaxed);
            ended
        });
        let _ = sum.kill(); // if it hung
        let line = String::from_utf8(sum.wait_with_output().unwrap().stdout).unwrap();
        let done = ended.is_some_and(|e| e.success()) && line.len() == 68;
        assert!(done, "cut {cut}: {ended:?} {line:?}");
        let found = run_program("python3", &t.path, &["-c", PREFIX_OF, &line[..64]], b"");
        let n: u64 = found.stdout().trim().parse().expect("a prefix's digest");
        assert!(cut || n >= start as u64, "{n} bytes, fewer than there were");
    }
}
