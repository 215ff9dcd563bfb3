//! `bench --report FILE.html`.

use super::stats::Results;

pub fn report(r: &Results) -> String {
    format!("<!doctype html><title>{}</title>", r.test_id)
}
