//! `get ADDR` without NAME, on a terminal: list the server's files and ask
//! which one. A typo asks again instead of ending the command, and a list
//! longer than a screen is narrowed by typing part of a name.

use std::io::{self, BufRead, IsTerminal, Write};

use crate::client::Peer;
use crate::error::{Error, Result};
use crate::proto::ListEntry;
use crate::util::cli;
use crate::util::format::{self, visible};

/// The most entries shown at once; a longer list asks for a filter.
const SHOWN: usize = 20;

/// The name of the file the user picks from `peer`'s list.
pub fn pick(peer: &Peer, usage: &str) -> Result<String> {
    if !io::stdin().is_terminal() || !io::stderr().is_terminal() {
        return Err(cli::missing("NAME (the file to download)", usage));
    }
    let entries = peer.open()?.list()?.into_files()?;
    if entries.is_empty() {
        return Err(Error::Other("the server offers no files".into()));
    }
    let mut err = io::stderr().lock();
    let mut stdin = io::stdin().lock();
    let mut shown: Vec<usize> = (0..entries.len()).collect();
    loop {
        let _ = err.write_all(menu(&entries, &shown).as_bytes());
        let _ = err.flush();
        let mut answer = String::new();
        let read = stdin
            .read_line(&mut answer)
            .map_err(|e| Error::local("cannot read the answer", e))?;
        match choose(&entries, answer.trim()) {
            // End of input cancels too: there is nobody left to ask.
            _ if read == 0 => return Err(Error::Other("cancelled".into())),
            Choice::Cancel => return Err(Error::Other("cancelled".into())),
            Choice::File(i) => return Ok(entries[i].name.clone()),
            Choice::Filter(matching) if matching.is_empty() => {
                let _ = writeln!(
                    err,
                    "'{}' is not a listed number and no name contains it; try again",
                    visible(answer.trim())
                );
            }
            Choice::Filter(matching) => shown = matching,
            Choice::OutOfRange => {
                let _ = writeln!(
                    err,
                    "'{}' is not one of the listed files (1-{}); try again",
                    answer.trim(),
                    entries.len()
                );
            }
        }
    }
}

/// What an answer asks for.
#[derive(Debug, PartialEq, Eq)]
enum Choice {
    Cancel,
    /// The entry at this index.
    File(usize),
    /// A number that is not in the list.
    OutOfRange,
    /// The indexes of the entries whose name contains the answer.
    Filter(Vec<usize>),
}

/// A number picks by its place in the whole list, an exact name picks
/// that file, anything else narrows the list to the names containing it
/// (ignoring case).
fn choose(entries: &[ListEntry], answer: &str) -> Choice {
    if answer.is_empty() || answer.eq_ignore_ascii_case("q") {
        return Choice::Cancel;
    }
    if let Ok(n) = answer.parse::<usize>() {
        return match n {
            1.. if n <= entries.len() => Choice::File(n - 1),
            _ => Choice::OutOfRange,
        };
    }
    if let Some(i) = entries.iter().position(|e| e.name == answer) {
        return Choice::File(i);
    }
    let needle = answer.to_lowercase();
    Choice::Filter(
        (0..entries.len())
            .filter(|&i| entries[i].name.to_lowercase().contains(&needle))
            .collect(),
    )
}

/// The entries at `shown` (at most [`SHOWN`] of them), numbered by their
/// place in the whole list, then the question.
fn menu(entries: &[ListEntry], shown: &[usize]) -> String {
    let width = entries.len().to_string().len();
    let mut text = String::new();
    for &i in shown.iter().take(SHOWN) {
        let e = &entries[i];
        let size = format::bytes(e.size);
        text.push_str(&format!(
            "{:>width$}) {size:>10}  {}\n",
            i + 1,
            visible(&e.name)
        ));
    }
    let hidden = shown.len().saturating_sub(SHOWN);
    if hidden > 0 {
        text.push_str(&format!(
            "... and {hidden} more: type part of a name to narrow the list\n"
        ));
    }
    text.push_str(&format!(
        "download which file? [1-{}, part of a name to filter, q to cancel] ",
        entries.len()
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(names: &[&str]) -> Vec<ListEntry> {
        names
            .iter()
            .map(|n| ListEntry {
                size: 1,
                digest: None,
                name: n.to_string(),
            })
            .collect()
    }

    #[test]
    fn answers_pick_cancel_or_filter() {
        let list = entries(&["alpha.txt", "beta.bin", "Alpine.iso"]);
        assert_eq!(choose(&list, "2"), Choice::File(1));
        assert_eq!(choose(&list, "beta.bin"), Choice::File(1));
        assert_eq!(choose(&list, "4"), Choice::OutOfRange);
        assert_eq!(choose(&list, "0"), Choice::OutOfRange);
        assert_eq!(choose(&list, "q"), Choice::Cancel);
        assert_eq!(choose(&list, "alp"), Choice::Filter(vec![0, 2]));
        assert_eq!(choose(&list, "zzz"), Choice::Filter(vec![]));
    }

    #[test]
    fn a_long_list_shows_one_screen_and_offers_a_filter() {
        let names: Vec<String> = (0..30).map(|i| format!("f{i:02}")).collect();
        let list = entries(&names.iter().map(String::as_str).collect::<Vec<_>>());
        let all: Vec<usize> = (0..30).collect();
        let text = menu(&list, &all);
        assert_eq!(text.lines().count(), SHOWN + 2);
        assert!(text.contains("... and 10 more: type part of a name"));
        let text = menu(&list, &[27]);
        assert!(text.starts_with("28)"), "{text}");
    }
}
