//! Small hand-written pieces with no knowledge of the protocol: hex, text
//! formats, the progress line, bandwidth pacing and command-line values.

pub mod cli;
pub mod format;
pub mod hex;
pub mod json;
pub mod pace;
pub mod progress;
pub mod svg;
