//! The download pipeline: from a request to a verified file in place.

pub mod mirror;
