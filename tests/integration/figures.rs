//! Figures for `RELIABILITY.md`: each reliability test records how many trials it ran, how
//! many failed, what a trial is, and the one command that reruns it. `scripts/reliability`
//! runs those tests and prints the table from these files, so every figure in the document
//! comes from a run of the suite, not from an estimate.

use serde_json::json;

/// One row of the reliability table.
pub(crate) struct Figure<'a> {
    /// Short name of the part, e.g. "crash: SIGKILL during `looper run`".
    pub(crate) part: &'a str,
    pub(crate) trials: u64,
    /// Trials whose outcome broke a promise. The test fails when this is not zero, so a
    /// recorded figure is the count the harness measured before it asserted.
    pub(crate) failures: u64,
    /// What one trial is and what it checks, in a sentence.
    pub(crate) meaning: &'a str,
    /// The command that reruns this part (and how to make it longer, if it can be).
    pub(crate) rerun: &'a str,
}

/// Writes the figure to `$CARGO_TARGET_TMPDIR/reliability/<key>.json` (replacing the last).
pub(crate) fn record(key: &str, figure: &Figure<'_>) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("reliability");
    std::fs::create_dir_all(&dir).unwrap();
    let value = json!({
        "part": figure.part,
        "trials": figure.trials,
        "failures": figure.failures,
        "meaning": figure.meaning,
        "rerun": figure.rerun,
    });
    std::fs::write(
        dir.join(format!("{key}.json")),
        serde_json::to_string_pretty(&value).unwrap(),
    )
    .unwrap();
}
