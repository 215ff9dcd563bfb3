//! Black-box tests of `--jobs` for `sum` and `verify`: hashing several files
//! at once must not change a byte of the output, its order or the exit
//! status, whatever order the files finish in. Each case is checked against
//! `--jobs 1` and against coreutils `sha256sum` (whose failed check says 1
//! where tcpfetch says 3). No timing here: speed is tests/verify-bench.sh's.
mod common;

use std::path::Path;

use common::*;

const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Job counts tried against `--jobs 1`; `None` is the default (cores).
const JOBS: &[Option<&str>] = &[Some("2"), Some("3"), Some("8"), None];

/// `tcpfetch ARGS [--jobs N]`.
fn with_jobs(cwd: &Path, args: &[&str], jobs: Option<&str>, stdin: &[u8]) -> Run {
    let mut all = args.to_vec();
    if let Some(n) = jobs {
        all.extend_from_slice(&["--jobs", n]);
    }
    run_program(BIN, cwd, &all, stdin)
}

fn assert_identical(one: &Run, many: &Run, jobs: Option<&str>) {
    let msg = format!("--jobs 1:{one}\n--jobs {jobs:?}:{many}");
    assert_eq!(one.output.stdout, many.output.stdout, "stdout differs{msg}");
    assert_eq!(one.output.stderr, many.output.stderr, "stderr differs{msg}");
    assert_eq!(one.code(), many.code(), "exit status differs{msg}");
}

/// `sha256sum ARGS` agrees with tcpfetch's `--jobs 1` run, but for the
/// program name and a failed check's exit status.
fn assert_like_coreutils(cwd: &Path, args: &[&str], ours: &Run, stdin: &[u8]) {
    let theirs = run_program("sha256sum", cwd, args, stdin);
    let msg = format!("coreutils:{theirs}\ntcpfetch:{ours}");
    assert_eq!(theirs.output.stdout, ours.output.stdout, "stdout{msg}");
    let their_err =
        String::from_utf8_lossy(&theirs.output.stderr).replace("sha256sum: ", "tcpfetch: ");
    assert_eq!(their_err, ours.stderr(), "stderr{msg}");
    let want = if theirs.code() == 1 && args[0] == "-c" {
        3
    } else {
        theirs.code()
    };
    assert_eq!(want, ours.code(), "exit status{msg}");
}

/// Sizes chosen so that files finish out of order: a big one early, small
/// ones after it, one exactly a read chunk, one empty.
fn populate(t: &Scratch) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..40 {
        let len = match i {
            1 => 3_000_000,
            7 => 128 * 1024,
            9 => 0,
            _ if i % 5 == 0 => 400_000 + i,
            _ => 100 + 37 * i,
        };
        let name = match i {
            3 => "with space".to_string(),
            4 => "new\nline".to_string(),
            5 => "back\\slash".to_string(),
            _ => format!("f{i:02}.bin"),
        };
        t.write(&name, &random_bytes(len, i as u64 + 1));
        names.push(name);
    }
    names
}

/// A manifest of every file with, in between, a corrupted file, a missing
/// one, a directory (which cannot be read even by root), malformed lines, a
/// comment and a blank line.
fn damaged_manifest(t: &Scratch) {
    let names = populate(t);
    let made = run_program(
        "sha256sum",
        &t.path,
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
        b"",
    );
    made.expect_code(0);
    let mut manifest = Vec::new();
    for (i, line) in made
        .output
        .stdout
        .split_inclusive(|&b| b == b'\n')
        .enumerate()
    {
        manifest.extend_from_slice(line);
        match i {
            2 => manifest.extend_from_slice(format!("{EMPTY}  missing file\n").as_bytes()),
            6 => manifest.extend_from_slice(b"not a checksum line\n# comment\n\n"),
            11 => manifest.extend_from_slice(format!("{EMPTY}  a dir\n").as_bytes()),
            20 => manifest.extend_from_slice(format!("{}  short\n", &EMPTY[1..]).as_bytes()),
            _ => {}
        }
    }
    t.write("SHA256SUMS", &manifest);
    t.write("f12.bin", b"corrupted");
    t.write("f02.bin", b"corrupted too");
    std::fs::create_dir_all(t.join("a dir")).expect("mkdir");
}

#[test]
fn verify_with_jobs_prints_exactly_what_one_job_prints() {
    let t = Scratch::new("jobs-verify");
    damaged_manifest(&t);
    for flags in [&[][..], &["--quiet"], &["--status"]] {
        let args = [&["verify", "-c", "SHA256SUMS"][..], flags].concat();
        let one = with_jobs(&t.path, &args, Some("1"), b"");
        one.expect_code(3);
        let theirs_args = [&["-c", "SHA256SUMS"][..], flags].concat();
        assert_like_coreutils(&t.path, &theirs_args, &one, b"");
        for &jobs in JOBS {
            assert_identical(&one, &with_jobs(&t.path, &args, jobs, b""), jobs);
        }
    }
}

#[test]
fn verify_with_jobs_reads_the_manifest_and_dash_entries_from_stdin_in_order() {
    let t = Scratch::new("jobs-verify-stdin");
    let names = populate(&t);
    let made = run_program(
        "sha256sum",
        &t.path,
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
        b"",
    );
    // From stdin, a `-` entry is malformed; from a file, it hashes stdin.
    let mut manifest = made.output.stdout.clone();
    manifest.extend_from_slice(format!("{EMPTY}  -\n").as_bytes());
    let args = ["verify", "-c", "-"];
    let one = with_jobs(&t.path, &args, Some("1"), &manifest);
    assert_like_coreutils(&t.path, &["-c", "-"], &one, &manifest);
    for &jobs in JOBS {
        assert_identical(&one, &with_jobs(&t.path, &args, jobs, &manifest), jobs);
    }
    let data = random_bytes(300_000, 5);
    let mut manifest = format!("{}  -\n", sha256_hex(&data)).into_bytes();
    manifest.extend_from_slice(&made.output.stdout);
    manifest.extend_from_slice(format!("{EMPTY}  -\n").as_bytes());
    t.write("SUMS", &manifest);
    let args = ["verify", "-c", "SUMS"];
    let one = with_jobs(&t.path, &args, Some("1"), &data);
    one.expect_code(0);
    assert_like_coreutils(&t.path, &["-c", "SUMS"], &one, &data);
    for &jobs in JOBS {
        assert_identical(&one, &with_jobs(&t.path, &args, jobs, &data), jobs);
    }
}

#[test]
fn sum_with_jobs_keeps_the_argument_order() {
    let t = Scratch::new("jobs-sum");
    let mut names = populate(&t);
    names.insert(2, "missing".into());
    names.insert(9, ".".into());
    names.reverse();
    let mut args = vec!["sum"];
    args.extend(names.iter().map(String::as_str));
    let one = with_jobs(&t.path, &args, Some("1"), b"");
    one.expect_code(1);
    assert_like_coreutils(&t.path, &args[1..], &one, b"");
    for &jobs in JOBS {
        assert_identical(&one, &with_jobs(&t.path, &args, jobs, b""), jobs);
    }
}

#[test]
fn sum_with_jobs_gives_stdin_to_the_first_dash() {
    let t = Scratch::new("jobs-sum-stdin");
    populate(&t);
    let data = random_bytes(500_000, 11);
    let args = ["sum", "-", "f01.bin", "-", "f00.bin"];
    let one = with_jobs(&t.path, &args, Some("1"), &data);
    assert_like_coreutils(&t.path, &args[1..], &one, &data);
    for &jobs in JOBS {
        assert_identical(&one, &with_jobs(&t.path, &args, jobs, &data), jobs);
    }
}

/// One file (or stdin) is read on one thread and hashed on another (a
/// file in chunks of 512 KiB that either thread reads); sizes around both
/// read sizes and a big one must all come out right.
#[test]
fn sum_of_one_file_read_beside_the_hasher_is_exact() {
    let t = Scratch::new("jobs-sum-one");
    let (small, chunk) = (128 * 1024, 512 * 1024);
    for len in [
        0,
        1,
        small - 1,
        small,
        small + 1,
        chunk - 1,
        chunk,
        chunk + 1,
        4 * chunk,
        9_000_017,
    ] {
        let data = random_bytes(len, len as u64);
        t.write("one.bin", &data);
        let want = format!("{}  one.bin\n", sha256_hex(&data));
        for jobs in [Some("2"), None] {
            let run = with_jobs(&t.path, &["sum", "one.bin"], jobs, b"");
            run.expect_code(0);
            assert_eq!(run.stdout(), want, "{len} bytes, --jobs {jobs:?}");
        }
        let run = with_jobs(&t.path, &["sum"], Some("2"), &data);
        assert_eq!(run.stdout(), format!("{}  -\n", sha256_hex(&data)));
        let verify = ["verify", "one.bin", "--sha256", &sha256_hex(&data)];
        with_jobs(&t.path, &verify, Some("2"), b"").expect_code(0);
    }
}

/// A single name that is not a regular file is read as a stream beside the
/// hasher, or fails, exactly as with one job and as in sha256sum: a
/// character device, a directory, a FIFO being written.
#[test]
fn sum_of_one_file_that_is_not_regular_is_what_one_job_gives() {
    let t = Scratch::new("jobs-sum-special");
    std::fs::create_dir_all(t.join("dir")).expect("mkdir");
    for name in ["/dev/null", "dir"] {
        let one = with_jobs(&t.path, &["sum", name], Some("1"), b"");
        assert_identical(
            &one,
            &with_jobs(&t.path, &["sum", name], Some("2"), b""),
            Some("2"),
        );
        assert_like_coreutils(&t.path, &[name], &one, b"");
    }
    let want = format!("{}  fifo\n", sha256_hex(&[0; 1_000_000]));
    for jobs in ["1", "2"] {
        let fifo = t.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        run_program("mkfifo", &t.path, &["fifo"], b"").expect_code(0);
        // Its open waits until sum opens the FIFO to read.
        let writer = std::thread::spawn(move || std::fs::write(fifo, [0; 1_000_000]));
        let run = with_jobs(&t.path, &["sum", "fifo"], Some(jobs), b"");
        run.expect_code(0);
        assert_eq!(run.stdout(), want, "--jobs {jobs}");
        writer.join().expect("writer").expect("write the FIFO");
    }
}

#[test]
fn bad_job_counts_are_usage_errors() {
    let t = Scratch::new("jobs-usage");
    t.write("SUMS", format!("{EMPTY}  x\n").as_bytes());
    for bad in ["0", "x", "-1", "1.5", "", "1025", "99999999999999999999"] {
        for cmd in [&["sum", "SUMS"][..], &["verify", "-c", "SUMS"]] {
            let run = with_jobs(&t.path, cmd, Some(bad), b"");
            run.expect_code(2);
            assert!(run.stderr().contains("--jobs"), "{run}");
            assert_eq!(run.stdout(), "", "{run}");
        }
    }
    tcpfetch(&t.path, &["sum", "SUMS", "--jobs"]).expect_code(2);
    tcpfetch(&t.path, &["verify", "-c", "SUMS", "--jobs"]).expect_code(2);
}

#[test]
fn help_describes_jobs() {
    let t = Scratch::new("jobs-help");
    for cmd in ["sum", "verify"] {
        let run = tcpfetch(&t.path, &[cmd, "--help"]);
        run.expect_code(0);
        assert!(run.stdout().contains("--jobs N"), "{run}");
    }
}
