//! PASS/FAIL reporting for test guests, ending in Solo5's `SUCCESS` convention.

use core::fmt;

use crate::println;

/// Collects check results. Each check prints `PASS: name[: detail]` or
/// `FAIL: name[: detail]`;
/// [`Checks::finish`] prints `SUCCESS` and returns 0 if all passed, otherwise
/// prints `FAILURE: … first failed check: name` and returns 1 (the exit status).
#[derive(Debug, Default)]
pub struct Checks {
    failed: u32,
    first_failure: Option<&'static str>,
}

impl Checks {
    /// No checks yet.
    pub const fn new() -> Self {
        Self { failed: 0, first_failure: None }
    }

    /// Records `ok` for check `name`; returns `ok`.
    pub fn check(&mut self, name: &'static str, ok: bool) -> bool {
        self.check_with(name, ok, format_args!(""))
    }

    /// Records `ok` for check `name`, printing `detail` (measured values, …) with it.
    pub fn check_with(&mut self, name: &'static str, ok: bool, detail: fmt::Arguments<'_>) -> bool {
        let verdict = if ok { "PASS" } else { "FAIL" };
        let sep = if detail.as_str() == Some("") { "" } else { ": " };
        println!("{verdict}: {name}{sep}{detail}");
        if !ok {
            self.failed += 1;
            self.first_failure.get_or_insert(name);
        }
        ok
    }

    /// Records a failure of `name` (for checks that cannot go on).
    pub fn fail(&mut self, name: &'static str, detail: fmt::Arguments<'_>) {
        self.check_with(name, false, detail);
    }

    /// Prints the verdict and returns the exit status: 0 if every check passed.
    pub fn finish(self) -> i32 {
        match self.first_failure {
            None => {
                println!("SUCCESS");
                0
            }
            Some(name) => {
                println!("FAILURE: {} check(s) failed, first failed check: {name}", self.failed);
                1
            }
        }
    }
}
